"""Never a visitor left in a line nobody serves: a queued visitor whose widget is gone past the grace period
leaves the queue (the chat closes as abandoned, whoever held its offer is told, the line moves up), and when the
last of a queue's agents goes offline every visitor in its line is told and their chat waits on as a message
left for later."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from agents.models import AgentProfile, Presence
from chat.models import Conversation, ConversationStatus, Message
from chat.selectors import agent_actor_for
from chat.services import visitor_lease_renew
from contactcenter.wiring.tasks import sweep_once
from queueing.models import ConversationRoute, Offer, OfferStatus
from queueing.selectors import queue_place
from queueing.services import (
    agent_presence_change,
    conversation_accept,
    conversation_request,
)
from queueing.services.deadlines import queue_abandon_sweep, queue_unserved_sweep
from queueing.services.line import queue_line_unserved
from tests.factories import QueueFactory, QueueMemberFactory

pytestmark = pytest.mark.django_db


def start(widget, n: int, message: str = ""):
    return conversation_request(widget=widget, visitor_id=f"v{n}", answers={"name": f"V{n}"}, message=message)


def gone(conversation, seconds: int = 1) -> None:
    """The visitor's lease ran out `seconds` ago (their widget closed, or never connected)."""
    Conversation.objects.filter(pk=conversation.pk).update(
        visitor_away_deadline=timezone.now() - timedelta(seconds=seconds)
    )


@pytest.fixture
def busy(widget, queue, online):
    AgentProfile.objects.filter(user=online).update(max_chats=1)
    first = start(widget, 0).conversation
    conversation_accept(actor=agent_actor_for(online), conversation_id=first.pk)
    return first


def test_a_queued_visitor_holds_a_lease_from_the_start(settings, widget, queue, busy):
    settings.QUEUE_LEAVE_GRACE_SECONDS = 60
    before = timezone.now()
    queued = start(widget, 1).conversation
    queued.refresh_from_db()
    assert before + timedelta(seconds=59) < queued.visitor_away_deadline <= timezone.now() + timedelta(seconds=60)
    # A message left for later holds none: nobody is waiting live for it.
    widget.queueing_enabled = False
    widget.save(update_fields=["queueing_enabled"])
    offline = start(widget, 2, message="call me").conversation
    offline.refresh_from_db()
    assert offline.started_offline and offline.visitor_away_deadline is None


def test_a_visitor_gone_past_the_grace_leaves_the_queue_and_the_line_moves_up(
    tenant, widget, queue, busy, published, django_capture_on_commit_callbacks
):
    first, second = (start(widget, n).conversation for n in (1, 2))
    assert queue_place(conversation=second)["position"] == 2
    visitor_lease_renew(tenant_id=tenant.pk, conversation_id=second.pk, seconds=None, waiting_seconds=60)
    gone(first)
    published.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert queue_abandon_sweep() == 1
    first.refresh_from_db()
    assert first.status == ConversationStatus.CLOSED and first.closed_at is not None
    route = ConversationRoute.objects.get(conversation=first)
    assert route.abandoned_at == first.closed_at
    notice = Message.objects.filter(conversation=first).order_by("-seq").first()
    assert notice.body == "The visitor left before an agent answered."
    assert notice.event_data == {"by": "system", "reason": "abandoned"}
    # The one behind moved up, and heard it; the agents' waiting list dropped the chat.
    assert queue_place(conversation=second)["position"] == 1
    assert (second.pk, 1) in [
        (e["conversation_id"], e["position"]) for _, e in published if e["type"] == "queue.position"
    ]
    assert any(e["type"] == "waiting.removed" and e["conversation_id"] == first.pk for _, e in published)
    # A second pass finds nothing: the sweep is idempotent.
    assert queue_abandon_sweep() == 0


def test_a_visitor_who_came_back_in_time_keeps_their_place(tenant, widget, queue, busy):
    queued = start(widget, 1).conversation
    gone(queued)
    # Their widget reconnected before the sweep ran: the socket renewed the lease.
    assert visitor_lease_renew(tenant_id=tenant.pk, conversation_id=queued.pk, seconds=None, waiting_seconds=60)
    assert queue_abandon_sweep() == 0
    queued.refresh_from_db()
    assert queued.status == ConversationStatus.WAITING
    assert queue_place(conversation=queued)["position"] == 1


def test_an_agent_holding_the_offer_is_told_the_visitor_left(
    tenant, widget, queue, online, published, django_capture_on_commit_callbacks
):
    queued = start(widget, 1).conversation
    offer = Offer.objects.get(conversation=queued)
    assert offer.agent_id == online.pk and offer.status == OfferStatus.PENDING
    gone(queued)
    published.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert queue_abandon_sweep() == 1
    offer.refresh_from_db()
    assert offer.status == OfferStatus.WITHDRAWN
    withdrawn = [e for g, e in published if e["type"] == "offer.withdrawn" and g == f"t{tenant.pk}.agent.{online.pk}"]
    assert [e["reason"] for e in withdrawn] == ["abandoned"]


