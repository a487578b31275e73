"""Typed payloads of live chat: what services publish on the channel layer and what sockets send (docs/protocol.md).

Layer events carry the agent's view; `visitor_*` functions cut it down to what a visitor may see, so the
visitor consumer forwards an allow-list, never the raw event.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal, NotRequired, TypedDict

from django.contrib.auth.models import User

from chat.models import Attachment, Conversation, Message, SenderKind
from chat.tokens import agent_attachment_url, visitor_attachment_url
from contactcenter.models import user_display_name

PROTOCOL_VERSION = 1


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def agent_public_name(user: User | None) -> str:
    """What a visitor sees of an agent: the first name, never the login (an email address)."""
    if user is None:
        return "Agent"
    return (user.first_name or "").strip() or "Agent"


class UserRef(TypedDict):
    id: int
    name: str


def user_ref(user: User | None) -> UserRef | None:
    return None if user is None else {"id": user.pk, "name": user_display_name(user)}


# --- messages ------------------------------------------------------------------------------------------


class AttachmentData(TypedDict):
    id: int
    filename: str
    content_type: str
    size: int
    is_image: bool
    url: NotRequired[str]


class MessageData(TypedDict):
    """The full message as it travels on the layer (agent view plus the sender's public name)."""

    id: int
    seq: int
    sender: str
    sender_user: UserRef | None
    sender_public_name: str | None
    private: bool
    body: str
    event: str
    event_data: dict[str, Any]
    client_id: str | None
    attachments: list[AttachmentData]
    created_at: str | None
    channel: str
    delivery_status: str
    delivery_error: str


def attachment_data(attachment: Attachment) -> AttachmentData:
    return {
        "id": attachment.pk,
        "filename": attachment.filename,
        "content_type": attachment.content_type,
        "size": attachment.size,
        "is_image": attachment.is_image,
    }


def message_data(message: Message, attachments: Iterable[Attachment] | None = None) -> MessageData:
    """`attachments` may be given to avoid a query; otherwise read from the (prefetched) relation."""
    sender = message.sender_user if message.sender_user_id else None
    files = list(attachments) if attachments is not None else list(message.attachments.all())
    return {
        "id": message.pk,
        "seq": message.seq,
        "sender": message.sender_kind,
        "sender_user": user_ref(sender),
        "sender_public_name": agent_public_name(sender) if message.sender_kind == SenderKind.AGENT else None,
        "private": message.is_private,
        "body": message.body,
        "event": message.event,
        "event_data": dict(message.event_data or {}),
        "client_id": message.client_id,
        "attachments": [attachment_data(a) for a in sorted(files, key=lambda a: a.pk)],
        "created_at": iso(message.created_at),
        "channel": message.channel,
        "delivery_status": message.delivery_status,
        "delivery_error": message.delivery_error,
    }


def agent_message_view(data: MessageData) -> dict[str, Any]:
    return {
        "id": data["id"],
        "seq": data["seq"],
        "sender": data["sender"],
        "sender_user": data["sender_user"],
        "private": data["private"],
        "body": data["body"],
        "event": data["event"],
        "event_data": data["event_data"],
        # Only agents' own ids: a visitor's client_id may be the one that started their conversation, and
        # a retried start with it hands out that visitor's token, so it never leaves the visitor's side.
        "client_id": data["client_id"] if data["sender"] == SenderKind.AGENT else None,
        "attachments": [{**a, "url": agent_attachment_url(attachment_id=a["id"])} for a in data["attachments"]],
        "created_at": data["created_at"],
        # Where it was written or sent, and for an agent's message on a provider's channel how far it got
        # (pending, sending, sent, delivered, read, failed with the reason).
        "channel": data.get("channel", "web"),
        "delivery_status": data.get("delivery_status", "sent"),
        "delivery_error": data.get("delivery_error", ""),
    }


def visitor_message_view(data: MessageData, *, visitor_id: str) -> dict[str, Any] | None:
    """None for anything a visitor must not see (private notes)."""
    if data["private"]:
        return None
    own = data["sender"] == SenderKind.VISITOR
    return {
        "id": data["id"],
        "seq": data["seq"],
        "sender": data["sender"],
        "sender_name": data["sender_public_name"],
        "body": data["body"],
        "event": data["event"],
        "event_data": data["event_data"],
        "client_id": data["client_id"] if own else None,
        "attachments": [
            {**a, "url": visitor_attachment_url(attachment_id=a["id"], visitor_id=visitor_id)}
            for a in data["attachments"]
        ],
        "created_at": data["created_at"],
    }


class MessageNewEvent(TypedDict):
    type: Literal["message.new"]
    conversation_id: int
    message: MessageData


def message_new(message: Message, attachments: Iterable[Attachment] | None = None) -> MessageNewEvent:
    return {
        "type": "message.new",
        "conversation_id": message.conversation_id,
        "message": message_data(message, attachments),
    }


class MessageDeliveryEvent(TypedDict):
    type: Literal["message.delivery"]
    conversation_id: int
    message_id: int
    seq: int
    delivery_status: str
    delivery_error: str


def message_delivery(message: Message) -> MessageDeliveryEvent:
    """How far an agent's message to a provider's channel got, changed (to the conversation's agents)."""
    return {
        "type": "message.delivery",
        "conversation_id": message.conversation_id,
        "message_id": message.pk,
        "seq": message.seq,
        "delivery_status": message.delivery_status,
        "delivery_error": message.delivery_error,
    }


# --- conversations -------------------------------------------------------------------------------------


class ConversationState(TypedDict):
    id: int
    status: str
    channel: str
    channel_address: str
    important: bool
    disposition_id: int | None
    assignee: UserRef | None
    participant_ids: list[int]
    answered_at: str | None
    closed_at: str | None
    last_seq: int
    version: int


class VisitorConversation(TypedDict):
    id: int
    status: str
    channel: str  # not "web" once the conversation moved to SMS, WhatsApp or email: the web session is over
    channel_address: str
    agent_name: str | None
    created_at: str | None
    closed_at: str | None
    last_seq: int
    agent_read_seq: int
    version: int


def conversation_state(conversation: Conversation, participant_ids: list[int] | None = None) -> ConversationState:
    if participant_ids is None:
        participant_ids = sorted(u.pk for u in conversation.participants.all())
    assignee = conversation.assignee if conversation.assignee_id else None
    return {
        "id": conversation.pk,
        "status": conversation.status,
        "channel": conversation.channel,
        "channel_address": conversation.channel_address,
        "important": conversation.important,
        "disposition_id": conversation.disposition_id,
        "assignee": user_ref(assignee),
        "participant_ids": participant_ids,
        "answered_at": iso(conversation.answered_at),
        "closed_at": iso(conversation.closed_at),
        "last_seq": conversation.last_seq,
        "version": conversation.state_version,
    }


def visitor_conversation(conversation: Conversation) -> VisitorConversation:
    assignee = conversation.assignee if conversation.assignee_id else None
    return {
        "id": conversation.pk,
        "status": conversation.status,
        "channel": conversation.channel,
        "channel_address": conversation.channel_address,
        "agent_name": agent_public_name(assignee) if assignee is not None else None,
        "created_at": iso(conversation.created_at),
        "closed_at": iso(conversation.closed_at),
        "last_seq": conversation.last_seq,
        "agent_read_seq": conversation.agent_read_seq,
        "version": conversation.state_version,
    }


class ConversationUpdatedEvent(TypedDict):
    type: Literal["conversation.updated"]
    conversation: ConversationState
    visitor_conversation: VisitorConversation


def conversation_updated(conversation: Conversation) -> ConversationUpdatedEvent:
    return {
        "type": "conversation.updated",
        "conversation": conversation_state(conversation),
        "visitor_conversation": visitor_conversation(conversation),
    }


class ConversationAssignedEvent(TypedDict):
    type: Literal["conversation.assigned"]
    conversation_id: int


def conversation_assigned(conversation_id: int) -> ConversationAssignedEvent:
    # Only the id: each socket reads the snapshot itself (it is large and per-agent).
    return {"type": "conversation.assigned", "conversation_id": conversation_id}


def conversation_unassigned(conversation_id: int, *, reason: str) -> dict[str, Any]:
    """To an agent's consoles: the conversation is no longer theirs ("transferred": they handed it on; "left":
    they left it to the colleague who goes on with it); the tab goes."""
    return {"type": "conversation.unassigned", "conversation_id": conversation_id, "reason": reason}


class ReadEvent(TypedDict):
    type: Literal["read"]
    conversation_id: int
    side: str
    seq: int
    user_id: int | None


def read_event(*, conversation_id: int, side: str, seq: int, user_id: int | None) -> ReadEvent:
    return {"type": "read", "conversation_id": conversation_id, "side": side, "seq": seq, "user_id": user_id}


class TypingEvent(TypedDict):
    type: Literal["typing"]
    conversation_id: int
    side: str
    user_id: int | None
    name: str | None
    public_name: str | None
    is_typing: bool
    private: bool
    # The sending socket's channel, so it does not get its own typing back.
    origin: str


def typing_event(
    *, conversation_id: int, side: str, user: User | None, is_typing: bool, private: bool, origin: str
) -> TypingEvent:
    return {
        "type": "typing",
        "conversation_id": conversation_id,
        "side": side,
        "user_id": user.pk if user is not None else None,
        "name": user_display_name(user) if user is not None else None,
        "public_name": agent_public_name(user) if user is not None else None,
        "is_typing": bool(is_typing),
        "private": bool(private),
        "origin": origin,
    }


class InboxChangedEvent(TypedDict):
    type: Literal["inbox.changed"]
    conversation_id: int


def inbox_changed(conversation_id: int) -> InboxChangedEvent:
    # Only the id: the console reads the row again through the inbox endpoint, which applies who may see it,
    # the console's filters and the unread count.
    return {"type": "inbox.changed", "conversation_id": conversation_id}


# --- offers, waiting list, presence (agents only) --------------------------------------------------------


class OfferNewEvent(TypedDict):
    type: Literal["offer.new"]
    offer: dict[str, Any]


def offer_new(offer: dict[str, Any]) -> OfferNewEvent:
    return {"type": "offer.new", "offer": offer}


class OfferWithdrawnEvent(TypedDict):
    type: Literal["offer.withdrawn"]
    conversation_id: int
    offer_id: int
    reason: str


def offer_withdrawn(*, conversation_id: int, offer_id: int, reason: str) -> OfferWithdrawnEvent:
    return {"type": "offer.withdrawn", "conversation_id": conversation_id, "offer_id": offer_id, "reason": reason}


class WaitingAddedEvent(TypedDict):
    type: Literal["waiting.added"]
    item: dict[str, Any]
    # Which agents may see it: members of this queue (None: every agent of the tenant).
    queue_id: int | None


def waiting_added(item: dict[str, Any], queue_id: int | None) -> WaitingAddedEvent:
    return {"type": "waiting.added", "item": item, "queue_id": queue_id}


class WaitingRemovedEvent(TypedDict):
    type: Literal["waiting.removed"]
    conversation_id: int


def waiting_removed(conversation_id: int) -> WaitingRemovedEvent:
    return {"type": "waiting.removed", "conversation_id": conversation_id}


class AgentPresenceEvent(TypedDict):
    type: Literal["agent.presence"]
    user_id: int
    name: str
    presence: str
    pause_reason: str | None  # the reason's name, when paused


def agent_presence(user: User, presence: str, pause_reason: str | None = None) -> AgentPresenceEvent:
    return {
        "type": "agent.presence",
        "user_id": user.pk,
        "name": user_display_name(user),
        "presence": presence,
        "pause_reason": pause_reason,
    }
