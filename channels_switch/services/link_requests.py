"""Link requests (seed 001): continue a contact's conversation on a messaging app. An integrator (or an agent)
asks for links for the channels it wants; each enabled connector of those gets a link that opens the customer's
app with a message prefilled with a one-time code: WhatsApp (`https://wa.me/<number>?text=…`), SMS (`sms:` with a
body), email (`mailto:` to the conversation's reply address). The first message that carries the code, from
whatever address, proves that address: it becomes a verified identity of the contact (a contact that already held
it verified is merged into this one: the code shows they are the same customer), and a live web chat the request
was made for moves to that channel and address, with its history, the widget still showing it live. Otherwise the
message goes on as any inbound message of the contact. Codes expire (`LINK_REQUEST_MINUTES`) and work once; only
their hash is kept. A code that is unknown, used or expired is just text: the message is stored as usual.

From the console (`link_request_send`), the assignee of a live web chat sends the links into the chat itself, as the
notice `link_request.sent` the widget shows as buttons; the move such a code makes is marked `via: link`, and the
widget keeps showing the chat live."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from channels_switch.models import ChannelConnector, ConnectorKind, LinkRequest
from channels_switch.services.email import reply_address
from channels_switch.services.relay import RECIPIENT_KINDS
from channels_switch.services.switch import IN_A_SENTENCE, conversation_switch_linked
from chat.events import agent_public_name, iso
from chat.models import Channel, Conversation, ConversationStatus, Message
from chat.selectors import AgentActor, conversation_get_for
from chat.services import system_notice_post
from chat.services.contacts import contact_merge
from contactcenter.errors import ApplicationError, NotFound, PermissionDenied
from contactcenter.models import Contact, ContactIdentity, user_display_name
from contactcenter.services import contact_identity_add

# Unambiguous capitals and digits (no 0/O, 1/I/L): read off a screen and typed again if need be.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_RE = re.compile(r"\bSB-([A-Z2-9]{4})-?([A-Z2-9]{4})\b", re.IGNORECASE)
LINK_CHANNELS = (ConnectorKind.WHATSAPP, ConnectorKind.SMS, ConnectorKind.EMAIL)
# The words of each link's button in the web chat (the widget keeps the same words of its own).
LINK_BUTTONS = {
    ConnectorKind.WHATSAPP: "Continue on WhatsApp",
    ConnectorKind.SMS: "Continue by SMS",
    ConnectorKind.EMAIL: "Continue by email",
}
LINKS_SENT = "link_request.sent"  # the system notice that carries the links into the web chat


def _code_new() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(8))


def _shown(code: str) -> str:
    return f"SB-{code[:4]}-{code[4:]}"


def _hash(code: str) -> str:
    return hashlib.sha256(code.upper().encode()).hexdigest()


@dataclass(frozen=True)
class Link:
    channel: str
    url: str
    code: str  # as the customer's message carries it: SB-XXXX-XXXX
    expires_at: datetime


@dataclass(frozen=True)
class IssuedLinks:
    contact: Contact
    conversation: Conversation | None
    links: list[Link]
    unavailable: dict[str, str]  # channel → why there is no link for it


def _text(code: str) -> str:
    return f"Hello, I'd like to continue my conversation here. My code is {_shown(code)}."


def _url(connector: ChannelConnector, conversation: Conversation | None, code: str) -> str:
    text = _text(code)
    if connector.kind == ConnectorKind.WHATSAPP:
        digits = re.sub(r"\D", "", connector.from_address)
        return f"https://wa.me/{digits}?text={quote(text)}"
    if connector.kind == ConnectorKind.SMS:
        # `?&body=`: the form both iOS and Android read.
        return f"sms:{connector.from_address}?&body={quote(text)}"
    to = reply_address(connector, conversation.pk) if conversation is not None else connector.from_address
    return f"mailto:{to}?subject={quote('Continuing our conversation')}&body={quote(text)}"


def _conversation(tenant_id: int, contact: Contact, conversation_id: int | None) -> Conversation | None:
    """The conversation the links continue: the one named (the contact's, not closed), else the contact's
    latest open one, else none (the first message then starts one, as any inbound message)."""
    live = Conversation.objects.for_tenant(tenant_id).filter(contact=contact).exclude(status=ConversationStatus.CLOSED)
    if conversation_id is None:
        return live.order_by("-pk").first()
    conversation = live.filter(pk=conversation_id).first()
    if conversation is None:
        raise ApplicationError(
            "invalid",
            "No open conversation of this contact has that id.",
            {"conversation_id": ["Not an open conversation of this contact."]},
        )
    return conversation


@transaction.atomic
def link_request_create(
    *, tenant_id: int, contact_id: int, channels: list[str], created_by: str, conversation_id: int | None = None
) -> IssuedLinks:
    """A link per wanted channel that has an enabled connector (the first one of that kind); the others are
    listed with why. The codes are shown in the links only, never again."""
    contact = Contact.objects.for_tenant(tenant_id).filter(pk=contact_id).first()
    if contact is None:
        raise NotFound("contact")
    wanted = list(dict.fromkeys(channels))
    unknown = [channel for channel in wanted if channel not in LINK_CHANNELS]
    if not wanted or unknown:
        raise ApplicationError(
            "invalid",
            "Ask for links on whatsapp, sms or email.",
            {"channels": [f"Choose among {', '.join(LINK_CHANNELS)}."]},
        )
    conversation = _conversation(tenant_id, contact, conversation_id)
    expires_at = timezone.now() + timedelta(minutes=settings.LINK_REQUEST_MINUTES)
    links: list[Link] = []
    unavailable: dict[str, str] = {}
    for channel in wanted:
        connector = (
            ChannelConnector.objects.for_tenant(tenant_id).filter(kind=channel, enabled=True).order_by("pk").first()
        )
        if connector is None:
            unavailable[channel] = f"No {channel} channel is on."
            continue
        code = _code_new()
        LinkRequest.objects.create(
            tenant_id=tenant_id,
            contact=contact,
            conversation=conversation,
            connector=connector,
            code_hash=_hash(code),
            expires_at=expires_at,
            created_by=created_by[:200],
        )
        links.append(
            Link(channel=channel, url=_url(connector, conversation, code), code=_shown(code), expires_at=expires_at)
        )
    return IssuedLinks(contact=contact, conversation=conversation, links=links, unavailable=unavailable)


def link_send_refusal(*, conversation: Conversation, user_id: int) -> ApplicationError | None:
    """Why the agent `user_id` may not send links into this conversation now, or None: only the assignee of a live
    web chat may (the links continue that chat; a chat on SMS, WhatsApp or email is there already)."""
    if conversation.status == ConversationStatus.CLOSED:
        return ApplicationError(
            "conversation_closed", "This chat is closed: links go only into a live chat.", status=409
        )
    if conversation.channel != Channel.WEB:
        where = IN_A_SENTENCE[ConnectorKind(conversation.channel)]
        return ApplicationError(
            "links_unavailable",
            f"This chat goes on by {where} already: links go only into a live web chat.",
            status=409,
        )
    if conversation.assignee_id != user_id:
        return PermissionDenied("Only the agent assigned to this chat can send it links.")
    if conversation.contact_id is None:
        return ApplicationError("links_unavailable", "This chat has no contact to link.", status=409)
    return None


@dataclass(frozen=True)
class LinksSent:
    issued: IssuedLinks
    message: Message  # the notice that carries them into the chat


@transaction.atomic
def link_request_send(*, actor: AgentActor, conversation_id: int, channels: list[str]) -> LinksSent:
    """The console's "Send a link to continue on…": the assigned agent of a live web chat asks for links on
    `channels` (`link_request_create`, for this conversation) and they go into the chat, in the same transaction,
    as the system notice `link_request.sent`, which the widget shows as one button per link (the agents see the
    links too). Refused, with nothing written, when none of the channels has an enabled connector."""
    conversation, _ = conversation_get_for(actor=actor, conversation_id=conversation_id, write=True, lock=True)
    refusal = link_send_refusal(conversation=conversation, user_id=actor.user.pk)
    if refusal is not None:
        raise refusal
    assert conversation.contact_id is not None
    issued = link_request_create(
        tenant_id=actor.tenant_id,
        contact_id=conversation.contact_id,
        channels=channels,
        created_by=user_display_name(actor.user),
        conversation_id=conversation.pk,
    )
    if not issued.links:
        raise ApplicationError(
            "links_unavailable",
            "None of these channels is on: turn WhatsApp, SMS or email on in Settings → Channels.",
            {"channels": list(issued.unavailable.values())},
            status=409,
        )
    agent_name = agent_public_name(actor.user)
    names = [IN_A_SENTENCE[ConnectorKind(link.channel)] for link in issued.links]
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    message = system_notice_post(
        conversation=conversation,
        event=LINKS_SENT,
        body=f"{agent_name} sent links to continue this conversation on {listed}.",
        event_data={
            "agent_name": agent_name,
            "links": [
                {"channel": link.channel, "label": LINK_BUTTONS[ConnectorKind(link.channel)], "url": link.url}
                for link in issued.links
            ],
            "expires_at": iso(issued.links[0].expires_at),
        },
    )
    return LinksSent(issued=issued, message=message)


def link_request_use(*, connector: ChannelConnector, address: str, body: str) -> Conversation | None:
    """For an inbound message from `address` on `connector` (inside its transaction): when `body` carries a live
    code of one of this connector's link requests, the code is used up, `address` becomes the contact's verified
    identity and the conversation the request was made for goes on here (a live web chat moves to this channel);
    returns that conversation, or None (no code, or one that no longer works: the message goes on as usual)."""
    match = CODE_RE.search(body or "")
    if match is None:
        return None
    now = timezone.now()
    link = (
        LinkRequest.objects.for_tenant(connector.tenant_id)
        .select_for_update()
        .filter(code_hash=_hash(match[1] + match[2]), connector=connector, used_at__isnull=True, expires_at__gt=now)
        .first()
    )
    if link is None:
        return None
    link.used_at, link.used_address = now, address
    link.save(update_fields=["used_at", "used_address"])
    kind = RECIPIENT_KINDS[ConnectorKind(connector.kind)][0]
    holder = (
        ContactIdentity.objects.for_tenant(connector.tenant_id)
        .filter(kind=kind, value=address, verified=True)
        .exclude(contact_id=link.contact_id)
        .values_list("contact_id", flat=True)
        .first()
    )
    if holder is not None:  # the code proves the one customer behind both contacts
        contact_merge(
            tenant_id=connector.tenant_id,
            contact_id=link.contact_id,
            merged_contact_id=holder,
            merged_by=f"Link request ({link.created_by})",
        )
    contact_identity_add(contact=Contact.objects.get(pk=link.contact_id), kind=kind, value=address, verified=True)
    if link.conversation_id is None:
        return None
    conversation = (
        Conversation.objects.for_tenant(connector.tenant_id)
        .select_for_update()
        .filter(pk=link.conversation_id, contact_id=link.contact_id)
        .exclude(status=ConversationStatus.CLOSED)
        .first()
    )
    if conversation is None:
        return None
    if conversation.channel == Channel.WEB:
        conversation_switch_linked(conversation=conversation, channel=connector.kind, address=address)
        return conversation
    if conversation.channel == connector.kind:
        if conversation.channel_address != address:
            conversation.channel_address = address
            conversation.save(update_fields=["channel_address"])
        return conversation
    return None  # on another provider's channel: the message starts or continues the contact's own here
