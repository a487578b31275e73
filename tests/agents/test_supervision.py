"""The supervision page: its read model's figures, who may see it (page and socket), tenant isolation, and a
supervisor's change of a teammate's presence with its follow-up."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from agents.models import AgentProfile, Presence
from agents.supervision_state import day_start, supervision_snapshot
from chat.models import Conversation, ConversationStatus
from chat.selectors import AgentActor, agent_actor_for
from chat.services.starting import conversation_start
from contactcenter.errors import ApplicationError
from contactcenter.models import Role
from contactcenter.realtime import tenant_agents_group
from queueing.models import ConversationRoute, Offer, OfferStatus, Queue
from queueing.services import agent_presence_change_by, conversation_accept, conversation_request, conversation_route
from tests.factories import (
    MembershipFactory,
    PauseReasonFactory,
    QueueFactory,
    QueueMemberFactory,
    QueueRouteFactory,
    WidgetFactory,
    session_cookie,
)


def _actor(user: Any) -> AgentActor:
    actor = agent_actor_for(user)
    assert actor is not None
    return actor


def _queue_row(snapshot: dict[str, Any], queue: Queue) -> dict[str, Any]:
    return next(row for row in snapshot["queues"] if row["id"] == queue.pk)


def _agent_row(snapshot: dict[str, Any], user: Any) -> dict[str, Any]:
    return next(row for row in snapshot["agents"] if row["user_id"] == user.pk)


def _waiting(widget: Any, visitor_id: str, *, ago: timedelta = timedelta(0)) -> Conversation:
    conversation = conversation_request(widget=widget, visitor_id=visitor_id, answers={"name": visitor_id}).conversation
    if ago:
        Conversation.objects.filter(pk=conversation.pk).update(created_at=timezone.now() - ago)
    return conversation


@pytest.fixture
def busy_agent(queue: Queue, agent: Any, widget: Any) -> Conversation:
    """The queue's one agent, online, takes one chat at a time and has one: visitors wait in line."""
    AgentProfile.objects.filter(user=agent).update(presence=Presence.ONLINE, max_chats=1)
    taken = _waiting(widget, "taken")
    conversation_accept(actor=_actor(agent), conversation_id=taken.pk)
    return taken


# --- the read model --------------------------------------------------------------------------------------------


@pytest.mark.smoke
def test_a_queue_shows_its_line_its_places_left_and_its_longest_wait(supervisor, widget, queue, busy_agent):
    Queue.objects.filter(pk=queue.pk).update(capacity_kind="fixed", capacity=5)
    _waiting(widget, "first", ago=timedelta(minutes=4))
    _waiting(widget, "second", ago=timedelta(minutes=1))
    # A message left for later waits too, but takes no place in the line.
    left = conversation_start(
        widget=widget, visitor_id="later", answers={"name": "Later"}, message="Call me", offline=True
    )
    conversation_route(conversation=left.conversation, queue=queue)

    row = _queue_row(supervision_snapshot(actor=_actor(supervisor)), queue)
    assert (row["in_line"], row["waiting"], row["members_online"]) == (2, 3, 1)
    assert (row["places"], row["places_left"]) == (5, 3)
    assert 4 * 60 <= row["longest_wait_seconds"] < 4 * 60 + 30

    # Places per online agent: 2 x 1 online, both taken.
    Queue.objects.filter(pk=queue.pk).update(capacity_kind="per_agent", capacity=2)
    row = _queue_row(supervision_snapshot(actor=_actor(supervisor)), queue)
    assert (row["places"], row["places_left"]) == (2, 0)


def test_nobody_online_leaves_no_place_in_line(supervisor, widget, queue, agent):
    row = _queue_row(supervision_snapshot(actor=_actor(supervisor)), queue)
    assert (row["members_online"], row["in_line"], row["places_left"], row["longest_wait_seconds"]) == (0, 0, 0, None)


