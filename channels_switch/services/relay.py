"""The relay: an agent's message in an email, SMS or WhatsApp conversation goes out through the provider, once.

`delivery_create` writes the outbox row in the transaction that stores the message (chat's
`outbound_message_stored`); after commit a Celery task runs `delivery_attempt`. An attempt claims its row
(pending → sending, under a row lock), calls the provider outside any transaction, and records the outcome:
sent (with the provider's id), failed for good (a refusal, with the provider's reason), or pending again
after a backoff (a timeout, a lost connection, a 5xx, a rate limit). The sweep (`deliveries_sweep`) is what
makes it hold: it re-drives pending rows whose trigger was lost, and a row still "sending" past its lease
(the worker died mid-attempt) is looked up at the provider first, and sent again only if the provider has
no record of it. Celery's own redelivery is never relied on.
"""

from __future__ import annotations

import contextlib
import logging
import random
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, Value, When
from django.utils import timezone

from channels_switch.models import ChannelConnector, ConnectorKind, Delivery, DeliveryState
from channels_switch.providers import ProviderError, Sent, provider_lookup, provider_send
from channels_switch.selectors import whatsapp_window
from channels_switch.services.email import email_files, email_headers, email_subject
from channels_switch.services.media_links import media_files
from channels_switch.services.whatsapp_templates import TemplateSend
from chat import events
from chat.models import Attachment, Conversation, DeliveryStatus, Message, SenderKind
from contactcenter.errors import ApplicationError
from contactcenter.models import ContactIdentity, IdentityKind
from contactcenter.realtime import conversation_agents_group, publish_on_commit
from contactcenter.services.webhooks_out import DELIVERY_STATUS_CHANGED, delivery_status_data, webhook_event_record

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
BACKOFF_MAX_SECONDS = 300.0
# An attempt still "sending" after this long belongs to a worker that died: the provider calls time out long
# before (providers.TIMEOUT_SECONDS).
SENDING_LEASE = timedelta(seconds=60)
# A pending row whose task has not run this long after it was due lost its trigger: the sweep sends another.
TRIGGER_GRACE = timedelta(seconds=20)
SWEEP_BATCH = 200

# The identity a channel's messages are addressed to, in order of preference.
RECIPIENT_KINDS = {
    ConnectorKind.EMAIL: (IdentityKind.EMAIL,),
    ConnectorKind.SMS: (IdentityKind.PHONE, IdentityKind.WHATSAPP),
    ConnectorKind.WHATSAPP: (IdentityKind.WHATSAPP, IdentityKind.PHONE),
}
# The provider's words for how far a message got → the message's delivery status in the console.
PROVIDER_PROGRESS = {
    "accepted": DeliveryStatus.SENDING,
    "queued": DeliveryStatus.SENDING,
    "scheduled": DeliveryStatus.SENDING,
    "sending": DeliveryStatus.SENDING,
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.READ,
}


def message_delivery_set(
    *, tenant_id: int, message_id: int, status: str, error: str = "", message: Message | None = None
) -> None:
    """The message's delivery status (and the reason when it failed) as the console shows it, changed, and the
    conversation's agents told (`message.delivery`). `message`: the row, when the caller has it already."""
    if message is None or message.pk != message_id or message.tenant_id != tenant_id:
        message = Message.objects.for_tenant(tenant_id).get(pk=message_id)
    if (message.delivery_status, message.delivery_error) == (status, error[:500]):
        return
    message.delivery_status, message.delivery_error = status, error[:500]
    message.save(update_fields=["delivery_status", "delivery_error"])
    webhook_event_record(tenant_id=tenant_id, type=DELIVERY_STATUS_CHANGED, data=delivery_status_data(message))
    publish_on_commit(
        group=conversation_agents_group(tenant_id, message.conversation_id), event=events.message_delivery(message)
    )


