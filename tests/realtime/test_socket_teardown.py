"""Whatever ends a socket, its clean-up runs: here an unexpected error escapes the consumer (in-process)."""

from __future__ import annotations

import asyncio
import itertools
import json
import time

import pytest
from asgiref.sync import sync_to_async
from autobahn.exception import Disconnected
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.db import connections

import agents.consumers
from agents.models import AgentProfile
from chat.models import Conversation
from contactcenter import sockets
from contactcenter.asgi import application
from contactcenter.sockets import ARRIVED_AT, ProtocolSocket, SocketGone, UndoOnce
from tests.realtime.test_embedded import ORIGIN, build, next_of

pytestmark = [pytest.mark.smoke]


def open_sockets_of_assignee(conversation_id: int) -> int:
    assignee = Conversation.objects.get(pk=conversation_id).assignee_id
    return AgentProfile.objects.get(user_id=assignee).open_sockets


@pytest.mark.django_db(transaction=True)
async def test_a_socket_killed_by_an_unexpected_error_still_leaves_its_groups_and_closes_its_presence(
    settings, monkeypatch
):
    settings.SWEEP_IN_PROCESS = False
    data = await database_sync_to_async(build)()
    agent = WebsocketCommunicator(application, "/ws/agent/", headers=[ORIGIN, (b"cookie", data["cookie"])])
    assert (await agent.connect())[0]
    await next_of(agent, "hello")
    opened = await database_sync_to_async(open_sockets_of_assignee)(data["conversation"])

    async def crash(self: ProtocolSocket, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        raise RuntimeError("a bug outside every handler's error frame")

    monkeypatch.setattr(ProtocolSocket, "receive", crash)
    await agent.send_to(text_data="{}")
    with pytest.raises(RuntimeError):
        await agent.wait(timeout=10)  # the consumer died of it, as daphne's 1011 close would show

    layer = get_channel_layer()
    members = {channel for channels in getattr(layer, "groups", {}).values() for channel in channels}
    left = await database_sync_to_async(open_sockets_of_assignee)(data["conversation"])
    await sync_to_async(connections.close_all)()
    assert opened == 1
    assert left == 0  # presence no longer counts the dead socket
    assert members == set()  # and it is in no group any more


@pytest.mark.django_db(transaction=True)
async def test_a_frame_sent_while_the_client_is_closing_is_dropped_and_the_socket_ends_cleanly(settings):
    """Between a client's close frame and daphne's disconnect event, daphne refuses frames (autobahn's
    `Disconnected`): the socket drops them instead of dying with an error, and ends at the disconnect."""
    settings.SWEEP_IN_PROCESS = False
    data = await database_sync_to_async(build)()
    closing = False
    refused: list[str] = []

    async def closing_client(scope, receive, send):
        async def send_while_open(message):
            if closing and message["type"] == "websocket.send":
                refused.append(message["text"])
                raise Disconnected("Attempt to send on a closed protocol")
            await send(message)

        await application(scope, receive, send_while_open)

    agent = WebsocketCommunicator(closing_client, "/ws/agent/", headers=[ORIGIN, (b"cookie", data["cookie"])])
    assert (await agent.connect())[0]
    await next_of(agent, "hello")
    closing = True
    await agent.send_json_to({"type": "ping", "request_id": "p"})
    while not refused:  # the pong was attempted, and refused
        await asyncio.sleep(0.01)
    await agent.disconnect()  # the consumer ended without an exception (wait() would raise it)

    left = await database_sync_to_async(open_sockets_of_assignee)(data["conversation"])
    await sync_to_async(connections.close_all)()
    assert '"type":"pong"' in refused[0]
    assert left == 0


def test_an_undo_runs_only_after_its_effect_and_an_effect_after_its_undo_never_runs():
    ran: list[str] = []
    counted = UndoOnce()
    counted.do(lambda: ran.append("count"))
    counted.undo(lambda: ran.append("uncount"))
    counted.undo(lambda: ran.append("uncount again"))
    assert ran == ["count", "uncount"]

    abandoned = UndoOnce()
    abandoned.undo(lambda: ran.append("uncount of nothing"))
    with pytest.raises(SocketGone):
        abandoned.do(lambda: ran.append("count too late"))
    assert ran == ["count", "uncount"]

    failed = UndoOnce()
    with pytest.raises(ZeroDivisionError):
        failed.do(lambda: 1 / 0)
    failed.undo(lambda: ran.append("uncount of a failed count"))
    assert ran == ["count", "uncount"]


async def refused_with(agent: WebsocketCommunicator, retry_after: list[float] | None = None) -> tuple[list[str], int]:
    """The error codes a socket got before its close, and the close code (after its clean-up ended); the
    frames' `retry_after` go into `retry_after` when given."""
    codes: list[str] = []
    while True:
        output = await agent.receive_output(timeout=10)
        if output["type"] == "websocket.close":
            await agent.send_input({"type": "websocket.disconnect", "code": output["code"]})  # as daphne does
            await agent.wait(timeout=10)
            return codes, output["code"]
        if output["type"] == "websocket.send":
            frame = json.loads(output["text"])
            codes.append(frame.get("code", frame["type"]))
            if retry_after is not None and "retry_after" in frame:
                retry_after.append(frame["retry_after"])


@pytest.mark.django_db(transaction=True)
async def test_a_console_socket_that_opens_past_its_deadline_is_closed_with_4503_and_its_late_count_undone(
    settings, monkeypatch
):
    """A reconnect storm queues openings behind each other on the database thread: one whose hello is still
    being read at the deadline is refused (the client retries), and the count its thread went on to write is
    taken back at its close, so presence does not drift."""
    settings.SWEEP_IN_PROCESS = False
    data = await database_sync_to_async(build)()
    real_console_open = agents.consumers.console_open
    counted: list[int] = []

    def slow_console_open(*, actor):
        time.sleep(0.6)  # the database thread is busy with other sockets' openings
        session = real_console_open(actor=actor)
        counted.append(actor.user.pk)
        return session

    monkeypatch.setattr(agents.consumers, "console_open", slow_console_open)
    monkeypatch.setattr(sockets, "OPEN_DEADLINE", 0.3)
    agent = WebsocketCommunicator(application, "/ws/agent/", headers=[ORIGIN, (b"cookie", data["cookie"])])
    assert (await agent.connect())[0]  # the console accepts before reading its hello
    retry_after: list[float] = []
    codes, close_code = await refused_with(agent, retry_after)

    left = await database_sync_to_async(open_sockets_of_assignee)(data["conversation"])
    await sync_to_async(connections.close_all)()
    assert (codes, close_code) == (["unavailable"], 4503)
    assert len(retry_after) == 1 and retry_after[0] >= sockets.RETRY_AFTER_MIN  # busy: told when to come back
    assert len(counted) == 1  # the thread did count the socket after the deadline …
    assert left == 0  # … and its close took it back


@pytest.mark.django_db(transaction=True)
async def test_a_handshake_that_arrives_past_its_deadline_does_no_database_work(settings, monkeypatch):
    """A handshake that waited out its deadline before its socket started (daphne has dropped it by then) is
    refused before any of its queries run."""
    settings.SWEEP_IN_PROCESS = False
    data = await database_sync_to_async(build)()
    reads: list[object] = []
    real_actor_for = agents.consumers.agent_actor_for

    def actor_for(user):
        reads.append(user)
        return real_actor_for(user)

    monkeypatch.setattr(agents.consumers, "agent_actor_for", actor_for)

    async def late(scope, receive, send):
        await application(dict(scope, **{ARRIVED_AT: asyncio.get_running_loop().time() - 10}), receive, send)

    agent = WebsocketCommunicator(late, "/ws/agent/", headers=[ORIGIN, (b"cookie", data["cookie"])])
    assert (await agent.connect())[0]
    codes, close_code = await refused_with(agent)

    left = await database_sync_to_async(open_sockets_of_assignee)(data["conversation"])
    await sync_to_async(connections.close_all)()
    assert (codes, close_code) == (["unavailable"], 4503)
    assert reads == []
    assert left == 0


@pytest.mark.django_db(transaction=True)
async def test_sockets_past_the_limit_of_openings_at_once_wait_their_turn_and_no_longer_than_their_deadline(
    settings, monkeypatch
):
    """Openings take turns: with one turn, a second console socket waits while the first is opening, and is
    refused with 4503 when no turn came in its time, without having started (not even its session lookup)."""
    settings.SWEEP_IN_PROCESS = False
    data = await database_sync_to_async(build)()
    real_open = agents.consumers.AgentConsumer.open
    opening: list[object] = []
    first_may_go_on = asyncio.Event()

    async def open_holding_the_first(self):
        opening.append(self)
        if len(opening) == 1:
            await first_may_go_on.wait()  # the first holds its turn (without holding the database thread)
        await real_open(self)

    monkeypatch.setattr(agents.consumers.AgentConsumer, "open", open_holding_the_first)
    monkeypatch.setattr(sockets, "OPENING_AT_ONCE", 1)
    monkeypatch.setattr(sockets, "OPEN_DEADLINE", 0.4)
    monkeypatch.setattr(sockets, "OPEN_BUDGET", 0.1)  # a socket waits for a turn until 0.3 s after it arrived

    def arriving(after: float):
        async def app(scope, receive, send):
            arrived = asyncio.get_running_loop().time() + after
            await application(dict(scope, **{ARRIVED_AT: arrived}), receive, send)

        return app

    headers = [ORIGIN, (b"cookie", data["cookie"])]
    first = WebsocketCommunicator(arriving(after=10), "/ws/agent/", headers=headers)  # all the time it needs
    first_connected = asyncio.ensure_future(first.connect(timeout=10))
    while not opening:  # the first has its turn
        await asyncio.sleep(0.01)
    second = WebsocketCommunicator(arriving(after=0), "/ws/agent/", headers=headers)
    waited = asyncio.get_running_loop().time()
    assert (await second.connect())[0]
    retry_after: list[float] = []
    codes, close_code = await refused_with(second, retry_after)
    waited = asyncio.get_running_loop().time() - waited
    opened_meanwhile = len(opening)
    first_may_go_on.set()
    assert (await first_connected)[0]
    await next_of(first, "hello")
    await first.disconnect()

    left = await database_sync_to_async(open_sockets_of_assignee)(data["conversation"])
    await sync_to_async(connections.close_all)()
    assert (codes, close_code) == (["unavailable"], 4503)
    assert opened_meanwhile == 1  # the second never started to open
    assert len(retry_after) == 1 and retry_after[0] >= sockets.RETRY_AFTER_MIN  # and was told when to return
    assert waited >= 0.25  # it waited for a turn before it was refused
    assert left == 0


def test_refused_sockets_are_given_return_times_one_opening_apart_after_those_waiting(monkeypatch):
    """The pace of a process's openings (contactcenter.sockets.Openings): each socket refused while it is
    busy gets a return time one opening's time after the one before (a turn's time held over the turns), not
    before the sockets already waiting for a turn had theirs (at most the time a socket may wait: the others
    are refused and get later return times), and never more than RETRY_AFTER_MAX away."""
    monkeypatch.setattr(sockets, "OPENING_AT_ONCE", 8)

    async def hand_out() -> tuple[list[float], list[float], float, float]:
        process = sockets.Openings()
        for _ in range(50):
            process.turn_held(0.8)  # lately a turn is held 0.8 s: one socket opened every 0.1 s
        first = [process.retry_after() for _ in range(3)]
        crowded = sockets.Openings()
        for _ in range(50):
            crowded.turn_held(0.8)
        crowded.waiting = 15  # 1.5 s of openings ahead
        behind = [crowded.retry_after() for _ in range(2)]
        storm = sockets.Openings()
        for _ in range(50):
            storm.turn_held(0.8)
        storm.waiting = 2_000  # a storm: only what the others may wait is ahead, the rest come after
        stormed = storm.retry_after()
        crowded.next_return += 10_000
        return first, behind, stormed, crowded.retry_after()

    first, behind, stormed, far = asyncio.run(hand_out())
    assert first[0] == pytest.approx(sockets.RETRY_AFTER_MIN, abs=0.02)
    assert [round(b - a, 2) for a, b in itertools.pairwise(first)] == [pytest.approx(0.1, abs=0.02)] * 2
    assert behind[0] == pytest.approx(1.5, abs=0.05) and behind[1] - behind[0] == pytest.approx(0.1, abs=0.02)
    assert stormed == pytest.approx(sockets.OPEN_DEADLINE - sockets.OPEN_BUDGET, abs=0.05)
    assert far == sockets.RETRY_AFTER_MAX
