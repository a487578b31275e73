"""The routing engine's deadlines, acted on by the one sweep: offers not answered in time, and waiting
conversations that no offer holds (an agent who became free while no event said so)."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from chat import events
from chat.models import Conversation, ConversationStatus
from chat.selectors import AgentActor
from chat.services.state import conversation_abandon
from contactcenter.models import Role
from contactcenter.realtime import agent_group, publish_on_commit, tenant_agents_group
from queueing.models import ConversationRoute, Offer, OfferStatus
from queueing.selectors import IN_LINE, queue_agents_at_work
from queueing.services.line import queue_line_moved, queue_line_unserved
from queueing.services.presence import agent_missed_offer
from queueing.services.routing import _offer_onwards, _withdraw_offers

logger = logging.getLogger(__name__)

SWEEP_BATCH = 200


@transaction.atomic
def offer_expire(*, offer_id: int) -> bool:
    """One offer past its answer time limit: missed; its agent is paused ("Missed offer") and the chat goes
    to the next eligible agent. False when it was answered, withdrawn or is being handled meanwhile."""
    due = Offer.objects.filter(pk=offer_id, status=OfferStatus.PENDING, expires_at__lte=timezone.now())
    conversation_id = due.values_list("conversation_id", flat=True).first()
    if conversation_id is None:
        return False
    # The conversation first, as every path that changes offers takes it; one being accepted or closed right
    # now is left to the next pass (whose look at the offer will find it settled).
    if Conversation.objects.select_for_update(skip_locked=True).filter(pk=conversation_id).first() is None:
        return False
    offer = due.select_for_update().first()
    if offer is None:
        return False
    offer.status, offer.decided_at = OfferStatus.MISSED, timezone.now()
    offer.save(update_fields=["status", "decided_at"])
    publish_on_commit(
        group=agent_group(offer.tenant_id, offer.agent_id),
        event=events.offer_withdrawn(conversation_id=offer.conversation_id, offer_id=offer.pk, reason="missed"),
    )
    user = User.objects.get(pk=offer.agent_id)
    agent_missed_offer(actor=AgentActor(tenant_id=offer.tenant_id, user=user, role=Role.AGENT))
    _offer_onwards(offer.tenant_id, [offer.conversation_id])
    return True


def offers_expire_sweep() -> int:
    """The sweep's pass over offers: every one past its answer time limit expires; returns how many did."""
    due = list(
        Offer.objects.filter(status=OfferStatus.PENDING, expires_at__lte=timezone.now())
        .order_by("expires_at")
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    return sum(offer_expire(offer_id=offer_id) for offer_id in due)


def waiting_offer_sweep() -> int:
    """The sweep's pass over the queues: the oldest routed, waiting conversations that no offer holds are
    offered again (an agent may have room that no event announced); a queue none of whose agents can take its
    oldest is left until the next pass. Returns how many got an offer."""
    waiting = list(
        Conversation.objects.filter(
            status=ConversationStatus.WAITING, assignee__isnull=True, queue_route__queue__isnull=False
        )
        .exclude(offers__status=OfferStatus.PENDING)
        .order_by("created_at", "pk")
        .values_list("tenant_id", "pk", "queue_route__queue_id")[:SWEEP_BATCH]
    )
    offered, full = 0, set()
    for tenant_id, conversation_id, queue_id in waiting:
        if queue_id in full:
            continue
        with transaction.atomic():
            made = _offer_onwards(tenant_id, [conversation_id])
        if made:
            offered += made
        else:
            full.add(queue_id)
    return offered


@transaction.atomic
def queue_abandon(*, tenant_id: int, conversation_id: int) -> bool:
    """A queued visitor whose widget has been gone past the grace period (their lease on the conversation's
    `visitor_away_deadline` ran out) left the queue: the chat closes as abandoned, an agent holding its offer
    is told, and everyone behind moves up. False when they came back or an agent took it meanwhile."""
    conversation = conversation_abandon(tenant_id=tenant_id, conversation_id=conversation_id)
    if conversation is None:
        return False
    _withdraw_offers(
        Offer.objects.filter(conversation=conversation, status=OfferStatus.PENDING),
        reason_for={},
        default="abandoned",
    )
    route = ConversationRoute.objects.filter(tenant_id=tenant_id, conversation=conversation).first()
    if route is not None:
        route.abandoned_at = conversation.closed_at
        route.save(update_fields=["abandoned_at"])
        queue_line_moved(tenant_id=tenant_id, queue_id=route.queue_id)
    publish_on_commit(group=tenant_agents_group(tenant_id), event=events.waiting_removed(conversation.pk))
    return True


def queue_abandon_sweep() -> int:
    """The sweep's pass over queued visitors who are gone (web chats still waiting for their first agent, not
    messages left for later); returns how many left."""
    due = list(
        Conversation.objects.filter(IN_LINE, queue_route__isnull=False, visitor_away_deadline__lt=timezone.now())
        .order_by("visitor_away_deadline")
        .values_list("tenant_id", "pk")[:SWEEP_BATCH]
    )
    return sum(queue_abandon(tenant_id=tenant_id, conversation_id=pk) for tenant_id, pk in due)


def queue_unserved_sweep() -> int:
    """The sweep's pass over queues with visitors in line and none of their agents at work (two agents who went
    offline at once may each have seen the other still there): those visitors are told. Returns how many."""
    at_work = queue_agents_at_work(tenant_id=OuterRef("tenant_id"), queue_id=OuterRef("queue_route__queue_id"))
    lines = (
        Conversation.objects.filter(IN_LINE, queue_route__queue__isnull=False)
        .exclude(Exists(at_work))
        .order_by()
        .values_list("tenant_id", "queue_route__queue_id")
        .distinct()
    )
    told = 0
    for tenant_id, queue_id in list(lines)[:SWEEP_BATCH]:
        told += queue_line_unserved(tenant_id=tenant_id, queue_ids=[queue_id])
    return told


def routing_sweep() -> dict[str, Any]:
    return {
        "offers_missed": offers_expire_sweep(),
        "waiting_offered": waiting_offer_sweep(),
        "queue_left": queue_abandon_sweep(),
        "queue_unserved": queue_unserved_sweep(),
    }
