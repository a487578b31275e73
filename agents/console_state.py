"""The console's read models (an interface, not a domain module): the hello snapshot an agent socket opens
with, and one conversation as the console shows it. Composes chat, queueing and agents reads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction

from agents.models import CannedTemplate
from agents.services import active_disposition_list
from chat import events
from chat.models import ConversationStatus
from chat.selectors import AgentActor, agent_conversation_get, agent_open_conversation_list
from contactcenter.models import user_display_name
from queueing.selectors import agent_queue_ids, conversation_queues, pending_offer_list, waiting_list
from queueing.services import agent_console_open


@dataclass(frozen=True)
class ConsoleSession:
    """What an agent socket needs at connect: the hello frame and the queues that filter waiting events."""

    hello: dict[str, Any]
    queue_ids: list[int]


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
    in the same transaction."""
    profile = agent_console_open(actor=actor)
    conversations = _with_queues(actor.tenant_id, agent_open_conversation_list(actor=actor))
    hello = {
        "type": "hello",
        "v": events.PROTOCOL_VERSION,
        "me": {
            "user_id": actor.user.pk,
            "name": user_display_name(actor.user),
            "role": actor.role,
            "presence": profile.presence,
            "max_chats": profile.max_chats,
            "open_chats": sum(1 for c in conversations if c["status"] == ConversationStatus.OPEN),
        },
        "conversations": conversations,
        "offers": pending_offer_list(actor=actor),
        "waiting": waiting_list(actor=actor),
        "dispositions": active_disposition_list(tenant_id=actor.tenant_id),
        "templates": list(CannedTemplate.objects.for_tenant(actor.tenant_id).values("id", "name", "body")),
        "limits": {"max_chars": settings.MESSAGE_MAX_CHARS},
    }
    return ConsoleSession(hello=hello, queue_ids=agent_queue_ids(actor=actor))
