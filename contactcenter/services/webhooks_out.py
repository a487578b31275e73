"""Outbound webhooks: what integrators subscribe to, and the outbox of events (docs/webhooks.md).

`webhook_event_record` is called by the service that makes something happen, inside its transaction: it writes
the event (`WebhookEvent`, whose public id is the `webhook-id` of every attempt) and one `WebhookDelivery` per
enabled subscription that wants that type, and triggers the delivery task once that commits. A rolled-back
change leaves no event. The sending, retries and the sweep live in `webhooks_delivery`.

The payload builders below read the objects they are given by attribute only (the core imports no app), so
the caller's line stays one line: `webhook_event_record(tenant_id=…, type=MESSAGE_CREATED,
data=message_data(message))`.
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from contactcenter import secretbox
from contactcenter.errors import ApplicationError, Conflict
from contactcenter.models import (
    Tenant,
    WebhookDelivery,
    WebhookDeliveryState,
    WebhookEvent,
    WebhookSubscription,
)

# --- event types ---------------------------------------------------------------------------------------------

CONVERSATION_CREATED = "conversation.created"
CONVERSATION_ASSIGNED = "conversation.assigned"
CONVERSATION_SWITCHED = "conversation.switched"
CONVERSATION_TRANSFERRED = "conversation.transferred"
CONVERSATION_CLOSED = "conversation.closed"
MESSAGE_CREATED = "message.created"
DELIVERY_STATUS_CHANGED = "delivery.status_changed"
CONTACT_MERGED = "contact.merged"

EVENT_TYPES: tuple[str, ...] = (
    CONVERSATION_CREATED,
    CONVERSATION_ASSIGNED,
    CONVERSATION_SWITCHED,
    CONVERSATION_TRANSFERRED,
    CONVERSATION_CLOSED,
    MESSAGE_CREATED,
    DELIVERY_STATUS_CHANGED,
    CONTACT_MERGED,
)
EVENT_DESCRIPTIONS = {
    CONVERSATION_CREATED: "A conversation started (web chat, inbound SMS/WhatsApp/email, or by an agent).",
    CONVERSATION_ASSIGNED: "A conversation got its agent.",
    CONVERSATION_SWITCHED: "A conversation moved to another channel.",
    CONVERSATION_TRANSFERRED: "A conversation was handed to another agent or queue.",
    CONVERSATION_CLOSED: "A conversation closed.",
    MESSAGE_CREATED: "A visitor's, customer's or agent's message was stored.",
    DELIVERY_STATUS_CHANGED: "An outbound SMS/WhatsApp/email message's delivery status changed.",
    CONTACT_MERGED: "Two contacts became one.",
}

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
EVENT_ID_PREFIX = "msg_"
URL_MAX = 2000
DESCRIPTION_MAX = 200


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


# --- payload builders: the body's `data`, by type (documented in docs/webhooks.md) ------------------------------


def conversation_data(conversation: Any) -> dict[str, Any]:
    """`conversation.created` / `conversation.closed`, and the `conversation` of the other conversation events."""
    return {
        "id": conversation.pk,
        "channel": conversation.channel,
        "status": conversation.status,
        "contact_id": conversation.contact_id,
        "widget_id": conversation.widget_id,
        "assignee_id": conversation.assignee_id,
        "created_at": _iso(conversation.created_at),
        "closed_at": _iso(conversation.closed_at),
    }


def message_data(message: Any) -> dict[str, Any]:
    """`message.created`: the message as stored (private notes carry `private: true`)."""
    return {
        "id": message.pk,
        "conversation_id": message.conversation_id,
        "seq": message.seq,
        "sender_kind": message.sender_kind,
        "sender_user_id": message.sender_user_id,
        "body": message.body,
        "channel": message.channel,
        "private": message.is_private,
        "created_at": _iso(message.created_at),
    }


def delivery_status_data(message: Any) -> dict[str, Any]:
    """`delivery.status_changed`: an outbound message's new status (`pending`, `sending`, `sent`, `delivered`,
    `read`, `failed`) and, when failed, why."""
    return {
        "message_id": message.pk,
        "conversation_id": message.conversation_id,
        "channel": message.channel,
        "status": message.delivery_status,
        "error": message.delivery_error,
    }


def conversation_assigned_data(conversation: Any, *, agent_id: int, queue_id: int | None = None) -> dict[str, Any]:
    """`conversation.assigned`: the conversation, the agent (a user id, as in `/agents/`) and the queue it came
    through (None when an agent started it)."""
    return {"conversation": conversation_data(conversation), "agent_id": agent_id, "queue_id": queue_id}


def conversation_transferred_data(
    conversation: Any, *, from_agent_id: int | None, to_agent_id: int | None, to_queue_id: int | None
) -> dict[str, Any]:
    """`conversation.transferred`: from an agent to another agent (`to_agent_id`) or to a queue (`to_queue_id`)."""
    return {
        "conversation": conversation_data(conversation),
        "from_agent_id": from_agent_id,
        "to_agent_id": to_agent_id,
        "to_queue_id": to_queue_id,
    }


def conversation_switched_data(conversation: Any, *, from_channel: str) -> dict[str, Any]:
    """`conversation.switched`: the conversation (now on its new `channel`) and the channel it left."""
    return {"conversation": conversation_data(conversation), "from_channel": from_channel}


def contact_merged_data(*, kept_contact_id: int, merged_contact_id: int) -> dict[str, Any]:
    """`contact.merged`: `merged_contact_id` no longer exists; its identities and conversations are the kept one's."""
    return {"kept_contact_id": kept_contact_id, "merged_contact_id": merged_contact_id}


