"""Offers, the waiting list and presence repair themselves like messages do: the agent socket remembers what it
told its console and each ping checks that against the database, sending `state.sync` when an event was lost
(in-process agent socket on the configured channel layer, real PostgreSQL in the main pass)."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections

from agents.console_state import LiveState
from agents.models import AgentProfile, PauseReason, Presence
from queueing.models import Offer, OfferStatus
from queueing.selectors import WAITING_LIST_LIMIT
from queueing.services import conversation_request
from tests.factories import online_agent_in_routed_queue, session_cookie
from tests.realtime.test_embedded import ORIGIN
from tests.support.events import events_lost

pytestmark = [pytest.mark.smoke, pytest.mark.django_db(transaction=True)]


def online_agent() -> dict:
    widget, agent = online_agent_in_routed_queue()
    return {"widget": widget, "agent": agent, "cookie": session_cookie(agent).encode()}


def visitor_starts(widget, visitor_id: str) -> int:
    return conversation_request(widget=widget, visitor_id=visitor_id, answers={"name": "Jane"}).conversation.pk


async def console(data: dict) -> WebsocketCommunicator:
    from contactcenter.asgi import application

    socket = WebsocketCommunicator(application, "/ws/agent/", headers=[ORIGIN, (b"cookie", data["cookie"])])
    assert (await socket.connect())[0]
    assert json.loads(await socket.receive_from(timeout=10))["type"] == "hello"
    return socket


async def ping(socket: WebsocketCommunicator, request_id: str) -> list[dict]:
    """Every frame up to this ping's pong, the pong included."""
    await socket.send_json_to({"type": "ping", "request_id": request_id})
    frames = []
    while True:
        frame = json.loads(await socket.receive_from(timeout=10))
        frames.append(frame)
        if frame["type"] == "pong" and frame.get("request_id") == request_id:
            return frames


async def frames_until(socket: WebsocketCommunicator, kinds: set[str]) -> list[dict]:
    seen: list[dict] = []
    while kinds - {frame["type"] for frame in seen}:
        seen.append(json.loads(await socket.receive_from(timeout=10)))
    return seen


async def finish(socket: WebsocketCommunicator) -> None:
    await socket.disconnect()
    await sync_to_async(connections.close_all)()


async def test_a_lost_offer_and_waiting_item_reach_the_console_at_the_next_ping(settings):
    settings.SWEEP_IN_PROCESS = False
    data = await database_sync_to_async(online_agent)()
    socket = await console(data)

    with events_lost():
        conversation_id = await database_sync_to_async(visitor_starts)(data["widget"], "v-lost")
    frames = await ping(socket, "p1")

    assert [frame["type"] for frame in frames] == ["state.sync", "pong"]
    sync = frames[0]
    assert [offer["conversation_id"] for offer in sync["offers"]] == [conversation_id]
    assert [item["conversation_id"] for item in sync["waiting"]] == [conversation_id]
    assert sync["presence"] == "online"
    assert [frame["type"] for frame in await ping(socket, "p2")] == ["pong"]  # repaired: nothing more to send
    await finish(socket)


async def test_a_lost_withdrawal_and_a_presence_changed_past_the_services_are_repaired(settings):
    settings.SWEEP_IN_PROCESS = False
    data = await database_sync_to_async(online_agent)()
    conversation_id = await database_sync_to_async(visitor_starts)(data["widget"], "v-one")
    socket = await console(data)  # its hello shows the offer and the waiting item

    def withdrawn_and_away() -> None:
        Offer.objects.filter(conversation_id=conversation_id).update(status=OfferStatus.WITHDRAWN)
        AgentProfile.objects.filter(user=data["agent"]).update(presence=Presence.AWAY)

    await database_sync_to_async(withdrawn_and_away)()
    frames = await ping(socket, "p1")

    assert [frame["type"] for frame in frames] == ["state.sync", "pong"]
    assert frames[0]["offers"] == []
    assert [item["conversation_id"] for item in frames[0]["waiting"]] == [conversation_id]  # still waiting
    assert frames[0]["presence"] == "away"
    await finish(socket)


