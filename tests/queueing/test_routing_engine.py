"""The routing engine on the test database: one agent at a time by the queue's method, caps that count the
offers an agent holds, rejection and expiry sending the chat on, the missed-offer pause, agents' own pause
reasons, and the sweep that offers waiting chats no offer holds."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from agents.models import AgentProfile, PauseReason, Presence
from chat.models import Conversation, ConversationStatus
from chat.selectors import VisitorActor, agent_actor_for
from contactcenter.errors import ApplicationError
from contactcenter.wiring.tasks import sweep_once
from queueing.models import Offer, OfferStatus
from queueing.services import (
    agent_presence_change,
    conversation_accept,
    conversation_end,
    conversation_request,
    offer_reject,
    offers_expire_sweep,
    queue_save,
    waiting_offer_sweep,
)
from tests.factories import MembershipFactory, QueueMemberFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def team(tenant, queue, online):
    """Three online members of the widget's queue, idle since 3, 2 and 1 minutes ago (the first longest)."""
    now = timezone.now()
    members = [online] + [QueueMemberFactory(tenant=tenant, queue=queue).user for _ in range(2)]
    for minutes, user in zip((3, 2, 1), members, strict=True):
        AgentProfile.objects.filter(user=user).update(
            presence=Presence.ONLINE, idle_since=now - timedelta(minutes=minutes), max_chats=3
        )
    return members


def request(widget, n: int):
    return conversation_request(widget=widget, visitor_id=f"v{n}", answers={"name": f"Visitor {n}"}).conversation


def offered_to(conversation) -> list[int]:
    return list(
        Offer.objects.filter(conversation=conversation, status=OfferStatus.PENDING).values_list("agent_id", flat=True)
    )


def test_a_chat_is_offered_to_one_agent_at_a_time_the_longest_idle_first(widget, queue, team):
    first, second, third = team
    assert offered_to(request(widget, 1)) == [first.pk]
    # An offer is work: the next chat goes to the next longest idle, and so on round the team.
    assert offered_to(request(widget, 2)) == [second.pk]
    assert offered_to(request(widget, 3)) == [third.pk]
    assert offered_to(request(widget, 4)) == [first.pk]


def test_round_robin_takes_the_least_recently_offered(widget, queue, team):
    queue_save(tenant=queue.tenant, instance=queue, routing_method="round_robin")
    first, second, third = team
    now = timezone.now()
    for minutes, user in zip((1, 5, 3), team, strict=True):
        AgentProfile.objects.filter(user=user).update(last_offered_at=now - timedelta(minutes=minutes))
    assert offered_to(request(widget, 1)) == [second.pk]
    assert offered_to(request(widget, 2)) == [third.pk]
    assert offered_to(request(widget, 3)) == [first.pk]


def test_least_busy_takes_the_agent_with_the_fewest_chats(tenant, widget, queue, team):
    queue_save(tenant=queue.tenant, instance=queue, routing_method="least_busy")
    first, second, third = team
    for user, chats in ((first, 2), (second, 0), (third, 1)):
        for n in range(chats):
            conversation = request(widget, 100 + user.pk * 10 + n)
            Offer.objects.filter(conversation=conversation).delete()
            conversation_accept(actor=agent_actor_for(user), conversation_id=conversation.pk)
    assert offered_to(request(widget, 1)) == [second.pk]


def test_an_agents_cap_counts_the_offers_they_hold(widget, queue, online):
    AgentProfile.objects.filter(user=online).update(max_chats=1)
    first = request(widget, 1)
    second = request(widget, 2)
    assert offered_to(first) == [online.pk]
    assert offered_to(second) == []  # the agent holds one offer: full; the chat waits in the queue
    conversation_accept(actor=agent_actor_for(online), conversation_id=first.pk)
    assert offered_to(second) == []
    AgentProfile.objects.filter(user=online).update(max_chats=2)
    assert waiting_offer_sweep() == 1  # room that no event announced: the sweep offers it
    assert offered_to(second) == [online.pk]


def test_a_rejected_chat_goes_to_the_next_agent_at_once_and_never_back(widget, queue, team):
    first, second, third = team
    conversation = request(widget, 1)
    offer_reject(actor=agent_actor_for(first), conversation_id=conversation.pk)
    assert offered_to(conversation) == [second.pk]
    offer_reject(actor=agent_actor_for(second), conversation_id=conversation.pk)
    assert offered_to(conversation) == [third.pk]
    offer_reject(actor=agent_actor_for(third), conversation_id=conversation.pk)
    assert offered_to(conversation) == []  # everyone said no: it waits (anyone may pick it up), for a while
    assert waiting_offer_sweep() == 0
    taken = conversation_accept(actor=agent_actor_for(second), conversation_id=conversation.pk)
    assert taken.status == ConversationStatus.OPEN