# --- whether a tenant has subscriptions: the hot path's one question --------------------------------------------

# A tenant without subscriptions is asked about on every stored message: the answer is kept in this process for
# SUBSCRIBED_CACHE_SECONDS. A change made here forgets it at once; another process sees it that much later, so a
# new subscription gets events from every process within that time.
SUBSCRIBED_CACHE_SECONDS = 2.0
_subscribed: dict[int, tuple[float, bool]] = {}
_subscribed_lock = threading.Lock()


def webhooks_wanted(tenant_id: int) -> bool:
    """Whether the tenant has an enabled subscription (maybe a couple of seconds old, see above)."""
    now = time.monotonic()
    cached = _subscribed.get(tenant_id)
    if cached is not None and cached[0] > now:
        return cached[1]
    wanted = WebhookSubscription.objects.for_tenant(tenant_id).filter(enabled=True).exists()
    with _subscribed_lock:
        _subscribed[tenant_id] = (now + SUBSCRIBED_CACHE_SECONDS, wanted)
    return wanted


def _subscriptions_changed(tenant_id: int) -> None:
    def forget() -> None:
        with _subscribed_lock:
            _subscribed.pop(tenant_id, None)

    forget()
    transaction.on_commit(forget)


# --- the outbox ----------------------------------------------------------------------------------------------


def new_event_id() -> str:
    return EVENT_ID_PREFIX + secrets.token_urlsafe(18)


def webhook_event_record(*, tenant_id: int, type: str, data: dict[str, Any]) -> WebhookEvent | None:
    """The event and its deliveries, in the caller's transaction; None when no enabled subscription wants it.
    `data` must be JSON-serialisable (the payload builders above make it so)."""
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {type!r}")
    if not webhooks_wanted(tenant_id):
        return None
    subscriptions = [
        subscription
        for subscription in WebhookSubscription.objects.for_tenant(tenant_id)
        .filter(enabled=True)
        .only("pk", "event_types")
        if subscription.wants(type)
    ]
    if not subscriptions:
        return None
    now = timezone.now()
    with transaction.atomic():  # a savepoint in the caller's transaction (its own one when called outside any)
        event = WebhookEvent.objects.create(tenant_id=tenant_id, public_id=new_event_id(), type=type, payload=data)
        deliveries = WebhookDelivery.objects.bulk_create(
            [
                WebhookDelivery(tenant_id=tenant_id, subscription=subscription, event=event, next_attempt_at=now)
                for subscription in subscriptions
            ]
        )
    ids = [delivery.pk for delivery in deliveries]
    transaction.on_commit(lambda: _trigger_all(tenant_id, ids))
    return event


def _trigger_all(tenant_id: int, delivery_ids: Sequence[int]) -> None:
    from contactcenter.services.webhooks_delivery import delivery_trigger

    for delivery_id in delivery_ids:
        delivery_trigger(tenant_id=tenant_id, delivery_id=delivery_id)


# --- subscriptions -------------------------------------------------------------------------------------------


def secret_new() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def subscription_secrets(subscription: WebhookSubscription, *, now: datetime | None = None) -> list[str]:
    """The secrets that sign now: the current one, and the previous one until its grace ends."""
    now = now or timezone.now()
    found = [secretbox.unseal(subscription.secret_sealed)]
    expires = subscription.previous_secret_expires_at
    if subscription.previous_secret_sealed and expires is not None and expires > now:
        found.append(secretbox.unseal(subscription.previous_secret_sealed))
    return found


def _clean_url(url: str) -> str:
    from contactcenter.services.webhooks_delivery import UrlRefused, url_check

    url = url.strip()
    if len(url) > URL_MAX:
        raise ApplicationError("invalid", f"At most {URL_MAX} characters.", {"url": [f"At most {URL_MAX} characters."]})
    try:
        url_check(url, resolve=not settings.WEBHOOKS_ALLOW_PRIVATE)
    except UrlRefused as exc:
        raise ApplicationError("url_not_allowed", exc.message, {"url": [exc.message]}) from exc
    return url


def _clean_event_types(event_types: Sequence[str]) -> list[str]:
    unknown = sorted({str(kind) for kind in event_types} - set(EVENT_TYPES))
    if unknown:
        message = f"Unknown event type {', '.join(unknown)}; known: {', '.join(EVENT_TYPES)}."
        raise ApplicationError("invalid", message, {"event_types": [message]})
    return [kind for kind in EVENT_TYPES if kind in set(event_types)]  # deduplicated, in the documented order


