"""Messages customers send on a provider's channel: each finds its contact by the address it came from and
continues that contact's open conversation on the channel, or starts one routed to the connector's queue.
A provider's status callbacks move a delivery forward, never back."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from django.db import IntegrityError, transaction

from channels_switch.models import ChannelConnector, ConnectorKind, Delivery, InboundReceipt, Provider
from channels_switch.services.link_requests import link_request_use
from channels_switch.services.media import inbound_media_record
from channels_switch.services.relay import PROVIDER_PROGRESS, RECIPIENT_KINDS, message_delivery_set
from channels_switch.services.switch import held_replies_relay
from chat.models import Conversation, ConversationStatus, DeliveryStatus, Message
from chat.services import message_receive, system_notice_post
from contactcenter.errors import Conflict
from contactcenter.models import Contact, ContactIdentity
from contactcenter.services import (
    contact_create,
    contact_identity_add,
    contact_identity_opt_out,
    contact_identity_verify,
    identity_normalise,
)
from queueing.services import conversation_request_on_channel


@dataclass(frozen=True)
class Inbound:
    conversation_id: int  # 0: a repeat of a webhook whose conversation was deleted since
    message_id: int


def _contact_for(connector: ChannelConnector, address: str, name: str) -> Contact:
    """The contact holding this address on the channel; the message proves the address, so it becomes (or
    stays) verified. A new address makes a new contact."""
    kinds = RECIPIENT_KINDS[ConnectorKind(connector.kind)]
    identities = ContactIdentity.objects.for_tenant(connector.tenant_id).filter(kind__in=kinds, value=address)
    known = identities.filter(verified=True).select_related("contact").order_by("pk").first()
    if known is not None:
        return known.contact
    typed = identities.select_related("contact").order_by("-pk").first()
    if typed is not None:  # typed into a survey, never proved: this message proves it
        contact_identity_verify(identity=typed)
        return typed.contact
    # Named as the customer's profile says (WhatsApp), else by the address, as agents will know them.
    contact = contact_create(tenant=connector.tenant, name=(name or address)[:120])
    contact_identity_add(contact=contact, kind=kinds[0], value=address, verified=True)
    return contact


def _contact_locked(connector: ChannelConnector, address: str, name: str) -> Contact:
    """_contact_for, its row locked to the end of the transaction: a merge (chat's `contact_merge`, which locks
    both contacts) either waits for this message to be stored, or has already moved the address to the contact
    it kept and deleted this one, which a second look finds."""
    for _ in range(3):
        contact = _contact_for(connector, address, name)
        if list(Contact.objects.select_for_update(no_key=True).filter(pk=contact.pk).values_list("pk", flat=True)):
            return contact
    raise RuntimeError(f"the contact of {connector.kind} sender kept moving")  # retried by the inbox sweep


def _switched_to(connector: ChannelConnector, address: str) -> Conversation | None:
    """The open conversation a switch moved to this address on this channel (the latest), whose introduction
    this message answers: the answer proves the address the visitor typed, so it becomes verified there."""
    conversation = (
        Conversation.objects.for_tenant(connector.tenant_id)
        .filter(channel=connector.kind, channel_address=address)
        .exclude(status=ConversationStatus.CLOSED)
        .select_related("contact")
        .order_by("-pk")
        .first()
    )
    if conversation is None:
        return None
    address_proved(connector, conversation, address)
    return conversation


def address_proved(connector: ChannelConnector, conversation: Conversation, address: str) -> None:
    """A message from `address` answered the conversation there: the contact's typed (unverified) identity with
    that address is proved."""
    kinds = RECIPIENT_KINDS[ConnectorKind(connector.kind)]
    for identity in ContactIdentity.objects.for_tenant(connector.tenant_id).filter(
        contact_id=conversation.contact_id, kind__in=kinds, value=address, verified=False
    ):
        # Another contact may hold it verified already: then it stays as typed here, and the chat goes on.
        with contextlib.suppress(Conflict):
            contact_identity_verify(identity=identity)


# What a customer texts to stop or restart messages (the carriers' standard words, as Twilio honours them).
STOP_WORDS = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"}
START_WORDS = {"START", "UNSTOP", "YES"}


def opt_out_signal(*, body: str, provider_says: str = "") -> bool | None:
    """True: the customer opted out; False: opted back in; None: neither. The provider's own word
    (Twilio's OptOutType with Advanced Opt-Out) wins over the message's text."""
    said = (provider_says or "").strip().upper()
    if said in {"STOP", "START"}:
        return said == "STOP"
    word = body.strip().upper().rstrip(".!")
    if word in STOP_WORDS:
        return True
    if word in START_WORDS:
        return False
    return None


def _record_opt_out(connector: ChannelConnector, conversation: Conversation, address: str, opted_out: bool) -> None:
    kinds = RECIPIENT_KINDS[ConnectorKind(connector.kind)]
    changed = False
    for identity in ContactIdentity.objects.for_tenant(connector.tenant_id).filter(
        contact_id=conversation.contact_id, kind__in=kinds, value=address
    ):
        changed = contact_identity_opt_out(identity=identity, opted_out=opted_out) or changed
    if not changed:
        return
    label = ConnectorKind(connector.kind).label
    locked = Conversation.objects.select_for_update().get(pk=conversation.pk, tenant_id=conversation.tenant_id)
    if opted_out:
        body = f"The customer opted out of {label} messages (replied STOP): nothing more can be sent to {address}."
    else:
        body = f"The customer opted back in to {label} messages at {address}."
    system_notice_post(
        conversation=locked,
        event="contact.opted_out" if opted_out else "contact.opted_in",
        body=body,
        event_data={"channel": connector.kind, "address": address},
    )


def receipt_claim(connector: ChannelConnector, provider_id: str) -> tuple[InboundReceipt | None, Inbound | None]:
    """The receipt of a message the provider calls `provider_id`, new; or, for a repeat of a webhook already
    stored, (None, what was stored then)."""
    try:
        with transaction.atomic():
            receipt = InboundReceipt.objects.create(
                tenant_id=connector.tenant_id, connector=connector, provider_id=provider_id
            )
    except IntegrityError:
        receipt = InboundReceipt.objects.select_related("message").get(
            tenant_id=connector.tenant_id, connector=connector, provider_id=provider_id
        )
        stored = receipt.message
        if stored is None:  # the conversation was deleted since: nothing to add it to
            return None, Inbound(conversation_id=0, message_id=0)
        return None, Inbound(conversation_id=stored.conversation_id, message_id=stored.pk)
    return receipt, None


def conversation_for_sender(
    connector: ChannelConnector, address: str, name: str
) -> tuple[Conversation | None, Contact]:
    """The open conversation on the connector's channel a message from `address` continues (one switched to
    that address, else the open one of the contact holding it), or None; and that contact."""
    conversation = _switched_to(connector, address)
    if conversation is not None:
        return conversation, conversation.contact
    contact = _contact_locked(connector, address, name)
    conversation = (
        Conversation.objects.for_tenant(connector.tenant_id)
        .filter(contact=contact, channel=connector.kind)
        .exclude(status=ConversationStatus.CLOSED)
        .order_by("-pk")
        .first()
    )
    return conversation, contact


@transaction.atomic
def inbound_receive(
    *,
    connector: ChannelConnector,
    provider_id: str,
    sender: str,
    body: str,
    name: str = "",
    opt_out_type: str = "",
    media: list[tuple[str, str]] | None = None,
) -> Inbound:
    """Stores one inbound message (the provider's `provider_id`, from `sender`) once; its files (`media`: the
    provider's URL and type of each) are fetched after, each onto a message of its own. A STOP (or the
    provider's opt-out) marks the address opted out, and the agents see a notice; START reverses it."""
    kind = RECIPIENT_KINDS[ConnectorKind(connector.kind)][0]
    address = identity_normalise(kind=kind, value=sender)
    receipt, repeat = receipt_claim(connector, provider_id)
    if receipt is None:
        assert repeat is not None
        return repeat
    return receipt_fill(
        connector=connector,
        receipt=receipt,
        address=address,
        body=body,
        name=name,
        opt_out_type=opt_out_type,
        media=media or [],
    )


def receipt_fill(
    *,
    connector: ChannelConnector,
    receipt: InboundReceipt,
    address: str,
    body: str,
    name: str,
    opt_out_type: str,
    media: list[tuple[str, str]],
) -> Inbound:
    """The message a new receipt stands for, stored in the conversation it continues or starts (the caller's
    transaction, with the receipt claimed or locked)."""
    provider_id = receipt.provider_id
    if not body.strip() and media:  # a photo alone: its own message follows once it is fetched
        body = f"[sent {len(media)} file{'s' if len(media) > 1 else ''}]"
    conversation = link_request_use(connector=connector, address=address, body=body)
    if conversation is None:
        conversation, contact = conversation_for_sender(connector, address, name)
    if conversation is None:
        conversation, message = conversation_request_on_channel(
            contact=contact, channel=connector.kind, queue=connector.queue, body=body, client_id=provider_id
        )
    else:
        message = message_receive(conversation=conversation, body=body, client_id=provider_id)
    receipt.message = message
    receipt.save(update_fields=["message"])
    if conversation.channel_address == address:  # an answer on the channel a chat was switched to
        locked = Conversation.objects.select_for_update().get(pk=conversation.pk, tenant_id=conversation.tenant_id)
        held_replies_relay(conversation=locked)
    if media and connector.provider in (Provider.TWILIO, Provider.SANDBOX):
        inbound_media_record(connector=connector, conversation=conversation, provider_id=provider_id, media=media)
    signal = opt_out_signal(body=body, provider_says=opt_out_type)
    if signal is not None:
        _record_opt_out(connector, conversation, address, signal)
    return Inbound(conversation_id=conversation.pk, message_id=message.pk)


# How far a message got, in order; a callback that arrives late or twice never moves it back.
_PROGRESS_ORDER = {
    DeliveryStatus.PENDING: 0,
    DeliveryStatus.SENDING: 1,
    DeliveryStatus.SENT: 2,
    DeliveryStatus.DELIVERED: 3,
    DeliveryStatus.READ: 4,
}
FAILED_STATUSES = {"failed", "undelivered", "canceled"}


@transaction.atomic
def delivery_status_update(*, connector: ChannelConnector, provider_id: str, status: str, error_code: str = "") -> bool:
    """A provider's word on a message it took (Twilio's status callback); True when it changed something."""
    delivery = (
        Delivery.objects.for_tenant(connector.tenant_id)
        .select_for_update()
        .filter(connector=connector, provider_id=provider_id)
        .first()
    )
    if delivery is None:
        return False
    message = Message.objects.for_tenant(connector.tenant_id).get(pk=delivery.message_id)
    current = DeliveryStatus(message.delivery_status)
    if status in FAILED_STATUSES:
        if current in (DeliveryStatus.DELIVERED, DeliveryStatus.READ, DeliveryStatus.FAILED):
            return False
        new = DeliveryStatus.FAILED
        delivery.error_code = error_code[:32]
        delivery.error_message = f"The provider could not deliver it ({status}, error {error_code or 'unknown'})."
    else:
        progress = PROVIDER_PROGRESS.get(status)
        if progress is None or current == DeliveryStatus.FAILED:
            return False
        if _PROGRESS_ORDER[progress] <= _PROGRESS_ORDER[current]:
            return False
        new = progress
    delivery.provider_status = status[:16]
    delivery.save(update_fields=["provider_status", "error_code", "error_message", "updated_at"])
    error = delivery.error_message if new == DeliveryStatus.FAILED else ""
    message_delivery_set(tenant_id=connector.tenant_id, message_id=message.pk, status=new, error=error)
    return True
