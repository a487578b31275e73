"""The console's read models (an interface, not a domain module): the hello snapshot an agent socket opens
with, one conversation as the console shows it, and the inbox's rows. Composes chat, queueing and agents reads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction

from agents.models import AgentProfile, CannedTemplate, PauseReason
from agents.services import active_disposition_list
from chat import events
from chat.models import ConversationStatus
from chat.selectors import (
    AgentActor,
    agent_actor_refresh,
    agent_conversation_get,
    agent_open_conversation_list,
    contact_data,
    conversation_visibility,
)
from contactcenter.models import user_display_name
from queueing.selectors import (
    WAITING_LIST_LIMIT,
    InboxFilters,
    agent_queue_ids,
    conversation_queues,
    inbox_list,
    inbox_rows_get,
    pending_offer_ids,
    pending_offer_list,
    waiting_ids,
    waiting_list,
)
from queueing.services import agent_console_open, agent_console_ping


@dataclass(frozen=True)
class ConsoleSession:
    """What an agent socket needs at connect: the hello frame and the queues that filter waiting events."""

    hello: dict[str, Any]
    queue_ids: list[int]


@dataclass
class LiveState:
    """What a console shows that no message seq repairs: its pending offers and waiting list (conversation ids)
    and the agent's own presence. The socket keeps the state it has told its console; a ping compares it with
    the database's and, when they differ, sends the whole state again (`state.sync`): so an `offer.new`,
    `offer.withdrawn`, `waiting.*` or `agent.presence` lost on the way is repaired within one heartbeat."""

    offers: set[int]
    waiting: set[int]
    presence: str
    pause_reason: str | None = None  # its name, while paused

    @classmethod
    def of_frame(cls, frame: dict[str, Any]) -> LiveState:
        """The state a `hello` or `state.sync` frame gives the console."""
        if "me" in frame:
            presence, reason = frame["me"]["presence"], (frame["me"].get("pause_reason") or {}).get("name")
        else:
            presence, reason = frame["presence"], frame.get("pause_reason")
        return cls(
            offers={offer["conversation_id"] for offer in frame["offers"]},
            waiting={item["conversation_id"] for item in frame["waiting"]},
            presence=presence,
            pause_reason=reason,
        )

    def agrees_with(self, truth: LiveState) -> bool:
        if self.offers != truth.offers or (self.presence, self.pause_reason) != (truth.presence, truth.pause_reason):
            return False
        if len(truth.waiting) >= WAITING_LIST_LIMIT:
            # The list is cut at the limit and live `waiting.added` events go past it: only what the
            # database lists must be there.
            return truth.waiting <= self.waiting
        return self.waiting == truth.waiting


@dataclass(frozen=True)
class ConsolePing:
    """A ping's one trip to the database: the member as it is now (None: access gone; another actor: a new
    role) and, while unchanged, the queues afresh and the live state to check the console's against."""

    actor: AgentActor | None
    queue_ids: list[int]
    live: LiveState | None


def _presence(actor: AgentActor) -> tuple[str, str | None]:
    """The agent's presence and, while paused, the name of its reason."""
    row = (
        AgentProfile.objects.filter(tenant_id=actor.tenant_id, user=actor.user)
        .values_list("presence", "pause_reason__name")
        .first()
    )
    if row is None:
        return "offline", None
    return row[0], row[1] if row[0] == "paused" else None


def console_ping(*, actor: AgentActor) -> ConsolePing:
    fresh = agent_actor_refresh(actor=actor)
    if fresh is not actor:
        return ConsolePing(actor=fresh, queue_ids=[], live=None)
    queue_ids = agent_console_ping(actor=actor)
    presence, reason = _presence(actor)
    live = LiveState(
        offers=pending_offer_ids(actor=actor), waiting=waiting_ids(actor=actor), presence=presence, pause_reason=reason
    )
    return ConsolePing(actor=actor, queue_ids=queue_ids, live=live)


def console_state_sync(*, actor: AgentActor) -> dict[str, Any]:
    """The `state.sync` frame: the console's offers, waiting list and presence, whole (docs/protocol.md §4)."""
    presence, reason = _presence(actor)
    return {
        "type": "state.sync",
        "offers": pending_offer_list(actor=actor),
        "waiting": waiting_list(actor=actor),
        "presence": presence,
        "pause_reason": reason,
    }