async def test_a_console_that_got_every_event_is_not_sent_the_state_again(settings):
    settings.SWEEP_IN_PROCESS = False
    data = await database_sync_to_async(online_agent)()
    socket = await console(data)

    first = await database_sync_to_async(visitor_starts)(data["widget"], "v-first")
    await frames_until(socket, {"offer.new", "waiting.added"})
    second = await database_sync_to_async(visitor_starts)(data["widget"], "v-second")
    await frames_until(socket, {"offer.new", "waiting.added"})
    assert [frame["type"] for frame in await ping(socket, "p1")] == ["pong"]

    await socket.send_json_to({"type": "offer.reject", "conversation_id": second, "request_id": "r"})
    await frames_until(socket, {"ok"})
    await socket.send_json_to({"type": "conversation.accept", "conversation_id": first, "request_id": "a"})
    await frames_until(socket, {"offer.withdrawn", "waiting.removed", "conversation.assigned"})
    await socket.send_json_to({"type": "presence.set", "presence": "away", "request_id": "s"})
    await frames_until(socket, {"agent.presence"})

    frames = await ping(socket, "p2")
    assert "state.sync" not in [frame["type"] for frame in frames]
    await finish(socket)


def test_a_waiting_list_cut_at_its_limit_only_needs_what_the_database_lists():
    listed = set(range(1, WAITING_LIST_LIMIT + 1))
    truth = LiveState(offers=set(), waiting=listed, presence="online")
    beyond = LiveState(offers=set(), waiting=listed | {WAITING_LIST_LIMIT + 5}, presence="online")
    missing_one = LiveState(offers=set(), waiting=listed - {3}, presence="online")
    assert beyond.agrees_with(truth)
    assert not missing_one.agrees_with(truth)
    short = LiveState(offers=set(), waiting={1, 2}, presence="online")
    assert not LiveState(offers=set(), waiting={1, 2, 9}, presence="online").agrees_with(short)
    assert not LiveState(offers={4}, waiting={1, 2}, presence="online").agrees_with(short)
    assert not LiveState(offers=set(), waiting={1, 2}, presence="away").agrees_with(short)


async def test_a_pause_reason_changed_without_its_event_is_repaired(settings):
    """Paused for lunch through the socket, then moved to another reason past the services (an event lost):
    the next ping sends the state with the reason the database has."""
    settings.SWEEP_IN_PROCESS = False
    data = await database_sync_to_async(online_agent)()

    def reasons() -> tuple[int, int]:
        tenant_id = data["widget"].tenant_id
        lunch = PauseReason.objects.create(tenant_id=tenant_id, name="Lunch", paid=False)
        return lunch.pk, PauseReason.objects.create(tenant_id=tenant_id, name="Training").pk

    lunch, training = await database_sync_to_async(reasons)()
    socket = await console(data)
    await socket.send_json_to(
        {"type": "presence.set", "presence": "paused", "pause_reason_id": lunch, "request_id": "s"}
    )
    frames = await frames_until(socket, {"agent.presence", "ok"})
    (presence,) = [frame for frame in frames if frame["type"] == "agent.presence"]
    assert (presence["presence"], presence["pause_reason"]) == ("paused", "Lunch")
    assert [frame["type"] for frame in await ping(socket, "p1")] == ["pong"]

    await database_sync_to_async(AgentProfile.objects.filter(user=data["agent"]).update)(pause_reason_id=training)
    frames = await ping(socket, "p2")
    assert [frame["type"] for frame in frames] == ["state.sync", "pong"]
    assert (frames[0]["presence"], frames[0]["pause_reason"]) == ("paused", "Training")
    assert [frame["type"] for frame in await ping(socket, "p3")] == ["pong"]
    await finish(socket)
