"""Twilio's inbound messages as an inbox: the webhook stores what the provider sent and answers at once; the
message reaches its conversation right after, in a task.

A provider waits on its webhook (Twilio for 15 s, then it gives up or retries), and a burst of customers
writing at once should never keep it waiting on contacts, routing and events. So the webhook's own work is the
connector by its key, the signature, the fields checked, and one row: an `InboundReceipt`, pending, holding the
provider's form fields. A task (the trigger, sent once that row is committed) processes it into the
conversation in one transaction with marking it done; the sweep processes what a lost task or a dead worker
left. A repeat of the webhook (the same MessageSid) finds its receipt and stores nothing.

Triggers coalesce, one drain per connector: while a connector's drain is scheduled or running (its slot held in
Redis), a newly kept message needs no task of its own; the drain processes that connector's pending messages in
the order they arrived (a customer's two texts stay in order), lets go of its slot, and then looks once more: a
message kept while the slot was held was committed before that look, so nothing is left behind. A slot whose
drain died frees itself after SLOT_TTL_SECONDS; the sweep re-triggers what such a drain left.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from channels_switch.models import ChannelConnector, ConnectorKind, InboundReceipt, InboundState
from channels_switch.services.inbound import Inbound, receipt_fill
from channels_switch.services.relay import RECIPIENT_KINDS, _slots, backoff_seconds
from contactcenter.errors import ApplicationError
from contactcenter.services import identity_normalise

logger = logging.getLogger(__name__)

MEDIA_PER_MESSAGE = 10  # Twilio's own limit on an MMS
INBOUND_MAX_ATTEMPTS = 6
TRIGGER_GRACE = timedelta(seconds=20)  # a pending row this much overdue lost its task: the sweep triggers it
SWEEP_BATCH = 200
SLOT_TTL_SECONDS = 15


@dataclass(frozen=True)
class InboundFields:
    """An inbound message in Twilio's form fields (the sandbox provider posts the same names)."""

    provider_id: str  # MessageSid
    sender: str  # From, without WhatsApp's "whatsapp:" prefix
    body: str
    name: str  # ProfileName (WhatsApp)
    opt_out_type: str  # OptOutType (Advanced Opt-Out)
    media: list[tuple[str, str]]  # (MediaUrlN, MediaContentTypeN)


def inbound_fields(params: Mapping[str, str]) -> InboundFields:
    count_text = params.get("NumMedia", "0")
    count = int(count_text) if count_text.isdigit() else 0
    media = [(params.get(f"MediaUrl{i}", ""), params.get(f"MediaContentType{i}", "")) for i in range(count)]
    return InboundFields(
        provider_id=params.get("MessageSid", "")[:200],
        sender=params.get("From", "").removeprefix("whatsapp:"),
        body=params.get("Body", ""),
        name=params.get("ProfileName", ""),
        opt_out_type=params.get("OptOutType", ""),
        media=[(url, kind) for url, kind in media[:MEDIA_PER_MESSAGE] if url],
    )


def _address(connector: ChannelConnector, fields: InboundFields) -> str:
    if not fields.provider_id or not fields.sender:
        raise ApplicationError("invalid", "MessageSid and From are required.")
    kind = RECIPIENT_KINDS[ConnectorKind(connector.kind)][0]
    return identity_normalise(kind=kind, value=fields.sender)


def inbound_accept(*, connector: ChannelConnector, params: Mapping[str, str], trigger: bool = True) -> int | None:
    """Keeps a checked webhook's message as a pending receipt and returns its id (None: a repeat of one kept
    already); with `trigger`, its processing is triggered once that is committed. A message without MessageSid or
    From, or from an address that is no phone number, is refused here (ApplicationError), while the provider can
    be told, and nothing is stored."""
    fields = inbound_fields(params)
    _address(connector, fields)
    try:
        with transaction.atomic():  # its own transaction (the caller has none): one INSERT, then the trigger
            receipt = InboundReceipt.objects.create(
                tenant_id=connector.tenant_id,
                connector=connector,
                provider_id=fields.provider_id,
                state=InboundState.PENDING,
                fields=dict(params),
                next_attempt_at=timezone.now(),
            )
            if trigger:
                transaction.on_commit(partial(_trigger_new, receipt.connector_id, receipt.pk))
    except IntegrityError:
        return None
    return receipt.pk


def _slot_key(connector_id: int) -> str:
    return f"switchboard:inbox:drain:{connector_id}"