def _with_queues(tenant_id: int, conversations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Adds each conversation's queue (where it was routed; None: nowhere), in one query for all."""
    queues = conversation_queues(tenant_id=tenant_id, conversation_ids=[c["id"] for c in conversations])
    for conversation in conversations:
        conversation["queue"] = queues.get(conversation["id"])
    return conversations


def console_conversation(*, actor: AgentActor, conversation_id: int) -> dict[str, Any]:
    """One conversation as the console shows it (`conversation.get`, after `conversation.assigned`)."""
    return _with_queues(actor.tenant_id, [agent_conversation_get(actor=actor, conversation_id=conversation_id)])[0]


@transaction.atomic
def console_open(*, actor: AgentActor) -> ConsoleSession:
    """An agent socket opens: counts it and re-offers waiting work (queueing), then reads the console's state
    in the same transaction. The waiting list is read first: when nothing waits for the agent there is
    nothing to offer, and the offer pass is skipped (offers never change the waiting list)."""
    waiting = waiting_list(actor=actor)
    profile = agent_console_open(actor=actor, anything_waiting=bool(waiting))
    conversations = _with_queues(actor.tenant_id, agent_open_conversation_list(actor=actor))
    hello = {
        "type": "hello",
        "v": events.PROTOCOL_VERSION,
        "me": {
            "user_id": actor.user.pk,
            "name": user_display_name(actor.user),
            "role": actor.role,
            "presence": profile.presence,
            "pause_reason": (
                {"id": profile.pause_reason.pk, "name": profile.pause_reason.name}
                if profile.presence == "paused" and profile.pause_reason is not None
                else None
            ),
            "max_chats": profile.max_chats,
            "open_chats": sum(1 for c in conversations if c["status"] == ConversationStatus.OPEN),
        },
        "conversations": conversations,
        "offers": pending_offer_list(actor=actor),
        "waiting": waiting,
        "dispositions": active_disposition_list(tenant_id=actor.tenant_id),
        "pause_reasons": list(
            PauseReason.objects.for_tenant(actor.tenant_id)
            .filter(is_active=True, system="")
            .order_by("name")
            .values("id", "name", "paid")
        ),
        "templates": list(CannedTemplate.objects.for_tenant(actor.tenant_id).values("id", "name", "body")),
        "limits": {"max_chars": settings.MESSAGE_MAX_CHARS},
    }
    return ConsoleSession(hello=hello, queue_ids=agent_queue_ids(actor=actor))


def _inbox_row(conversation: Any, actor: AgentActor) -> dict[str, Any]:
    """One inbox row (docs/protocol.md §7): `access` says how opening it works (write/read: its tab; history:
    the contact's page, as any conversation of the tenant an agent takes no part in)."""
    route = getattr(conversation, "queue_route", None)
    return {
        "id": conversation.pk,
        "status": conversation.status,
        "channel": conversation.channel,
        "important": conversation.important,
        "contact": contact_data(conversation.contact),
        "assignee": events.user_ref(conversation.assignee if conversation.assignee_id else None),
        "queue": {"id": route.queue_id, "name": route.queue_name} if route is not None else None,
        "created_at": events.iso(conversation.created_at),
        "last_activity_at": events.iso(conversation.activity),
        "unread": conversation.unread,
        "preview": conversation.preview or "",
        "access": conversation_visibility(reader=actor, conversation=conversation).level,
        "version": conversation.state_version,
    }


def console_inbox(*, actor: AgentActor, filters: InboxFilters, cursor: str | None, limit: int) -> dict[str, Any]:
    """A page of the inbox: `{"conversations": [row], "next_cursor"}`."""
    page = inbox_list(actor=actor, filters=filters, cursor=cursor, limit=limit)
    return {
        "conversations": [_inbox_row(conversation, actor) for conversation in page.conversations],
        "next_cursor": page.next_cursor,
    }


def console_inbox_rows(*, actor: AgentActor, filters: InboxFilters, conversation_ids: list[int]) -> dict[str, Any]:
    """The rows `inbox.changed` named that the agent still sees under these filters (no `next_cursor`)."""
    conversations = inbox_rows_get(actor=actor, filters=filters, conversation_ids=conversation_ids)
    return {"conversations": [_inbox_row(conversation, actor) for conversation in conversations], "next_cursor": None}