def _recipient(conversation: Conversation, channel: str) -> ContactIdentity | None:
    """The contact's address on the channel: the one a switch moved the conversation to, else its kinds in order
    of preference, a verified one first."""
    kinds = RECIPIENT_KINDS[ConnectorKind(channel)]
    identities = ContactIdentity.objects.for_tenant(conversation.tenant_id).filter(
        contact_id=conversation.contact_id, kind__in=kinds
    )
    if conversation.channel_address:
        identities = identities.filter(value=conversation.channel_address)
    by_kind: dict[str, ContactIdentity] = {}
    for identity in identities.order_by("verified", "-pk"):  # the last one kept wins: verified, then oldest
        by_kind[identity.kind] = identity
    return next((by_kind[kind] for kind in kinds if kind in by_kind), None)


# Triggers coalesce: while DRAIN_SLOTS drains are scheduled or running, a newly stored row needs no task of its
# own. A running drain claims batch after batch until nothing is due, lets go of its slot, and then looks once
# more: a row stored while its slot was held was committed before that look, so nothing is left behind. A slot
# whose drain died frees itself after SLOT_TTL; the sweep re-triggers what such a drain left.
DRAIN_SLOTS = 2
SLOT_TTL_SECONDS = 15
_slots_client: Any = None


def _slots() -> Any:
    global _slots_client
    if _slots_client is None:
        import redis

        _slots_client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2)
    return _slots_client


def _slot_key(slot: int) -> str:
    return f"switchboard:relay:drain:{slot}"


def _trigger_new(delivery_id: int) -> None:
    """A stored row's trigger: a task for it unless every slot has a drain that will take it."""
    from channels_switch.tasks import deliver

    if settings.CELERY_TASK_ALWAYS_EAGER or not settings.REDIS_URL:
        deliver.delay(delivery_id)
        return
    try:
        for slot in range(DRAIN_SLOTS):
            if _slots().set(_slot_key(slot), "1", nx=True, ex=SLOT_TTL_SECONDS):
                deliver.delay(delivery_id, slot)
                return
    except Exception as exc:  # Redis blinked: a task of its own (the sweep re-drives it if this fails too)
        logger.warning("relay slots unavailable (%r): triggering delivery %s on its own", exc, delivery_id)
        deliver.delay(delivery_id)


def _slot_release(slot: int) -> None:
    """The drain in `slot` ends: the slot is free, and a row that became due meanwhile gets its trigger."""
    try:
        _slots().delete(_slot_key(slot))
    except Exception as exc:
        logger.warning("relay slot %s not released (%r): it frees itself in %s s", slot, exc, SLOT_TTL_SECONDS)
    due = (
        Delivery.objects.filter(state=DeliveryState.PENDING, next_attempt_at__lte=timezone.now())
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)
        .first()
    )
    if due is not None:
        _trigger_new(due)


def _trigger(delivery_id: int, *, countdown: float | None = None) -> None:
    from channels_switch.tasks import deliver

    if countdown is None:
        deliver.delay(delivery_id)
    elif not settings.CELERY_TASK_ALWAYS_EAGER:
        deliver.apply_async((delivery_id,), countdown=countdown)
    # Eager (no broker): a countdown would run at once, so the in-process sweep retries it when it is due.


def _customer_answered(conversation: Conversation) -> bool:
    """Whether the customer has written on the conversation's present channel (after a switch: answered the
    introduction from the address it went to)."""
    return (
        Message.objects.for_tenant(conversation.tenant_id)
        .filter(conversation_id=conversation.pk, sender_kind=SenderKind.VISITOR, channel=conversation.channel)
        .exists()
    )


