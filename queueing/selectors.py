"""Queueing's reads: the waiting list and an agent's pending offers."""

from __future__ import annotations

from typing import Any

from django.db.models import Q

from chat.models import Conversation, ConversationStatus
from chat.selectors import AgentActor
from queueing.events import offer_data, waiting_item
from queueing.models import Offer, OfferStatus, QueueMember

WAITING_LIST_LIMIT = 200


def agent_queue_ids(*, actor: AgentActor) -> list[int]:
    return list(
        QueueMember.objects.filter(tenant_id=actor.tenant_id, user=actor.user).values_list("queue_id", flat=True)
    )


def waiting_list(*, actor: AgentActor) -> list[dict[str, Any]]:
    """Conversations the agent may pick up without an offer: waiting in their queues, or routed nowhere."""
    queryset = (
        Conversation.objects.for_tenant(actor.tenant_id)
        .filter(status=ConversationStatus.WAITING, assignee__isnull=True)
        .select_related("widget", "contact", "widget__route__queue")
    )
    if not actor.supervises:
        queryset = queryset.filter(
            Q(widget__route__queue__memberships__user=actor.user) | Q(widget__route__isnull=True)
        ).distinct()
    items = []
    for conversation in queryset.order_by("created_at", "pk")[:WAITING_LIST_LIMIT]:
        route = getattr(conversation.widget, "route", None) if conversation.widget_id else None
        items.append(waiting_item(conversation, route.queue if route is not None else None))
    return items


def pending_offer_list(*, actor: AgentActor) -> list[dict[str, Any]]:
    offers = (
        Offer.objects.filter(
            tenant_id=actor.tenant_id,
            agent=actor.user,
            status=OfferStatus.PENDING,
            conversation__status=ConversationStatus.WAITING,
        )
        .select_related("conversation__widget", "conversation__contact", "queue")
        .order_by("created_at", "pk")
    )
    return [offer_data(offer, offer.conversation) for offer in offers]
