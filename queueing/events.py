"""Queueing's event payloads: a waiting conversation, an offer."""

from __future__ import annotations

from typing import Any

from chat.events import iso
from chat.models import Conversation
from chat.selectors import contact_data
from contactcenter.models import user_display_name
from queueing.models import Offer, Queue


def waiting_item(conversation: Conversation, queue: Queue | None, *, preview: str) -> dict[str, Any]:
    """`preview`: chat.selectors.conversation_preview, or for a list preview_text of a first_visitor_words
    annotation (one statement for all)."""
    widget = conversation.widget if conversation.widget_id else None
    return {
        "conversation_id": conversation.pk,
        "queue": {"id": queue.pk, "name": queue.name} if queue is not None else None,
        "waiting_since": iso(conversation.created_at),
        "contact_name": conversation.contact.name,
        "widget": {"id": widget.pk, "name": widget.name} if widget is not None else None,
        "preview": preview,
        "started_offline": conversation.started_offline,
    }


def offer_data(offer: Offer, conversation: Conversation, *, preview: str) -> dict[str, Any]:
    """`preview` as for waiting_item; the contact's identities are read through the relation (prefetch them)."""
    widget = conversation.widget if conversation.widget_id else None
    queue = offer.queue if offer.queue_id else None
    transferred_by = offer.transferred_by if offer.transferred_by_id else None
    return {
        "offer_id": offer.pk,
        "conversation_id": conversation.pk,
        "queue": {"id": queue.pk, "name": queue.name} if queue is not None else None,
        "waiting_since": iso(conversation.created_at),
        "offered_at": iso(offer.created_at),
        "expires_at": iso(offer.expires_at),
        # The limit this offer was made with (the queue's may have changed since).
        "answer_seconds": round((offer.expires_at - offer.created_at).total_seconds()) if offer.expires_at else None,
        "contact": contact_data(conversation.contact),
        "survey": list(conversation.survey or []),
        "widget": (
            {"id": widget.pk, "name": widget.name, "agent_external_url": widget.agent_external_url}
            if widget is not None
            else None
        ),
        "preview": preview,
        "started_offline": conversation.started_offline,
        # Who transferred the chat before this offer (None: it came straight from its queue).
        "transferred_by": user_display_name(transferred_by) if transferred_by is not None else None,
    }