def test_when_no_one_else_can_take_it_a_rejected_chat_comes_back_after_a_while(settings, widget, queue, online):
    settings.ROUTING_REOFFER_SECONDS = 60
    conversation = request(widget, 1)
    offer_reject(actor=agent_actor_for(online), conversation_id=conversation.pk)
    # The only agent said no a moment ago: it waits (not pushed straight back at them).
    assert offered_to(conversation) == []
    assert waiting_offer_sweep() == 0
    # A minute later it is theirs again: a new offer with a fresh answer time; the rejection stays on record.
    Offer.objects.filter(conversation=conversation).update(decided_at=timezone.now() - timedelta(seconds=61))
    assert waiting_offer_sweep() == 1
    rejected, offer = Offer.objects.filter(conversation=conversation).order_by("pk")
    assert (rejected.agent_id, rejected.status) == (online.pk, OfferStatus.REJECTED)
    assert (offer.agent_id, offer.status, offer.decided_at) == (online.pk, OfferStatus.PENDING, None)
    assert offer.expires_at > timezone.now()
    # Rejected again: the latest offer is the one rejected, and the chat waits another while (not straight back,
    # though the first rejection is long past).
    offer_reject(actor=agent_actor_for(online), conversation_id=conversation.pk)
    assert Offer.objects.get(pk=offer.pk).status == OfferStatus.REJECTED
    assert Offer.objects.get(pk=rejected.pk).status == OfferStatus.REJECTED
    assert offered_to(conversation) == []
    assert waiting_offer_sweep() == 0


def test_a_rejected_chat_waits_for_a_colleague_rather_than_coming_back(settings, tenant, widget, queue, team):
    settings.ROUTING_REOFFER_SECONDS = 0
    first, second, third = team
    AgentProfile.objects.filter(user__in=[second, third]).update(max_chats=0)  # busy: not eligible now
    conversation = request(widget, 1)
    offer_reject(actor=agent_actor_for(first), conversation_id=conversation.pk)
    assert offered_to(conversation) == [first.pk]  # no one else can take it: back to the only one who can
    settings.ROUTING_REOFFER_SECONDS = 60
    offer_reject(actor=agent_actor_for(first), conversation_id=conversation.pk)
    assert offered_to(conversation) == []
    AgentProfile.objects.filter(user=second).update(max_chats=3)
    assert waiting_offer_sweep() == 1
    assert offered_to(conversation) == [second.pk]  # a colleague with room: theirs, not the rejecter's