def test_agents_are_shown_by_state_with_their_chats_and_pause_reason(tenant, supervisor, queue, agent, busy_agent):
    lunch = PauseReasonFactory(tenant=tenant, name="Lunch")
    paused = MembershipFactory(tenant=tenant, role=Role.AGENT).user
    AgentProfile.objects.filter(user=paused).update(presence=Presence.PAUSED, pause_reason=lunch)
    free = MembershipFactory(tenant=tenant, role=Role.AGENT).user
    AgentProfile.objects.filter(user=free).update(presence=Presence.ONLINE)
    away = MembershipFactory(tenant=tenant, role=Role.AGENT).user
    AgentProfile.objects.filter(user=away).update(presence=Presence.AWAY)

    snapshot = supervision_snapshot(actor=_actor(supervisor))
    busy = _agent_row(snapshot, agent)
    assert (busy["state"], busy["presence"], busy["chats"], busy["max_chats"]) == ("busy", "online", 1, 1)
    assert _agent_row(snapshot, paused)["state"] == "paused"
    assert _agent_row(snapshot, paused)["pause_reason"] == "Lunch"
    assert (_agent_row(snapshot, free)["state"], _agent_row(snapshot, free)["chats"]) == ("online", 0)
    assert _agent_row(snapshot, away)["state"] == "away"
    assert _agent_row(snapshot, supervisor)["state"] == "offline"
    assert snapshot["agent_counts"] == {"online": 1, "busy": 1, "away": 1, "paused": 1, "offline": 1}
    assert {"id": lunch.pk, "name": "Lunch"} in snapshot["pause_reasons"]


def _answered(widget: Any, queue: Queue, visitor_id: str, *, wait: int, answered_ago: timedelta) -> Conversation:
    conversation = conversation_start(widget=widget, visitor_id=visitor_id, answers={"name": visitor_id}).conversation
    ConversationRoute.objects.create(tenant=conversation.tenant, conversation=conversation, queue=queue, queue_name="q")
    answered_at = timezone.now() - answered_ago
    Conversation.objects.filter(pk=conversation.pk).update(
        status=ConversationStatus.OPEN, created_at=answered_at - timedelta(seconds=wait), answered_at=answered_at
    )
    return conversation


def _todays_traffic(tenant: Any, widget: Any, queue: Queue, agent: Any) -> None:
    """Five chats answered today after 10, 20, 30, 40 and 100 s, one yesterday; offers; a missed one; a visitor
    who left the line."""
    now = timezone.now()
    into_today = min(now - day_start(now), timedelta(minutes=30)) / 2
    chats = [_answered(widget, queue, f"v{wait}", wait=wait, answered_ago=into_today) for wait in (10, 20, 30, 40, 100)]
    _answered(widget, queue, "yesterday", wait=500, answered_ago=now - day_start(now) + timedelta(hours=1))
    colleague = MembershipFactory(tenant=tenant, role=Role.AGENT).user
    for chat in chats[:3]:
        Offer.objects.create(tenant=tenant, conversation=chat, agent=agent, queue=queue, status=OfferStatus.ACCEPTED)
    # The fourth was offered twice: missed by one, taken by the other (one conversation offered).
    Offer.objects.create(
        tenant=tenant, conversation=chats[3], agent=colleague, queue=queue, status=OfferStatus.MISSED, decided_at=now
    )
    Offer.objects.create(tenant=tenant, conversation=chats[3], agent=agent, queue=queue, status=OfferStatus.ACCEPTED)
    gone = conversation_start(widget=widget, visitor_id="gone", answers={"name": "Gone"}).conversation
    ConversationRoute.objects.create(tenant=tenant, conversation=gone, queue=queue, queue_name="q", abandoned_at=now)


@pytest.mark.smoke
def test_today_counts_offers_answers_misses_abandons_and_the_wait(tenant, supervisor, widget, queue, agent):
    _todays_traffic(tenant, widget, queue, agent)

    snapshot = supervision_snapshot(actor=_actor(supervisor))
    expected = {
        "offered": 4,
        "answered": 5,
        "missed": 1,
        "abandoned": 1,
        "average_wait_seconds": 40.0,
        # percentile_cont(0.9) of 10, 20, 30, 40, 100: 40 + 0.6 * (100 - 40)
        "p90_wait_seconds": 76.0,
    }
    assert snapshot["today"] == expected
    assert _queue_row(snapshot, queue)["today"] == expected


