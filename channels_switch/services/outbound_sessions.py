"""Agent-started sessions (seed 003): an agent writes first to a customer on SMS, WhatsApp or email.

`session_start` checks the account against the channel (a phone number in international format for SMS and
WhatsApp, checked with phonenumbers and stored E.164; an email address for email), finds or makes the contact
and its identity, refuses a second open session with the same customer on the channel (naming the open one, so
the console takes the agent there), and opens a conversation on the channel assigned to the agent who started it:
no queue, no offer, it is theirs at once and counts against their cap like an accepted chat. The agent's first
message, when given, goes out through the relay (chat's `message_post`, whose `outbound_message_stored` writes
the `Delivery` in the same transaction); on WhatsApp a new session has no customer-service window yet, so free
text is refused there and only an approved template goes (`whatsapp_template_send`). `session_reopen` opens a
closed session again, for the agent who reopens it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from agents.models import AgentProfile
from channels_switch.models import ChannelConnector, ConnectorKind
from channels_switch.services.relay import RECIPIENT_KINDS, _recipient
from channels_switch.services.whatsapp_templates import whatsapp_template_send
from chat import events
from chat.models import Conversation, ConversationStatus, Message
from chat.selectors import AgentActor
from chat.services import conversation_updated_publish, message_post, system_notice_post
from contactcenter.errors import ApplicationError, Conflict, NotFound, PermissionDenied
from contactcenter.models import Contact, ContactIdentity, IdentityKind
from contactcenter.realtime import agent_group, publish_on_commit
from contactcenter.services import contact_create, contact_identity_add, identity_normalise
from contactcenter.services.webhooks_out import (
    CONVERSATION_ASSIGNED,
    CONVERSATION_CREATED,
    conversation_assigned_data,
    conversation_data,
    webhook_event_record,
)

# What each channel's account is, said when the agent gives something else.
ACCOUNT_NEEDED = {
    ConnectorKind.SMS: "SMS needs a phone number in international format, like +14155550123.",
    ConnectorKind.WHATSAPP: "WhatsApp needs a phone number in international format, like +14155550123.",
    ConnectorKind.EMAIL: "Email needs an email address, like jane@example.com.",
}
# Digits with the punctuation people write phone numbers with, and nothing else: a phone number typed for email.
LOOKS_LIKE_PHONE = re.compile(r"\+?[\d\s().-]{5,}")
OPEN_STATUSES = (ConversationStatus.WAITING, ConversationStatus.OPEN)


class SessionExists(Conflict):
    """Refused: the customer has an open session on the channel already; `conversation_id` names it."""

    def __init__(self, conversation: Conversation, label: str):
        super().__init__(
            "session_exists",
            f"There is already an open {label} session with {conversation.contact}: it opens instead "
            f"(conversation {conversation.pk}).",
        )
        self.conversation_id = conversation.pk

    def as_dict(self) -> dict[str, object]:
        return {**super().as_dict(), "conversation_id": self.conversation_id}


@dataclass(frozen=True)
class TemplateFirst:
    """The first message as one of the tenant's approved WhatsApp templates, with its variables ("1" … "n")."""

    template_id: int
    variables: Mapping[str, str]


@dataclass(frozen=True)
class SessionStarted:
    conversation: Conversation
    message: Message | None  # the agent's first message, when one was given
    reopened: bool


def _wrong(kind: str, detail: str = "") -> ApplicationError:
    needed = ACCOUNT_NEEDED[ConnectorKind(kind)]
    message = f"{needed} {detail}".strip()
    return ApplicationError("account_kind", message, {"account": [message]})


def account_normalise(*, kind: str, account: str) -> str:
    """The customer's account on a channel as stored: E.164 for SMS and WhatsApp (international format with +
    and the country code, a valid number), lower case for email. Anything else is refused with what the channel
    needs."""
    account = (account or "").strip()
    if not account:
        return _raise(_wrong(kind))
    if kind == ConnectorKind.EMAIL:
        if "@" not in account and LOOKS_LIKE_PHONE.fullmatch(account):
            return _raise(_wrong(kind, "A phone number does not receive email."))
        try:
            return identity_normalise(kind=IdentityKind.EMAIL, value=account)
        except ApplicationError as exc:
            raise _wrong(kind, f"{account} is not a valid email address.") from exc
    if "@" in account:
        return _raise(_wrong(kind, "An email address cannot receive it."))
    if not account.startswith("+"):
        return _raise(_wrong(kind, "Start with + and the country code."))
    try:
        return identity_normalise(kind=IdentityKind.PHONE, value=account)
    except ApplicationError as exc:
        raise _wrong(kind, f"{account} is not a valid phone number.") from exc


def _raise(error: ApplicationError) -> str:
    raise error


def _connector(tenant_id: int, connector_id: int) -> ChannelConnector:
    connector = ChannelConnector.objects.for_tenant(tenant_id).filter(pk=connector_id).first()
    if connector is None:
        raise NotFound("channel connector")
    if not connector.enabled:
        label = ConnectorKind(connector.kind).label
        raise ApplicationError("channel_off", f"The {label} channel is turned off (Settings → Channels).", status=409)
    return connector