def _trigger_new(connector_id: int, receipt_id: int) -> None:
    """A kept message's trigger: its connector's drain, unless one is scheduled or running already."""
    if settings.CELERY_TASK_ALWAYS_EAGER or not settings.REDIS_URL:
        _trigger(receipt_id)
        return
    try:
        if not _slots().set(_slot_key(connector_id), "1", nx=True, ex=SLOT_TTL_SECONDS):
            return
    except Exception as exc:  # Redis blinked: a task of its own (the sweep re-triggers it if this fails too)
        logger.warning("inbox slots unavailable (%r): triggering inbound message %s on its own", exc, receipt_id)
        _trigger(receipt_id)
        return
    from channels_switch.tasks import drain_inbound

    try:
        drain_inbound.delay(connector_id)
    except Exception as exc:
        logger.warning("inbound message %s kept; its drain could not be sent (%r): the sweep will", receipt_id, exc)
        _slot_release(connector_id)


def _trigger(receipt_id: int) -> None:
    from channels_switch.tasks import process_inbound

    try:
        process_inbound.delay(receipt_id)
    except Exception as exc:  # the broker blinked: the row is kept, and the sweep triggers it again
        logger.warning("inbound message %s kept; its task could not be sent (%r): the sweep will", receipt_id, exc)


def _slot_release(connector_id: int) -> None:
    try:
        _slots().delete(_slot_key(connector_id))
    except Exception as exc:
        logger.warning("inbox slot of connector %s not released (%r): it frees itself", connector_id, exc)


def _next_due(connector_id: int) -> int | None:
    return (
        InboundReceipt.objects.filter(
            connector_id=connector_id, state=InboundState.PENDING, next_attempt_at__lte=timezone.now()
        )
        .order_by("pk")
        .values_list("pk", flat=True)
        .first()
    )


def inbound_drain(*, connector_id: int) -> int:
    """What a connector's drain runs: its due messages, one at a time in the order they arrived, until none is
    left; then it lets go of the connector's slot and triggers once more if one came meanwhile. Returns how
    many it processed."""
    processed = 0
    try:
        while (receipt_id := _next_due(connector_id)) is not None:
            if inbound_process(receipt_id=receipt_id) is None and _next_due(connector_id) == receipt_id:
                break  # being processed elsewhere, or put off for a later attempt: the sweep has it
            processed += 1
            if processed % 20 == 0:
                with contextlib.suppress(Exception):
                    _slots().expire(_slot_key(connector_id), SLOT_TTL_SECONDS)
    finally:
        _slot_release(connector_id)
    due = _next_due(connector_id)
    if due is not None:
        _trigger_new(connector_id, due)
    return processed


@transaction.atomic
def inbound_process(*, receipt_id: int) -> Inbound | None:
    """Processes one pending receipt into its conversation and marks it done, in one transaction; None when
    there is nothing to do (done already, or being processed by another worker). A message the services refuse
    is marked failed with the reason; an unexpected error leaves it pending for a later attempt (the sweep), up
    to INBOUND_MAX_ATTEMPTS."""
    receipt = (
        InboundReceipt.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("connector__tenant", "connector__queue")
        .filter(pk=receipt_id, state=InboundState.PENDING)
        .first()
    )
    if receipt is None:
        return None
    connector, fields = receipt.connector, inbound_fields(receipt.fields)
    inbound = None
    try:
        with transaction.atomic():
            inbound = receipt_fill(
                connector=connector,
                receipt=receipt,
                address=_address(connector, fields),
                body=fields.body,
                name=fields.name,
                opt_out_type=fields.opt_out_type,
                media=fields.media,
            )
    except ApplicationError as exc:
        receipt.state, receipt.error = InboundState.FAILED, exc.message[:300]
        logger.warning("inbound message %s (connector %s) refused: %s", receipt.pk, connector.pk, exc.message)
    except Exception as exc:
        receipt.attempts += 1
        receipt.error = f"{type(exc).__name__}: {exc}"[:300]
        if receipt.attempts >= INBOUND_MAX_ATTEMPTS:
            receipt.state = InboundState.FAILED
        else:
            receipt.next_attempt_at = timezone.now() + timedelta(seconds=backoff_seconds(receipt.attempts))
        logger.exception(
            "inbound message %s (connector %s): attempt %s failed", receipt.pk, connector.pk, receipt.attempts
        )
        receipt.message = None  # rolled back with the rest
    else:
        # Done: the message holds what the fields said; the customer's text is not kept twice.
        receipt.state, receipt.error, receipt.fields = InboundState.DONE, "", {}
    receipt.save(update_fields=["state", "error", "fields", "attempts", "next_attempt_at"])
    return inbound


def inbound_inbox_sweep() -> dict[str, Any]:
    """The sweep's pass over the inbox: every pending message whose task was lost (or whose retry is due) is
    triggered again."""
    grace = timedelta(0) if settings.CELERY_TASK_ALWAYS_EAGER else TRIGGER_GRACE
    due = list(
        InboundReceipt.objects.filter(state=InboundState.PENDING, next_attempt_at__lte=timezone.now() - grace)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    for receipt_id in due:
        _trigger(receipt_id)
    return {"inbound_retriggered": len(due)}