def test_another_tenant_s_rows_are_never_counted(tenant, other_tenant, supervisor, widget, queue, agent, busy_agent):
    before = supervision_snapshot(actor=_actor(supervisor))
    their_widget = WidgetFactory(tenant=other_tenant)
    their_queue = QueueFactory(tenant=other_tenant)
    QueueRouteFactory(tenant=other_tenant, queue=their_queue, widget=their_widget)
    their_agent = QueueMemberFactory(tenant=other_tenant, queue=their_queue).user
    AgentProfile.objects.filter(user=their_agent).update(presence=Presence.ONLINE, max_chats=1)
    conversation_accept(actor=_actor(their_agent), conversation_id=_waiting(their_widget, "theirs").pk)
    _waiting(their_widget, "in their line", ago=timedelta(hours=1))
    _todays_traffic(other_tenant, their_widget, their_queue, their_agent)

    after = supervision_snapshot(actor=_actor(supervisor))
    assert [row["id"] for row in after["queues"]] == [queue.pk]
    assert after["queues"][0]["in_line"] == before["queues"][0]["in_line"] == 0
    assert their_agent.pk not in {row["user_id"] for row in after["agents"]}
    assert after["agent_counts"] == before["agent_counts"]
    assert after["today"]["offered"] == before["today"]["offered"]
    assert after["today"]["missed"] == after["today"]["abandoned"] == 0
    assert after["today"]["answered"] == before["today"]["answered"] == 1  # the busy agent's one chat


def test_agents_may_not_read_the_page_s_state(agent):
    with pytest.raises(ApplicationError) as refused:
        supervision_snapshot(actor=_actor(agent))
    assert refused.value.code == "forbidden"


# --- a supervisor sets a teammate's presence ---------------------------------------------------------------------


def test_a_supervisor_takes_an_agent_offline_and_their_offer_goes_to_a_colleague(
    tenant, supervisor, widget, queue, agent, published, django_capture_on_commit_callbacks
):
    colleague = QueueMemberFactory(tenant=tenant, queue=queue).user
    AgentProfile.objects.filter(user=agent).update(
        presence=Presence.ONLINE, idle_since=timezone.now() - timedelta(hours=1)
    )
    waiting = _waiting(widget, "jane")
    offer = Offer.objects.get(conversation=waiting, status=OfferStatus.PENDING)
    assert offer.agent_id == agent.pk
    AgentProfile.objects.filter(user=colleague).update(presence=Presence.ONLINE)

    with django_capture_on_commit_callbacks(execute=True):
        profile = agent_presence_change_by(supervisor=_actor(supervisor), user_id=agent.pk, presence="offline")

    assert profile.presence == Presence.OFFLINE
    offer.refresh_from_db()
    assert (offer.status, offer.agent_id) == (OfferStatus.WITHDRAWN, agent.pk)
    assert Offer.objects.get(conversation=waiting, status=OfferStatus.PENDING).agent_id == colleague.pk
    presence_events = [event for group, event in published if event["type"] == "agent.presence"]
    assert (tenant_agents_group(tenant.pk), presence_events[-1]) in published
    assert (presence_events[-1]["user_id"], presence_events[-1]["presence"]) == (agent.pk, "offline")


def test_a_supervisor_pauses_an_agent_with_one_of_the_team_s_reasons(tenant, admin, agent):
    lunch = PauseReasonFactory(tenant=tenant, name="Lunch")
    profile = agent_presence_change_by(
        supervisor=_actor(admin), user_id=agent.pk, presence="paused", pause_reason_id=lunch.pk
    )
    assert (profile.presence, profile.pause_reason_id) == (Presence.PAUSED, lunch.pk)
    with pytest.raises(ApplicationError) as refused:
        agent_presence_change_by(supervisor=_actor(admin), user_id=agent.pk, presence="paused")
    assert refused.value.code == "invalid"