def _agent_room(actor: AgentActor) -> AgentProfile:
    """The agent's profile, locked (their starts and accepts are serialised, so the cap holds), with room left
    for one more open conversation."""
    profile = AgentProfile.objects.select_for_update().filter(tenant_id=actor.tenant_id, user=actor.user).first()
    if profile is None:
        raise PermissionDenied("You have no agent profile.")
    load = (
        Conversation.objects.for_tenant(actor.tenant_id)
        .filter(assignee=actor.user, status=ConversationStatus.OPEN)
        .count()
    )
    if load >= profile.max_chats:
        raise Conflict(
            "at_capacity",
            f"You already have {profile.max_chats} open conversations: close one before starting another.",
        )
    return profile


def _contact_for(*, connector: ChannelConnector, account: str, contact_id: int | None, contact_name: str) -> Contact:
    """The contact the session is with: the one given (the tenant's), else the one holding the account on the
    channel (a verified identity first), else a new one named `contact_name` (or by the account)."""
    tenant_id = connector.tenant_id
    kinds = RECIPIENT_KINDS[ConnectorKind(connector.kind)]
    identities = ContactIdentity.objects.for_tenant(tenant_id).filter(kind__in=kinds, value=account)
    if contact_id is not None:
        contact = Contact.objects.for_tenant(tenant_id).filter(pk=contact_id).first()
        if contact is None:
            raise NotFound("contact")
        holder = identities.filter(verified=True).exclude(contact=contact).select_related("contact").first()
        if holder is not None:
            raise Conflict(
                "account_taken",
                f"{account} belongs to another contact, {holder.contact} (verified): start the session with them.",
            )
        return contact
    found = identities.filter(verified=True).order_by("pk").first() or identities.order_by("-pk").first()
    if found is not None:
        return Contact.objects.for_tenant(tenant_id).get(pk=found.contact_id)
    return contact_create(tenant=connector.tenant, name=(contact_name or account)[:120])


def _address_checked(*, contact: Contact, connector: ChannelConnector, account: str) -> None:
    """The account becomes the contact's address on the channel (typed by the agent: not verified), and it must
    be the one the relay sends to; refused when the customer opted out there."""
    kinds = RECIPIENT_KINDS[ConnectorKind(connector.kind)]
    if not ContactIdentity.objects.for_tenant(contact.tenant_id).filter(contact=contact, kind__in=kinds, value=account):
        contact_identity_add(contact=contact, kind=kinds[0], value=account)
    label = ConnectorKind(connector.kind).label
    # The relay addresses a conversation by the contact's identities (_recipient): make sure it picks this one.
    probe = Conversation(tenant_id=contact.tenant_id, contact_id=contact.pk, channel=connector.kind)
    recipient = _recipient(probe, connector.kind)
    if recipient is None or recipient.value != account:
        where = recipient.value if recipient is not None else "another address"
        raise Conflict(
            "contact_address_differs",
            f"{contact}'s {label} messages go to {where}: start the session with that address, or with a new "
            f"contact for {account}.",
        )
    if recipient.opted_out_at is not None:
        raise Conflict(
            "opted_out",
            f"The customer opted out of {label} messages at {account} (replied STOP): nothing can be sent there "
            "until they reply START.",
        )


def _open_session(tenant_id: int, *, contact: Contact, channel: str, account: str = "") -> Conversation | None:
    """The customer's open (or waiting) conversation on the channel: the contact's, or one a switch moved to the
    account."""
    same_customer = Q(contact=contact) | Q(channel_address=account) if account else Q(contact=contact)
    return (
        Conversation.objects.for_tenant(tenant_id)
        .filter(same_customer, channel=channel, status__in=OPEN_STATUSES)
        .select_related("contact")
        .order_by("-pk")
        .first()
    )


def _first_message(
    *,
    actor: AgentActor,
    conversation: Conversation,
    body: str,
    template: TemplateFirst | None,
    client_id: str | None,
) -> Message | None:
    """The agent's first message, through the relay (the delivery is written in this transaction); None when
    the agent writes it later in the console."""
    client_id = client_id or str(uuid.uuid4())
    if template is not None:
        return whatsapp_template_send(
            actor=actor,
            conversation_id=conversation.pk,
            template_id=template.template_id,
            variables=template.variables,
            client_id=client_id,
        ).message
    if body.strip():
        return message_post(actor=actor, conversation_id=conversation.pk, body=body, client_id=client_id).message
    return None


