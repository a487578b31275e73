"""channels_switch's reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q, QuerySet

from channels_switch.models import ChannelConnector, ConnectorKind, Provider, WhatsAppTemplate, WidgetSwitching
from chat.models import Conversation, ConversationStatus, Message, SenderKind
from contactcenter.models import Contact, ContactIdentity


def connector_for_webhook(*, key: str, provider: str) -> ChannelConnector | None:
    """The connector a webhook URL names by its key (which names the tenant too), if it uses `provider`. Its
    tenant is not joined: a webhook is answered with the connector's own fields (the hot path of a provider's
    burst), and what processes a message later loads what it needs."""
    if not key or len(key) > 64:
        return None
    return ChannelConnector.objects.filter(webhook_key=key, provider=provider).first()


def widget_switching_for(*, tenant_id: int, widget_id: int | None) -> WidgetSwitching | None:
    """A widget's channel switching settings (None: never saved, or no widget, so the button is off)."""
    if widget_id is None:
        return None
    return WidgetSwitching.objects.for_tenant(tenant_id).filter(widget_id=widget_id).first()


# WhatsApp's customer-service window: free text only this long after the customer's last message.
WHATSAPP_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class WhatsAppWindow:
    """Where a WhatsApp conversation stands with the 24-hour window. `last_customer_message_at`: the customer's
    last message on WhatsApp (None: they never wrote there, e.g. a chat just moved to WhatsApp)."""

    last_customer_message_at: datetime | None
    ends_at: datetime | None
    open: bool


def whatsapp_window(*, conversation: Conversation, now: datetime) -> WhatsAppWindow:
    """The conversation's customer-service window at `now`, from the customer's last message on WhatsApp."""
    last = (
        Message.objects.for_tenant(conversation.tenant_id)
        .filter(conversation_id=conversation.pk, sender_kind=SenderKind.VISITOR, channel=ConnectorKind.WHATSAPP)
        .order_by("-seq")
        .values_list("created_at", flat=True)
        .first()
    )
    ends_at = last + WHATSAPP_WINDOW if last is not None else None
    return WhatsAppWindow(last_customer_message_at=last, ends_at=ends_at, open=ends_at is not None and now <= ends_at)


def whatsapp_connector_provider(*, tenant_id: int) -> str | None:
    """The provider of the tenant's WhatsApp connector (None: none is set up)."""
    return (
        ChannelConnector.objects.for_tenant(tenant_id)
        .filter(kind=ConnectorKind.WHATSAPP)
        .values_list("provider", flat=True)
        .first()
    )


def whatsapp_template_list(*, tenant_id: int, sendable: bool = False) -> QuerySet[WhatsAppTemplate]:
    """The tenant's WhatsApp templates by name and language; `sendable`: only those an agent may send now (on
    and approved: any on the sandbox, those with a Content SID on Twilio)."""
    templates = WhatsAppTemplate.objects.for_tenant(tenant_id).order_by("name", "language", "pk")
    if sendable:
        templates = templates.filter(enabled=True)
        if whatsapp_connector_provider(tenant_id=tenant_id) == Provider.TWILIO:
            templates = templates.exclude(content_sid="")
    return templates


@dataclass(frozen=True)
class WhatsAppComposer:
    """What an agent may send on a WhatsApp conversation now: the window, whether the conversation waits for the
    customer's answer to a switch's introduction (nothing goes until then, templates included), the reason free
    text cannot go (empty: it can), and the templates to send instead."""

    window: WhatsAppWindow
    awaiting_customer: bool
    reason: str
    templates: list[WhatsAppTemplate]


def whatsapp_composer(*, conversation: Conversation, now: datetime) -> WhatsAppComposer:
    window = whatsapp_window(conversation=conversation, now=now)
    # The relay's rule after a switch: nothing but the introduction until the customer wrote on the channel.
    awaiting = bool(conversation.channel_address) and window.last_customer_message_at is None
    if awaiting:
        reason = (
            f"Waiting for the customer to answer the introduction from {conversation.channel_address}: until they "
            "do, nothing more is sent to an address typed into a form, templates included."
        )
    elif window.open:
        reason = ""
    elif window.last_customer_message_at is None:
        reason = "The customer has not written on WhatsApp yet: WhatsApp takes only an approved template until they do."
    else:
        reason = (
            "The customer's last WhatsApp message is more than 24 hours old: WhatsApp takes free text only within "
            "24 hours of it. Send an approved template; the window opens again when the customer answers."
        )
    templates = [] if awaiting else list(whatsapp_template_list(tenant_id=conversation.tenant_id, sendable=True))
    return WhatsAppComposer(window=window, awaiting_customer=awaiting, reason=reason, templates=templates)


def link_channels(*, tenant_id: int) -> list[str]:
    """The channels a link request gives a link on now (one of its kind turned on), in the order the console offers
    them: WhatsApp, SMS, email (services/link_requests.py)."""
    order = [ConnectorKind.WHATSAPP, ConnectorKind.SMS, ConnectorKind.EMAIL]
    on = set(
        ChannelConnector.objects.for_tenant(tenant_id)
        .filter(enabled=True, kind__in=order)
        .values_list("kind", flat=True)
    )
    return [kind.value for kind in order if kind in on]


def session_connectors(*, tenant_id: int) -> list[ChannelConnector]:
    """The tenant's channels an agent may start a session on (turned on), in the kinds' order."""
    return list(ChannelConnector.objects.for_tenant(tenant_id).filter(enabled=True).order_by("kind", "pk"))


SESSION_CONTACTS_LIMIT = 8


@dataclass(frozen=True)
class SessionContact:
    """A contact an agent may start a session with: its addresses, and its last closed session on each channel
    (conversation id by channel), which the agent may reopen instead."""

    contact: Contact
    identities: list[ContactIdentity]
    closed_sessions: dict[str, int]


def session_contacts_find(*, tenant_id: int, query: str, limit: int = SESSION_CONTACTS_LIMIT) -> list[SessionContact]:
    """Contacts whose name or any address contains `query` (at least 2 characters), by name."""
    query = query.strip()[:100]
    if len(query) < 2:
        return []
    by_address = ContactIdentity.objects.for_tenant(tenant_id).filter(value__icontains=query).values("contact_id")
    contacts = list(
        Contact.objects.for_tenant(tenant_id)
        .filter(Q(name__icontains=query) | Q(pk__in=by_address))
        .order_by("name", "pk")[:limit]
    )
    identities: dict[int, list[ContactIdentity]] = {contact.pk: [] for contact in contacts}
    for identity in ContactIdentity.objects.for_tenant(tenant_id).filter(contact_id__in=identities).order_by("pk"):
        identities[identity.contact_id].append(identity)
    closed: dict[int, dict[str, int]] = {contact.pk: {} for contact in contacts}
    for contact_id, channel, conversation_id in (
        Conversation.objects.for_tenant(tenant_id)
        .filter(contact_id__in=closed, channel__in=ConnectorKind.values, status=ConversationStatus.CLOSED)
        .order_by("-closed_at", "-pk")
        .values_list("contact_id", "channel", "pk")
    ):
        closed[contact_id].setdefault(channel, conversation_id)
    return [SessionContact(contact=c, identities=identities[c.pk], closed_sessions=closed[c.pk]) for c in contacts]
