"""Queueing's reads: the waiting list and an agent's pending offers."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from chat.models import Conversation, ConversationStatus
from chat.selectors import AgentActor, first_visitor_words, preview_text
from queueing.events import offer_data, waiting_item
from queueing.models import ConversationRoute, Offer, OfferStatus, Queue, QueueMember

WAITING_LIST_LIMIT = 200


def agent_queue_ids(*, actor: AgentActor) -> list[int]:
    return list(
        QueueMember.objects.filter(tenant_id=actor.tenant_id, user=actor.user).values_list("queue_id", flat=True)
    )


def conversation_queue(*, conversation: Conversation) -> Queue | None:
    """The queue the conversation was routed to (None: routed nowhere, or its queue was deleted since)."""
    route = (
        ConversationRoute.objects.filter(tenant_id=conversation.tenant_id, conversation_id=conversation.pk)
        .select_related("queue")
        .first()
    )
    return route.queue if route is not None else None


def conversation_queues(*, tenant_id: int, conversation_ids: list[int]) -> dict[int, dict[str, Any]]:
    """conversation id → `{"id", "name"}` of the queue each was routed to, in one query (absent: none)."""
    if not conversation_ids:
        return {}
    rows = ConversationRoute.objects.filter(tenant_id=tenant_id, conversation_id__in=conversation_ids).values_list(
        "conversation_id", "queue_id", "queue_name"
    )
    return {conversation_id: {"id": queue_id, "name": name} for conversation_id, queue_id, name in rows}


def with_queue(conversations: QuerySet[Conversation]) -> QuerySet[Conversation]:
    """The same conversations with their route joined: `conversation.queue_route.queue_name` costs no query."""
    return conversations.select_related("queue_route")


def _waiting(actor: AgentActor) -> QuerySet[Conversation]:
    """Conversations the agent may pick up without an offer: waiting in their queues, or routed nowhere; oldest
    first, at most WAITING_LIST_LIMIT."""
    queryset = Conversation.objects.for_tenant(actor.tenant_id).filter(
        status=ConversationStatus.WAITING, assignee__isnull=True
    )
    if not actor.supervises:
        queryset = queryset.filter(
            Q(queue_route__queue__memberships__user=actor.user) | Q(queue_route__queue__isnull=True)
        ).distinct()
    return queryset.order_by("created_at", "pk")[:WAITING_LIST_LIMIT]


def waiting_list(*, actor: AgentActor) -> list[dict[str, Any]]:
    """The waiting list as the console shows it (`waiting_item`s)."""
    items = []
    waiting = _waiting(actor).select_related("widget", "contact", "queue_route__queue")
    for conversation in waiting.annotate(first_words=first_visitor_words()):
        route = getattr(conversation, "queue_route", None)
        queue = route.queue if route is not None else None
        items.append(waiting_item(conversation, queue, preview=preview_text(conversation.first_words)))
    return items


def waiting_ids(*, actor: AgentActor) -> set[int]:
    """The ids of the waiting list, without building it: what a console's state is checked against."""
    return set(_waiting(actor).values_list("pk", flat=True))


def _pending_offers(actor: AgentActor) -> QuerySet[Offer]:
    return Offer.objects.filter(
        tenant_id=actor.tenant_id,
        agent=actor.user,
        status=OfferStatus.PENDING,
        conversation__status=ConversationStatus.WAITING,
    )


def pending_offer_list(*, actor: AgentActor) -> list[dict[str, Any]]:
    offers = (
        _pending_offers(actor)
        .select_related("conversation__widget", "conversation__contact", "queue")
        .prefetch_related("conversation__contact__identities")
        .annotate(first_words=first_visitor_words("conversation_id"))
        .order_by("created_at", "pk")
    )
    return [offer_data(offer, offer.conversation, preview=preview_text(offer.first_words)) for offer in offers]


def pending_offer_ids(*, actor: AgentActor) -> set[int]:
    """The conversation ids of the agent's pending offers (offers are keyed by conversation on the console)."""
    return set(_pending_offers(actor).values_list("conversation_id", flat=True))