def test_only_supervisors_change_a_teammate_s_presence_and_only_in_their_own_team(
    tenant, other_tenant, supervisor, agent
):
    colleague = MembershipFactory(tenant=tenant, role=Role.AGENT).user
    with pytest.raises(ApplicationError) as refused:
        agent_presence_change_by(supervisor=_actor(agent), user_id=colleague.pk, presence="offline")
    assert refused.value.code == "forbidden"

    stranger = MembershipFactory(tenant=other_tenant, role=Role.AGENT).user
    AgentProfile.objects.filter(user=stranger).update(presence=Presence.ONLINE)
    for user_id in (stranger.pk, 999_999):
        with pytest.raises(ApplicationError) as refused:
            agent_presence_change_by(supervisor=_actor(supervisor), user_id=user_id, presence="offline")
        assert refused.value.code == "not_found"
    assert AgentProfile.objects.get(user=stranger).presence == Presence.ONLINE


def test_a_supervisor_cannot_put_online_an_agent_without_a_console(supervisor, agent):
    with pytest.raises(ApplicationError) as refused:
        agent_presence_change_by(supervisor=_actor(supervisor), user_id=agent.pk, presence="online")
    assert refused.value.code == "invalid"
    AgentProfile.objects.filter(user=agent).update(open_sockets=1)
    profile = agent_presence_change_by(supervisor=_actor(supervisor), user_id=agent.pk, presence="online")
    assert profile.presence == Presence.ONLINE


# --- the page and its socket ---------------------------------------------------------------------------------------


def test_the_page_is_for_supervisors_and_admins(client, tenant, admin, supervisor, agent):
    response = client.get("/supervision/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    client.force_login(agent)
    assert client.get("/supervision/").status_code == 403
    assert b'href="/supervision/"' not in client.get("/settings/", follow=True).content
    for user in (supervisor, admin):
        client.force_login(user)
        response = client.get("/supervision/")
        assert response.status_code == 200
        assert "connect-src 'self' ws://testserver" in response["Content-Security-Policy"]
        assert b"supervision/supervision.js" in response.content
        assert b'href="/supervision/"' in response.content


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_the_socket_refuses_agents_and_keeps_supervisors_live(daphne_server):
    from tests.realtime.test_protocol import WAIT, Inbox, in_thread, make_setup, open_socket

    setup = make_setup()
    agent = setup.agents[0]
    supervisor = MembershipFactory(tenant=setup.tenant, role=Role.SUPERVISOR).user
    agent_cookie, supervisor_cookie = session_cookie(agent), session_cookie(supervisor)

    async def scenario() -> dict[str, Any]:
        refused = Inbox(await open_socket(daphne_server, "/ws/supervision/", cookie=agent_cookie))
        error = await refused.expect(type="error")
        await asyncio.wait_for(asyncio.shield(refused.task), WAIT)

        inbox = Inbox(await open_socket(daphne_server, "/ws/supervision/", cookie=supervisor_cookie))
        hello = await inbox.expect(type="hello")
        await in_thread(
            lambda: conversation_request(widget=setup.widget, visitor_id="new", answers={"name": "New"}).conversation
        )
        waiting = await inbox.expect(type="supervision.snapshot")
        await inbox.ws.send(
            json.dumps({"type": "agent.presence.set", "user_id": agent.pk, "presence": "away", "request_id": "p1"})
        )
        ok = await inbox.expect(type="ok", request_id="p1")
        stranger = await in_thread(lambda: MembershipFactory(role=Role.AGENT).user)
        await inbox.ws.send(
            json.dumps({"type": "agent.presence.set", "user_id": stranger.pk, "presence": "away", "request_id": "p2"})
        )
        not_found = await inbox.expect(type="error", request_id="p2")
        after = await inbox.expect(type="supervision.snapshot")
        while _agent_row(after["snapshot"], agent)["presence"] != "away":
            after = await inbox.expect(type="supervision.snapshot")
        await inbox.ws.close()
        return {
            "error": error,
            "code": refused.ws.close_code,
            "hello": hello,
            "waiting": waiting,
            "ok": ok,
            "not_found": not_found,
        }

    result = asyncio.run(scenario())
    assert (result["error"]["code"], result["code"]) == ("forbidden", 4403)
    hello = result["hello"]["snapshot"]
    assert [row["id"] for row in hello["queues"]] == [setup.queue.pk]
    assert _queue_row(result["waiting"]["snapshot"], setup.queue)["waiting"] == 1
    assert result["not_found"]["code"] == "not_found"
    assert AgentProfile.objects.get(user=agent).presence == Presence.AWAY