def _announce(actor: AgentActor, conversation: Conversation, profile: AgentProfile) -> None:
    """The agent is at work on it (routing's idle time restarts, as on an accept); their consoles open its tab, and
    integrators hear of it (`conversation.assigned`, with no queue)."""
    profile.idle_since = timezone.now()
    profile.save(update_fields=["idle_since"])
    webhook_event_record(
        tenant_id=actor.tenant_id,
        type=CONVERSATION_ASSIGNED,
        data=conversation_assigned_data(conversation, agent_id=actor.user.pk),
    )
    conversation_updated_publish(conversation, agents_only=False)
    publish_on_commit(
        group=agent_group(actor.tenant_id, actor.user.pk), event=events.conversation_assigned(conversation.pk)
    )


@transaction.atomic
def session_start(
    *,
    actor: AgentActor,
    connector_id: int,
    account: str,
    contact_id: int | None = None,
    contact_name: str = "",
    body: str = "",
    template: TemplateFirst | None = None,
    client_id: str | None = None,
) -> SessionStarted:
    """A new session the agent starts with a customer on the connector's channel, assigned to them (open, no
    queue), with their first message (`body`, or on WhatsApp a `template`) relayed when given. Refused with the
    open session's id (`SessionExists`) when the customer has one on that channel already."""
    connector = _connector(actor.tenant_id, connector_id)
    kind = ConnectorKind(connector.kind)
    label = kind.label
    account = account_normalise(kind=kind, account=account)
    if template is not None and kind != ConnectorKind.WHATSAPP:
        raise ApplicationError(
            "invalid", "Templates are sent on WhatsApp only.", {"template": ["Templates are for WhatsApp."]}
        )
    profile = _agent_room(actor)
    contact = _contact_for(connector=connector, account=account, contact_id=contact_id, contact_name=contact_name)
    # Two starts with one customer at once: the second waits here and then finds the first one's session.
    contact = Contact.objects.for_tenant(actor.tenant_id).select_for_update().get(pk=contact.pk)
    existing = _open_session(actor.tenant_id, contact=contact, channel=kind, account=account)
    if existing is not None:
        raise SessionExists(existing, label)
    _address_checked(contact=contact, connector=connector, account=account)
    conversation = Conversation.objects.create(
        tenant_id=actor.tenant_id, contact=contact, channel=kind, status=ConversationStatus.OPEN, assignee=actor.user
    )
    webhook_event_record(tenant_id=actor.tenant_id, type=CONVERSATION_CREATED, data=conversation_data(conversation))
    name = events.agent_public_name(actor.user)
    system_notice_post(
        conversation=conversation,
        event="session.started",
        body=f"{name} started this {label} session with {account}.",
        event_data={"agent_name": name, "channel": kind.value, "address": account},
        private=True,
    )
    _announce(actor, conversation, profile)
    message = _first_message(actor=actor, conversation=conversation, body=body, template=template, client_id=client_id)
    return SessionStarted(conversation=conversation, message=message, reopened=False)


@transaction.atomic
def session_reopen(
    *,
    actor: AgentActor,
    conversation_id: int,
    body: str = "",
    template: TemplateFirst | None = None,
    client_id: str | None = None,
) -> SessionStarted:
    """A closed SMS, WhatsApp or email session opened again by an agent of the tenant, assigned to them, on the
    same channel and address; refused (`SessionExists`) when the customer has another one open there."""
    conversation = (
        Conversation.objects.for_tenant(actor.tenant_id)
        .select_for_update(of=("self",))
        .select_related("contact")
        .filter(pk=conversation_id)
        .first()
    )
    if conversation is None:
        raise NotFound("conversation")
    if conversation.channel not in ConnectorKind.values:
        raise ApplicationError(
            "not_a_session", "Only SMS, WhatsApp and email conversations can be reopened.", status=409
        )
    kind = ConnectorKind(conversation.channel)
    if conversation.status != ConversationStatus.CLOSED:
        raise SessionExists(conversation, kind.label)
    connector = ChannelConnector.objects.for_tenant(actor.tenant_id).filter(kind=kind).first()
    if connector is None:
        raise ApplicationError(
            "channel_off", f"The {kind.label} channel is not set up (Settings → Channels).", status=409
        )
    _connector(actor.tenant_id, connector.pk)
    profile = _agent_room(actor)
    contact = Contact.objects.for_tenant(actor.tenant_id).select_for_update().get(pk=conversation.contact_id)
    other = _open_session(actor.tenant_id, contact=contact, channel=kind, account=conversation.channel_address)
    if other is not None:
        raise SessionExists(other, kind.label)
    conversation.status, conversation.assignee, conversation.closed_at = ConversationStatus.OPEN, actor.user, None
    conversation.save(update_fields=["status", "assignee", "closed_at"])
    name = events.agent_public_name(actor.user)
    system_notice_post(
        conversation=conversation,
        event="session.reopened",
        body=f"{name} reopened this {kind.label} session.",
        event_data={"agent_name": name, "channel": kind.value},
        private=True,
    )
    _announce(actor, conversation, profile)
    message = _first_message(actor=actor, conversation=conversation, body=body, template=template, client_id=client_id)
    return SessionStarted(conversation=conversation, message=message, reopened=True)