def _refuse_if_not_allowed(
    conversation: Conversation, recipient: ContactIdentity | None, message: Message, *, template: bool = False
) -> None:
    """The rules an agent's message must meet before it is stored: nothing to an address that opted out; after a
    switch, nothing but the introduction to an address typed into a form until the customer answers from it
    (which verifies it); and no free text on WhatsApp outside 24 hours from the customer's last message (a
    `template`, approved by WhatsApp, is what goes outside it). Refused with the reason (the message is not
    stored, the console shows why)."""
    label = ConnectorKind(conversation.channel).label
    if recipient is not None and recipient.opted_out_at is not None:
        raise ApplicationError(
            "opted_out",
            f"The customer opted out of {label} messages (replied STOP): nothing more can be sent to "
            f"{recipient.value} until they reply START.",
            status=409,
        )
    if message.event == "channel.introduction":
        # Sent once per switch, when the visitor picked the channel (or their chat was lost): it is the
        # customer's own request. (On a real WhatsApp sender a first message needs an approved template.)
        return
    if conversation.channel_address and not _customer_answered(conversation):
        raise ApplicationError(
            "awaiting_customer",
            f"Waiting for the customer to answer the introduction from {conversation.channel_address}: until they do, "
            "nothing more is sent to an address typed into a form.",
            status=409,
        )
    free_text_on_whatsapp = not template and conversation.channel == ConnectorKind.WHATSAPP
    if free_text_on_whatsapp and not whatsapp_window(conversation=conversation, now=timezone.now()).open:
        raise ApplicationError(
            "outside_whatsapp_window",
            "WhatsApp allows free text only within 24 hours of the customer's last message; "
            "wait for the customer to write, or send an approved template.",
            status=409,
        )


def delivery_create(*, message: Message, attachments: list[Attachment], relay: object = None) -> Delivery:
    """The outbox row of an agent's message on a provider's channel, in the caller's transaction; the attempt
    is triggered once that commits. A message that cannot go out (the channel is off, the customer has no
    address on it) is stored failed with the reason, for the agent to see: never silently dropped. `relay`: what
    the message's sender asked beyond its text (a `TemplateSend`: it goes as that WhatsApp template)."""
    conversation = Conversation.objects.for_tenant(message.tenant_id).get(pk=message.conversation_id)
    channel = conversation.channel
    recipient = _recipient(conversation, channel)
    template = relay if isinstance(relay, TemplateSend) and channel == ConnectorKind.WHATSAPP else None
    _refuse_if_not_allowed(conversation, recipient, message, template=template is not None)
    connector = ChannelConnector.objects.for_tenant(message.tenant_id).filter(kind=channel).first()
    delivery = Delivery(
        tenant_id=message.tenant_id,
        message=message,
        connector=connector,
        channel=channel,
        to_address=recipient.value if recipient is not None else "",
        next_attempt_at=timezone.now(),
    )
    if template is not None:
        delivery.template_id, delivery.template_variables = template.template_id, dict(template.variables)
        delivery.content_sid = template.content_sid
    label = ConnectorKind(channel).label
    if connector is None or not connector.enabled:
        delivery.state, delivery.error_code = DeliveryState.FAILED, "channel_off"
        delivery.error_message = f"The {label} channel is not set up or is turned off (Settings → Channels)."
    elif not delivery.to_address:
        what = "email address" if channel == ConnectorKind.EMAIL else "phone number"
        delivery.state, delivery.error_code = DeliveryState.FAILED, "no_address"
        delivery.error_message = f"The customer has no {what} to send this {label} message to."
    delivery.save()
    if delivery.state == DeliveryState.FAILED:
        message_delivery_set(
            tenant_id=message.tenant_id,
            message_id=message.pk,
            status=DeliveryStatus.FAILED,
            error=delivery.error_message,
        )
        message.delivery_status, message.delivery_error = DeliveryStatus.FAILED, delivery.error_message
    else:
        transaction.on_commit(lambda: _trigger_new(delivery.pk))
    return delivery


def _claim(delivery_id: int) -> Delivery | None:
    """pending and due → sending, under the row lock; None when another attempt has it, it is not due, or done."""
    now = timezone.now()
    with transaction.atomic():
        delivery = (
            Delivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("connector", "message")
            .filter(pk=delivery_id, state=DeliveryState.PENDING, next_attempt_at__lte=now)
            .first()
        )
        if delivery is None:
            return None
        delivery.state, delivery.sending_since = DeliveryState.SENDING, now
        delivery.attempts += 1
        delivery.save(update_fields=["state", "sending_since", "attempts", "updated_at"])
        message_delivery_set(
            tenant_id=delivery.tenant_id,
            message_id=delivery.message_id,
            status=DeliveryStatus.SENDING,
            message=delivery.message,
        )
    return delivery


DRAIN_BATCH = 20