def test_answered_chats_and_messages_left_for_later_never_count_as_abandoned(tenant, widget, queue, online):
    answered = start(widget, 1).conversation
    conversation_accept(actor=agent_actor_for(online), conversation_id=answered.pk)
    AgentProfile.objects.filter(user=online).update(presence=Presence.OFFLINE)
    left = start(widget, 2, message="please call back").conversation
    assert left.started_offline
    for conversation in (answered, left):
        gone(conversation)
    assert queue_abandon_sweep() == 0
    assert {c.status for c in Conversation.objects.filter(pk__in=[answered.pk, left.pk])} == {"open", "waiting"}


def test_a_visitor_who_ends_their_chat_while_in_line_has_abandoned_it(tenant, widget, queue, busy, online):
    """Found on `make run`: a queued visitor who pressed "End chat" left the line but was not counted among
    today's abandoned visitors, whom the supervision page shows; only a widget gone past the grace was. Ending an
    answered chat is no abandon."""
    from chat.selectors import VisitorActor
    from queueing.services import conversation_end

    waiting = start(widget, 1).conversation
    conversation_end(
        actor=VisitorActor(tenant_id=tenant.pk, widget_id=widget.pk, visitor_id="v1"), conversation_id=waiting.pk
    )
    conversation_end(
        actor=VisitorActor(tenant_id=tenant.pk, widget_id=widget.pk, visitor_id="v0"), conversation_id=busy.pk
    )
    routes = dict(ConversationRoute.objects.values_list("conversation_id", "abandoned_at"))
    assert routes[waiting.pk] is not None
    assert routes[busy.pk] is None


def test_a_lease_renewal_after_the_answer_stops_watching_unless_detection_is_on(tenant, widget, queue, online):
    chat = start(widget, 1).conversation
    conversation_accept(actor=agent_actor_for(online), conversation_id=chat.pk)
    assert not visitor_lease_renew(tenant_id=tenant.pk, conversation_id=chat.pk, seconds=None, waiting_seconds=60)
    assert visitor_lease_renew(tenant_id=tenant.pk, conversation_id=chat.pk, seconds=30, waiting_seconds=60)
    chat.refresh_from_db()
    assert chat.visitor_away_deadline <= timezone.now() + timedelta(seconds=30)  # the open chat's own timeout


def test_the_last_agent_going_offline_tells_the_line_and_keeps_every_chat(
    tenant, widget, queue, busy, online, published, django_capture_on_commit_callbacks
):
    queued = [start(widget, n, message=f"question {n}").conversation for n in (1, 2)]
    published.clear()
    with django_capture_on_commit_callbacks(execute=True):
        agent_presence_change(actor=agent_actor_for(online), presence=Presence.OFFLINE)
    for conversation in queued:
        conversation.refresh_from_db()
        assert conversation.status == ConversationStatus.WAITING  # kept: nothing is lost
        assert ConversationRoute.objects.get(conversation=conversation).unserved_at is not None
        assert queue_place(conversation=conversation) is None  # out of the line
        notice = Message.objects.filter(conversation=conversation).order_by("-seq").first()
        assert notice.event_data == {"reason": "nobody_online"} and not notice.is_private
    told = [e for g, e in published if e["type"] == "queue.position"]
    assert sorted((e["conversation_id"], e["position"], e["reason"]) for e in told) == [
        (c.pk, None, "nobody_online") for c in queued
    ]
    # An agent back later is offered them, oldest first.
    AgentProfile.objects.filter(user=online).update(max_chats=5)
    agent_presence_change(actor=agent_actor_for(online), presence=Presence.ONLINE)
    assert Offer.objects.filter(conversation=queued[0], agent=online, status=OfferStatus.PENDING).exists()


def test_an_agent_still_at_work_keeps_the_line_served(tenant, widget, queue, busy, online):
    colleague = QueueMemberFactory(tenant=tenant, queue=queue).user
    AgentProfile.objects.filter(user=colleague).update(presence=Presence.PAUSED)  # on a break: coming back
    queued = start(widget, 1).conversation
    agent_presence_change(actor=agent_actor_for(online), presence=Presence.OFFLINE)
    assert queue_unserved_sweep() == 0
    assert ConversationRoute.objects.get(conversation=queued).unserved_at is None
    assert queue_place(conversation=queued)["position"] == 1


def test_the_sweep_tells_a_line_whose_agents_left_without_a_word(tenant, widget, queue, busy, online):
    queued = start(widget, 1).conversation
    # Two agents leaving at once may each see the other still there: the sweep's own pass catches it.
    AgentProfile.objects.filter(user=online).update(presence=Presence.OFFLINE)
    assert sweep_once()["queue_unserved"] == 1
    assert queue_unserved_sweep() == 0
    assert queue_place(conversation=queued) is None


def test_another_tenants_lines_are_untouched(tenant, other_tenant, widget, queue, busy, online):
    queued = start(widget, 1).conversation
    elsewhere = QueueFactory(tenant=other_tenant, name="Elsewhere")
    assert queue_line_unserved(tenant_id=other_tenant.pk, queue_ids=[queue.pk, elsewhere.pk]) == 0
    assert ConversationRoute.objects.get(conversation=queued).unserved_at is None