def test_an_unanswered_offer_expires_pauses_the_agent_and_goes_to_the_next(
    tenant, widget, queue, team, published, django_capture_on_commit_callbacks
):
    first, second, _ = team
    conversation = request(widget, 1)
    offer = Offer.objects.get(conversation=conversation)
    # The queue's default answer time limit, from the moment of the offer.
    assert abs(offer.expires_at - offer.created_at - timedelta(seconds=30)) < timedelta(seconds=1)
    assert offers_expire_sweep() == 0  # not yet
    Offer.objects.filter(pk=offer.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert offers_expire_sweep() == 1
    offer.refresh_from_db()
    assert offer.status == OfferStatus.MISSED
    profile = AgentProfile.objects.select_related("pause_reason").get(user=first)
    assert profile.presence == Presence.PAUSED
    assert (profile.pause_reason.name, profile.pause_reason.paid, profile.pause_reason.system) == (
        "Missed offer",
        False,
        PauseReason.MISSED_OFFER,
    )
    assert offered_to(conversation) == [second.pk]
    own = f"t{tenant.pk}.agent.{first.pk}"
    assert (
        own,
        {"type": "offer.withdrawn", "conversation_id": conversation.pk, "offer_id": offer.pk, "reason": "missed"},
    ) in published
    presence = [event for group, event in published if event["type"] == "agent.presence"]
    assert [(e["user_id"], e["presence"], e["pause_reason"]) for e in presence] == [
        (first.pk, "paused", "Missed offer")
    ]
    assert offers_expire_sweep() == 0  # done once
    # Back online, the paused agent gets chats again, behind the colleagues who waited longer.
    agent_presence_change(actor=agent_actor_for(first), presence="online")
    assert AgentProfile.objects.get(user=first).pause_reason is None


def test_a_queue_without_an_answer_time_limit_never_expires_offers(widget, queue, online):
    queue_save(tenant=queue.tenant, instance=queue, answer_seconds=0)
    conversation = request(widget, 1)
    assert Offer.objects.get(conversation=conversation).expires_at is None
    assert sweep_once()["offers_missed"] == 0


def test_an_answer_time_limit_is_within_ten_minutes(queue):
    from django.core.exceptions import ValidationError

    with pytest.raises((ApplicationError, ValidationError)):
        queue_save(tenant=queue.tenant, instance=queue, answer_seconds=601)


def test_agents_pause_with_their_teams_reasons_and_their_offers_go_to_colleagues(
    tenant, other_tenant, widget, queue, team
):
    first, second, _ = team
    lunch = PauseReason.objects.create(tenant=tenant, name="Lunch", paid=False)
    foreign = PauseReason.objects.create(tenant=other_tenant, name="Training")
    conversation = request(widget, 1)
    assert offered_to(conversation) == [first.pk]
    actor = agent_actor_for(first)
    from queueing.services.presence import agent_missed_offer

    agent_presence_change(actor=agent_actor_for(second), presence="online")
    for bad in (None, foreign.pk, lunch.pk + 1000):
        with pytest.raises(ApplicationError) as refused:
            agent_presence_change(actor=actor, presence="paused", pause_reason_id=bad)
        assert refused.value.fields == {"pause_reason_id": ["Pick one of your team's pause reasons."]}
    # The product's own reason is not the agent's to pick.
    agent_missed_offer(actor=agent_actor_for(team[2]))
    builtin = PauseReason.objects.get(tenant=tenant, system=PauseReason.MISSED_OFFER)
    with pytest.raises(ApplicationError):
        agent_presence_change(actor=actor, presence="paused", pause_reason_id=builtin.pk)

    profile = agent_presence_change(actor=actor, presence="paused", pause_reason_id=lunch.pk)
    assert (profile.presence, profile.pause_reason_id) == ("paused", lunch.pk)
    assert offered_to(conversation) == [second.pk]  # the paused agent's offer went on at once
    assert offered_to(request(widget, 2)) == [second.pk]  # the third agent is paused (missed offer) too


def test_closing_a_chat_brings_the_first_waiting_one_to_the_agent(widget, queue, online):
    AgentProfile.objects.filter(user=online).update(max_chats=1)
    first = request(widget, 1)
    conversation_accept(actor=agent_actor_for(online), conversation_id=first.pk)
    second = request(widget, 2)
    third = request(widget, 3)
    assert offered_to(second) == offered_to(third) == []
    # The visitor ends it (an agent would pick a status first): the agent has room again.
    conversation_end(
        actor=VisitorActor(tenant_id=widget.tenant_id, widget_id=widget.pk, visitor_id="v1"), conversation_id=first.pk
    )
    assert (offered_to(second), offered_to(third)) == ([online.pk], [])


def test_another_tenants_agents_are_never_offered_a_chat(tenant, other_tenant, widget, queue, online):
    stranger = MembershipFactory(tenant=other_tenant).user
    AgentProfile.objects.filter(user=stranger).update(presence=Presence.ONLINE)
    conversation = request(widget, 1)
    assert offered_to(conversation) == [online.pk]


def test_the_agent_sees_that_the_visitor_came_from_the_queue_and_how_long_they_waited(widget, queue, online):
    from chat.models import Message
    from queueing.services.routing import duration_text

    conversation = request(widget, 1)
    Conversation.objects.filter(pk=conversation.pk).update(created_at=timezone.now() - timedelta(seconds=192))
    conversation_accept(actor=agent_actor_for(online), conversation_id=conversation.pk)
    notice = Message.objects.get(conversation=conversation, event="queue.came_from")
    assert notice.is_private  # the agents' line, never the visitor's
    waited = notice.event_data["waited_seconds"]
    assert notice.event_data["queue"] == "Sales" and 192 <= waited < 200
    assert notice.body == f"The visitor came from the queue Sales after waiting {duration_text(waited)}."
    assert duration_text(192) == "3 min 12 s"
    assert [duration_text(s) for s in (45, 60, 3725, 7200)] == ["45 s", "1 min", "1 h 2 min", "2 h"]


def test_an_accept_and_an_end_that_offers_the_next_chat_cost_a_fixed_number_of_statements(
    tenant, widget, queue, online, published, django_capture_on_commit_callbacks, django_assert_max_num_queries
):
    """The two steps every answered chat takes (the routing bench's assignment): the accept's two notices share
    one seq UPDATE and one INSERT, and neither step reads the conversation back for its announcement (counts
    include the savepoints of the nested services); what is announced is what is stored."""
    from chat.models import Message
    from tests.factories import DispositionFactory

    AgentProfile.objects.filter(user=online).update(max_chats=1)
    disposition = DispositionFactory(tenant=tenant)
    actor = agent_actor_for(online)
    first, second = request(widget, 1), request(widget, 2)
    assert offered_to(first) == [online.pk] and offered_to(second) == []
    with django_capture_on_commit_callbacks(execute=True), django_assert_max_num_queries(15):
        conversation_accept(actor=actor, conversation_id=first.pk)
    with django_capture_on_commit_callbacks(execute=True), django_assert_max_num_queries(25):
        conversation_end(actor=actor, conversation_id=first.pk, disposition_id=disposition.pk)
    assert offered_to(second) == [online.pk]  # the end offered the next one

    first.refresh_from_db()
    events = [(message.seq, message.event) for message in Message.objects.filter(conversation=first).order_by("seq")]
    assert [event for _, event in events][-3:] == ["agent.joined", "queue.came_from", "conversation.closed"]
    assert [seq for seq, _ in events] == list(range(1, first.last_seq + 1))
    announced = [
        event["conversation"]
        for _, event in published
        if event["type"] == "conversation.updated" and event["conversation"]["id"] == first.pk
    ]
    assert [(state["status"], state["assignee"]["id"]) for state in announced] == [
        (ConversationStatus.OPEN, online.pk),
        (ConversationStatus.CLOSED, online.pk),
    ]
    assert [state["version"] for state in announced] == [first.state_version - 1, first.state_version]
    assert announced[-1]["last_seq"] == first.last_seq