def _claim_batch(delivery_id: int) -> list[Delivery]:
    """The named row and up to DRAIN_BATCH - 1 other due rows, pending → sending in one transaction; rows another
    attempt holds are skipped (SKIP LOCKED), not waited for."""
    now = timezone.now()
    with transaction.atomic():
        rows = list(
            Delivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("connector", "message")
            .filter(state=DeliveryState.PENDING, next_attempt_at__lte=now)
            .order_by(Case(When(pk=delivery_id, then=Value(0)), default=Value(1)), "next_attempt_at", "pk")[
                :DRAIN_BATCH
            ]
        )
        if not rows:
            return []
        Delivery.objects.filter(pk__in=[d.pk for d in rows]).update(
            state=DeliveryState.SENDING, sending_since=now, attempts=F("attempts") + 1, updated_at=now
        )
        for delivery in rows:
            delivery.state, delivery.sending_since = DeliveryState.SENDING, now
            delivery.attempts += 1
        showing = [d.message for d in rows if d.message.delivery_status != DeliveryStatus.SENDING]
        Message.objects.filter(pk__in=[m.pk for m in showing]).update(
            delivery_status=DeliveryStatus.SENDING, delivery_error=""
        )
        for message in showing:
            message.delivery_status, message.delivery_error = DeliveryStatus.SENDING, ""
            publish_on_commit(
                group=conversation_agents_group(message.tenant_id, message.conversation_id),
                event=events.message_delivery(message),
            )
    return rows


def deliveries_drain(*, delivery_id: int, slot: int | None = None) -> str:
    """What the relay's task runs: the named delivery and the other due ones with it (DRAIN_BATCH at a time),
    each batch claimed at once and then sent in turn over the process's kept-alive provider connections, each
    outcome recorded as it comes. A drain that holds a slot (see DRAIN_SLOTS) goes on batch after batch until
    nothing is due, then lets the slot go. Returns what became of the named delivery."""
    outcome = "skipped"
    named = delivery_id
    try:
        while True:
            batch = _claim_batch(named)
            for delivery in batch:
                result = _send_claimed(delivery)
                if delivery.pk == delivery_id:
                    outcome = result
            if slot is None or not batch:
                break
            named = 0
            with contextlib.suppress(Exception):
                _slots().expire(_slot_key(slot), SLOT_TTL_SECONDS)
    finally:
        if slot is not None:
            _slot_release(slot)
    return outcome


def delivery_attempt(*, delivery_id: int) -> str:
    """One attempt at a delivery, if it is due and nobody else is at it; returns what became of it."""
    delivery = _claim(delivery_id)
    if delivery is None:
        return "skipped"
    return _send_claimed(delivery)


def _send(delivery: Delivery) -> Sent:
    connector = delivery.connector
    if connector is None:
        return provider_send(delivery, body=delivery.message.body)
    if delivery.channel != ConnectorKind.EMAIL:
        return provider_send(delivery, body=delivery.message.body, files=media_files(delivery))
    return provider_send(
        delivery,
        body=delivery.message.body,
        subject=email_subject(delivery),
        headers=email_headers(delivery, connector),
        files=email_files(delivery),
    )


def _send_claimed(delivery: Delivery) -> str:
    try:
        sent = _send(delivery)
    except ProviderError as exc:
        return _record_failure(delivery, exc)
    except Exception as exc:  # a bug must not leave the row "sending" until the lease runs out
        logger.exception("delivery %s: unexpected error while sending", delivery.pk)
        return _record_failure(delivery, ProviderError(f"Internal error: {type(exc).__name__}", retryable=True))
    return _record_sent(delivery, sent)


def _still_ours(delivery: Delivery) -> Delivery | None:
    """The row again, locked, if it is still the attempt `delivery` claimed (the sweep may have taken it back)."""
    current = Delivery.objects.select_for_update().filter(pk=delivery.pk).first()
    if current is None or current.state != DeliveryState.SENDING or current.sending_since != delivery.sending_since:
        return None
    return current


