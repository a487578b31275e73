"""An agent with room pulls the oldest waiting chats of their queues (`agent_offers_refresh`), skipping a chat
another transaction holds: several agents refreshing at once in several processes get different chats instead
of queueing behind the same first rows, and a chat a colleague's offer holds is never offered twice."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from agents.models import AgentProfile, Presence
from chat.models import Conversation
from chat.selectors import agent_actor_for
from queueing.models import Offer, OfferStatus
from queueing.services import agent_offers_refresh, conversation_request

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def request(widget, n: int):
    return conversation_request(widget=widget, visitor_id=f"v{n}", answers={"name": f"Visitor {n}"}).conversation


def pending(conversation) -> list[int]:
    return list(
        Offer.objects.filter(conversation=conversation, status=OfferStatus.PENDING).values_list("agent_id", flat=True)
    )


def test_a_refresh_skips_a_chat_another_transaction_holds_and_takes_the_next(widget, queue, online):
    if connection.vendor != "postgresql":
        pytest.skip("SKIP LOCKED is PostgreSQL's")
    AgentProfile.objects.filter(user=online).update(presence=Presence.ONLINE, max_chats=0)  # both wait in line
    first, second = request(widget, 1), request(widget, 2)
    AgentProfile.objects.filter(user=online).update(max_chats=1)
    held, release, done = threading.Event(), threading.Event(), threading.Event()

    def hold_first() -> None:
        try:
            with transaction.atomic():
                list(Conversation.objects.select_for_update().filter(pk=first.pk).values_list("pk", flat=True))
                held.set()
                release.wait(30)
        finally:
            connection.close()
            done.set()

    holder = threading.Thread(target=hold_first)
    holder.start()
    try:
        assert held.wait(10)
        # Would wait on the first chat's lock without SKIP LOCKED (until the holder lets go, 30 s later).
        offers = agent_offers_refresh(actor=agent_actor_for(online))
        assert not done.is_set()  # the holder still held it while the refresh ran
    finally:
        release.set()
        holder.join(30)
    assert [offer.conversation_id for offer in offers] == [second.pk]
    assert (pending(first), pending(second)) == ([], [online.pk])


def test_a_refresh_offers_the_oldest_chats_up_to_the_agents_room_and_never_one_held_by_an_offer(
    tenant, widget, queue, online
):
    from tests.factories import QueueMemberFactory

    colleague = QueueMemberFactory(tenant=tenant, queue=queue).user
    AgentProfile.objects.filter(user__in=[online, colleague]).update(presence=Presence.ONLINE, max_chats=0)
    chats = [request(widget, n) for n in range(1, 5)]
    AgentProfile.objects.filter(user=colleague).update(max_chats=2)
    agent_offers_refresh(actor=agent_actor_for(colleague))
    assert [pending(chat) for chat in chats] == [[colleague.pk], [colleague.pk], [], []]
    AgentProfile.objects.filter(user=online).update(max_chats=2)
    offers = agent_offers_refresh(actor=agent_actor_for(online))
    assert [offer.conversation_id for offer in offers] == [chats[2].pk, chats[3].pk]
    assert [pending(chat) for chat in chats] == [[colleague.pk], [colleague.pk], [online.pk], [online.pk]]
    assert agent_offers_refresh(actor=agent_actor_for(online)) == []  # no room left: the offers count
