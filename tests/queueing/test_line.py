"""The visitors' line: who may start a live chat (an agent with room, else a place in the queue when the widget
queues visitors), each waiting visitor's place and estimated wait, and the places announced as the line moves."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from agents.models import AgentProfile, Presence
from chat.models import Conversation
from chat.selectors import VisitorActor, agent_actor_for
from queueing.selectors import queue_place, queue_wait_estimate
from queueing.services import (
    Admission,
    conversation_accept,
    conversation_end,
    conversation_request,
    queue_save,
    widget_admission,
)
from tests.factories import QueueMemberFactory, WidgetFactory

pytestmark = pytest.mark.django_db


def start(widget, n: int, message: str = ""):
    return conversation_request(widget=widget, visitor_id=f"v{n}", answers={"name": f"V{n}"}, message=message)


@pytest.fixture
def busy(widget, queue, online):
    """The queue's one online agent can take one chat, and has it."""
    AgentProfile.objects.filter(user=online).update(max_chats=1)
    first = start(widget, 0).conversation
    conversation_accept(actor=agent_actor_for(online), conversation_id=first.pk)
    return first


def test_who_may_start_a_live_chat(tenant, widget, queue, agent):
    assert widget_admission(widget=WidgetFactory(tenant=tenant)) == Admission(False, "no_queue")
    assert widget_admission(widget=widget) == Admission(False, "nobody_online")
    AgentProfile.objects.filter(user=agent).update(presence=Presence.AWAY)
    assert widget_admission(widget=widget) == Admission(False, "nobody_online")  # away is not there
    AgentProfile.objects.filter(user=agent).update(presence=Presence.ONLINE)
    assert widget_admission(widget=widget) == Admission(True)


def test_with_everyone_busy_visitors_wait_while_the_queue_has_places(widget, queue, busy):
    queue_save(tenant=queue.tenant, instance=queue, capacity_kind="fixed", capacity=2)
    assert widget_admission(widget=widget) == Admission(True)
    waiting = [start(widget, n) for n in (1, 2)]
    assert [request.offline for request in waiting] == [False, False]
    assert widget_admission(widget=widget) == Admission(False, "queue_full")
    # The next one is not lost: their message is kept for the team, as when nobody is online.
    third = start(widget, 3, message="I'll leave a message")
    assert third.offline is True and third.conversation.started_offline is True
    assert queue_place(conversation=third.conversation) is None  # not in the line
    # Offline messages take no place: the line is still two.
    assert widget_admission(widget=widget) == Admission(False, "queue_full")


def test_places_per_online_agent(tenant, widget, queue, busy, online):
    queue_save(tenant=queue.tenant, instance=queue, capacity_kind="per_agent", capacity=1)
    start(widget, 1)
    assert widget_admission(widget=widget) == Admission(False, "queue_full")  # 1 agent x 1 place
    colleague = QueueMemberFactory(tenant=tenant, queue=queue).user
    AgentProfile.objects.filter(user=colleague).update(presence=Presence.ONLINE, max_chats=1)
    conversation_accept(actor=agent_actor_for(colleague), conversation_id=start(widget, 2).conversation.pk)
    assert widget_admission(widget=widget) == Admission(True)  # 2 agents x 1 place, one waiting


def test_a_widget_that_does_not_queue_offers_the_message_form_when_everyone_is_busy(widget, queue, busy):
    widget.queueing_enabled = False
    widget.save(update_fields=["queueing_enabled"])
    assert widget_admission(widget=widget) == Admission(False, "all_busy")
    assert start(widget, 1, message="hello?").offline is True


def test_the_widget_config_says_why_no_chat_is_offered(client, widget, queue, busy):
    queue_save(tenant=queue.tenant, instance=queue, capacity=0)
    config = client.get(f"/widget/api/{widget.public_key}/config").json()
    assert (config["available"], config["unavailable_reason"]) == (False, "queue_full")


def test_each_waiting_visitor_hears_their_place_as_the_line_moves(
    tenant, widget, queue, busy, online, published, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        waiting = [start(widget, n).conversation for n in (1, 2, 3)]
    places = [(e["conversation_id"], e["position"]) for _, e in published if e["type"] == "queue.position"]
    assert places == [(c.pk, n) for n, c in enumerate(waiting, start=1)]  # each told on joining
    assert [queue_place(conversation=c)["position"] for c in waiting] == [1, 2, 3]

    published.clear()
    colleague = QueueMemberFactory(tenant=tenant, queue=queue).user
    AgentProfile.objects.filter(user=colleague).update(presence=Presence.ONLINE)
    with django_capture_on_commit_callbacks(execute=True):
        conversation_accept(actor=agent_actor_for(colleague), conversation_id=waiting[0].pk)
    moved = [(g, e["conversation_id"], e["position"]) for g, e in published if e["type"] == "queue.position"]
    assert moved == [(f"t{tenant.pk}.conv.{c.pk}", c.pk, n) for n, c in enumerate(waiting[1:], start=1)]

    published.clear()
    gone = VisitorActor(tenant_id=tenant.pk, widget_id=widget.pk, visitor_id="v2")
    with django_capture_on_commit_callbacks(execute=True):
        conversation_end(actor=gone, conversation_id=waiting[1].pk)
    moved = [(e["conversation_id"], e["position"]) for _, e in published if e["type"] == "queue.position"]
    assert moved == [(waiting[2].pk, 1)]


def test_the_estimated_wait_follows_the_queues_recent_pace(tenant, widget, queue, busy):
    waiting = [start(widget, n).conversation for n in (1, 2)]
    assert queue_place(conversation=waiting[1]) == {"position": 2, "estimated_wait_seconds": None}  # no history
    now = timezone.now()
    # Five chats of this queue answered a minute apart in the last hour (the busy agent's one is a fifth).
    answered = [start(widget, 10 + n, message="earlier").conversation for n in range(4)]
    for n, conversation in enumerate([busy, *answered]):
        Conversation.objects.filter(pk=conversation.pk).update(answered_at=now - timedelta(minutes=10 + n))
    assert queue_wait_estimate(tenant_id=tenant.pk, queue_id=queue.pk) == pytest.approx(60.0)
    assert queue_place(conversation=waiting[1]) == {"position": 2, "estimated_wait_seconds": 120}
    # Answers older than two hours do not count.
    Conversation.objects.filter(pk=busy.pk).update(answered_at=now - timedelta(hours=3))
    assert queue_wait_estimate(tenant_id=tenant.pk, queue_id=queue.pk) is None


def test_conversations_on_other_channels_take_no_place_in_line(tenant, widget, queue, busy):
    from contactcenter.services import contact_create
    from queueing.services import conversation_request_on_channel

    queue_save(tenant=queue.tenant, instance=queue, capacity_kind="fixed", capacity=1)
    sms, _ = conversation_request_on_channel(
        contact=contact_create(tenant=tenant, name="Texter"), channel="sms", queue=queue, body="hi", client_id="SM1"
    )
    assert queue_place(conversation=sms) is None
    assert widget_admission(widget=widget) == Admission(True)  # the one place is still free
    assert queue_place(conversation=start(widget, 1).conversation)["position"] == 1