def _record_sent(delivery: Delivery, sent: Sent) -> str:
    with transaction.atomic():
        # One conditional UPDATE: only if the row is still the attempt `delivery` claimed (the sweep may have
        # taken it back), as `_still_ours` checks under a lock.
        recorded = Delivery.objects.filter(
            pk=delivery.pk, state=DeliveryState.SENDING, sending_since=delivery.sending_since
        ).update(
            state=DeliveryState.SENT,
            provider_id=sent.provider_id,
            provider_status=sent.status,
            error_code="",
            error_message="",
            updated_at=timezone.now(),
        )
        if not recorded:
            return "superseded"
        status = PROVIDER_PROGRESS.get(sent.status, DeliveryStatus.SENT)
        message_delivery_set(
            tenant_id=delivery.tenant_id, message_id=delivery.message_id, status=status, message=delivery.message
        )
    return "sent"


def backoff_seconds(attempts: int) -> float:
    """Exponential (RELAY_BACKOFF_SECONDS, then twice as long each time, at most 5 min) with jitter, so a
    provider's outage is not met in lockstep."""
    base = min(BACKOFF_MAX_SECONDS, settings.RELAY_BACKOFF_SECONDS * 2 ** max(0, attempts - 1))
    return base * random.uniform(0.5, 1.5)


def _record_failure(delivery: Delivery, error: ProviderError) -> str:
    with transaction.atomic():
        current = _still_ours(delivery)
        if current is None:
            return "superseded"
        current.error_code, current.error_message = error.code[:32], error.message[:500]
        retry = error.retryable and current.attempts < MAX_ATTEMPTS
        if retry:
            wait = backoff_seconds(current.attempts)
            current.state, current.next_attempt_at = DeliveryState.PENDING, timezone.now() + timedelta(seconds=wait)
            status = DeliveryStatus.PENDING
        else:
            current.state, status = DeliveryState.FAILED, DeliveryStatus.FAILED
            if error.retryable:
                current.error_message = f"Gave up after {current.attempts} attempts: {error.message}"[:500]
        current.save(update_fields=["state", "next_attempt_at", "error_code", "error_message", "updated_at"])
        shown = "" if retry else current.error_message
        message_delivery_set(tenant_id=current.tenant_id, message_id=current.message_id, status=status, error=shown)
        if retry:
            transaction.on_commit(lambda: _trigger(current.pk, countdown=wait))
    return "retry" if retry else "failed"


def _reconcile(delivery: Delivery) -> str:
    """A row left "sending" by a dead worker: the provider's record decides between sent and sending again."""
    try:
        found = provider_lookup(delivery, body=delivery.message.body)
    except ProviderError as exc:
        logger.warning("delivery %s: provider lookup failed (%s); next sweep tries again", delivery.pk, exc.message)
        return "unknown"
    if found is not None:
        return _record_sent(delivery, found)
    with transaction.atomic():
        current = _still_ours(delivery)
        if current is None:
            return "superseded"
        current.state, current.next_attempt_at = DeliveryState.PENDING, timezone.now()
        current.save(update_fields=["state", "next_attempt_at", "updated_at"])
        transaction.on_commit(lambda: _trigger(current.pk))
    return "resend"


def deliveries_sweep() -> dict[str, Any]:
    """The sweep's relay pass, over every tenant: re-triggers pending rows whose task was lost, and settles rows
    a dead worker left "sending" (looked up at the provider, then sent again only if it has none)."""
    now = timezone.now()
    stuck = list(
        Delivery.objects.filter(state=DeliveryState.SENDING, sending_since__lt=now - SENDING_LEASE)
        .select_related("connector", "message")
        .order_by("sending_since")[:SWEEP_BATCH]
    )
    settled = [_reconcile(delivery) for delivery in stuck]
    # Eager (no broker): nothing is queued, so a due row is this sweep's to run, at once.
    grace = timedelta(0) if settings.CELERY_TASK_ALWAYS_EAGER else TRIGGER_GRACE
    overdue = list(
        Delivery.objects.filter(state=DeliveryState.PENDING, next_attempt_at__lte=now - grace)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    for delivery_id in overdue:
        _trigger(delivery_id)
    return {"deliveries_retriggered": len(overdue), "deliveries_reconciled": len(settled)}
