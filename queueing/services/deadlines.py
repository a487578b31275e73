"""The routing engine's deadlines, acted on by the one sweep: offers not answered in time, and waiting
conversations that no offer holds (an agent who became free while no event said so)."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from chat import events
from chat.models import Conversation, ConversationStatus
from chat.selectors import AgentActor
from contactcenter.models import Role
from contactcenter.realtime import agent_group, publish_on_commit
from queueing.models import Offer, OfferStatus
from queueing.services.presence import agent_missed_offer
from queueing.services.routing import _offer_onwards

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


def routing_sweep() -> dict[str, Any]:
    return {"offers_missed": offers_expire_sweep(), "waiting_offered": waiting_offer_sweep()}