def _clean_description(description: str) -> str:
    description = description.strip()
    if len(description) > DESCRIPTION_MAX:
        message = f"At most {DESCRIPTION_MAX} characters."
        raise ApplicationError("invalid", message, {"description": [message]})
    return description


class IssuedSubscription:
    """A subscription just created or rotated, with its new secret in clear: shown this once."""

    def __init__(self, subscription: WebhookSubscription, secret: str):
        self.subscription = subscription
        self.secret = secret


@transaction.atomic
def webhook_subscription_create(
    *, tenant: Tenant, url: str, description: str = "", event_types: Sequence[str] = (), enabled: bool = True
) -> IssuedSubscription:
    secret = secret_new()
    subscription = WebhookSubscription.objects.create(
        tenant=tenant,
        url=_clean_url(url),
        description=_clean_description(description),
        event_types=_clean_event_types(event_types),
        secret_sealed=secretbox.seal(secret),
        enabled=enabled,
        disabled_at=None if enabled else timezone.now(),
        disabled_reason="" if enabled else "Created disabled.",
    )
    _subscriptions_changed(tenant.pk)
    return IssuedSubscription(subscription, secret)


@transaction.atomic
def webhook_subscription_update(
    *,
    subscription: WebhookSubscription,
    url: str | None = None,
    description: str | None = None,
    event_types: Sequence[str] | None = None,
    enabled: bool | None = None,
) -> WebhookSubscription:
    """Changes what is given; `enabled` True turns a disabled subscription back on (its failure clock restarts),
    False turns it off (no new events; its pending deliveries are given up when next due: replay them once it
    is on again)."""
    subscription = (
        WebhookSubscription.objects.for_tenant(subscription.tenant_id).select_for_update().get(pk=subscription.pk)
    )
    if url is not None:
        subscription.url = _clean_url(url)
    if description is not None:
        subscription.description = _clean_description(description)
    if event_types is not None:
        subscription.event_types = _clean_event_types(event_types)
    if enabled is True and not subscription.enabled:
        subscription.enabled, subscription.disabled_at, subscription.disabled_reason = True, None, ""
        subscription.failing_since = None
    elif enabled is False and subscription.enabled:
        subscription.enabled, subscription.disabled_at = False, timezone.now()
        subscription.disabled_reason = "Turned off by an admin."
    subscription.save()
    _subscriptions_changed(subscription.tenant_id)
    return subscription


@transaction.atomic
def webhook_subscription_rotate(*, subscription: WebhookSubscription) -> IssuedSubscription:
    """A new secret; the current one becomes the previous one and keeps signing beside it for
    WEBHOOKS_ROTATION_GRACE_SECONDS, so receivers can switch without losing a delivery."""
    subscription = (
        WebhookSubscription.objects.for_tenant(subscription.tenant_id).select_for_update().get(pk=subscription.pk)
    )
    secret = secret_new()
    subscription.previous_secret_sealed = subscription.secret_sealed
    subscription.previous_secret_expires_at = timezone.now() + timedelta(
        seconds=settings.WEBHOOKS_ROTATION_GRACE_SECONDS
    )
    subscription.secret_sealed = secretbox.seal(secret)
    subscription.save(
        update_fields=["previous_secret_sealed", "previous_secret_expires_at", "secret_sealed", "updated_at"]
    )
    return IssuedSubscription(subscription, secret)


@transaction.atomic
def webhook_subscription_delete(*, subscription: WebhookSubscription) -> None:
    """Deletes it with its deliveries and their attempts (the events stay for the other subscriptions)."""
    tenant_id = subscription.tenant_id
    WebhookSubscription.objects.for_tenant(tenant_id).filter(pk=subscription.pk).delete()
    _subscriptions_changed(tenant_id)


@transaction.atomic
def webhook_delivery_replay(*, subscription: WebhookSubscription, delivery_id: int) -> WebhookDelivery:
    """Sends a finished delivery (delivered, failed or given up) again, now, with the same `webhook-id` and a
    fresh retry budget."""
    delivery = (
        WebhookDelivery.objects.for_tenant(subscription.tenant_id)
        .select_for_update()
        .filter(pk=delivery_id, subscription_id=subscription.pk)
        .first()
    )
    if delivery is None:
        from contactcenter.errors import NotFound

        raise NotFound("delivery")
    if not subscription.enabled:
        raise Conflict("subscription_disabled", "The subscription is disabled: enable it first, then replay.")
    if delivery.state == WebhookDeliveryState.PENDING:
        raise Conflict("delivery_pending", "This delivery is still being attempted; its next try is scheduled.")
    delivery.state, delivery.attempts, delivery.next_attempt_at = WebhookDeliveryState.PENDING, 0, timezone.now()
    delivery.claimed_at = None
    delivery.save(update_fields=["state", "attempts", "next_attempt_at", "claimed_at", "updated_at"])
    tenant_id, pk = delivery.tenant_id, delivery.pk
    transaction.on_commit(lambda: _trigger_all(tenant_id, [pk]))
    return delivery
