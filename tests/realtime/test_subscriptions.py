"""Redis subscriptions follow the open sockets, and a socket opened while Redis is down is told to retry.

Each test runs its own redis-server and daphne, so Redis's PUBSUB CHANNELS shows this server's
subscriptions and nothing else's, and Redis can be stopped without disturbing the session's services.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from websockets.exceptions import ConnectionClosed

from tests.realtime.test_protocol import (
    Inbox,
    make_setup,
    open_conversation,
    open_socket,
    session_cookie,
    visitor_token,
)
from tests.support.servers import DaphneServer, free_port

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server to run its own Redis"),
]

WAIT = 30.0  # only to keep a broken server from hanging the run
GROUP = "asgi__group__"  # channels_redis's prefix for a group's Redis channel
SPECIFIC = "asgispecific."  # ... and for a socket's own channel
# What channels_redis logs, with a traceback, for each failed read and clean-up while Redis is away.
REDIS_AWAY_ERRORS = ["channels_redis.pubsub Unexpected exception"]


class OwnRedis:
    """A redis-server on a free loopback port, stopped by pid; restartable on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + WAIT
        while True:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=1).ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            process.terminate()
            process.wait(timeout=10)

    def pause(self, paused: bool) -> None:
        """SIGSTOP/SIGCONT: a stopped Redis still accepts connections (the kernel does) but never answers."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP if paused else signal.SIGCONT)

    def channels(self) -> set[str]:
        client = redis.Redis(port=self.port, decode_responses=True)
        return set(client.pubsub_channels())


@pytest.fixture
def tolerated_errors() -> list[str]:
    """ERROR log lines (by their message) a test expects from its server; every other one fails it."""
    return []


@pytest.fixture
def own_services(tolerated_errors: list[str]) -> Iterator[tuple[OwnRedis, DaphneServer]]:
    own_redis = OwnRedis()
    own_redis.start()
    server = DaphneServer(env_overrides={"REDIS_URL": own_redis.url})
    try:
        server.start()
        yield own_redis, server
        log = server.log_path.read_text(errors="replace")
        errors = [line for line in log.splitlines() if " ERROR " in line]
        assert [line for line in errors if not any(known in line for known in tolerated_errors)] == [], log[-4000:]
        if not errors:
            assert "Traceback" not in log, log[-4000:]
    finally:
        server.stop()
        own_redis.stop()


def settle(own_redis: OwnRedis, expected: set[str]) -> set[str]:
    """Redis's channel set once it equals `expected` (closes are handled a moment after the client's)."""
    deadline = time.monotonic() + WAIT
    while (channels := own_redis.channels()) != expected and time.monotonic() < deadline:
        time.sleep(0.1)
    return channels


def subscriptions(channels: set[str]) -> tuple[int, set[str]]:
    """(how many sockets' own channels, which groups) Redis holds subscriptions for."""
    return len([c for c in channels if c.startswith(SPECIFIC)]), {
        c[len(GROUP) :] for c in channels if c.startswith(GROUP)
    }


async def attempt_socket(server: DaphneServer, path: str, cookie: str = "") -> tuple[list[dict[str, Any]], int | None]:
    """Opens a socket, reads until its hello (then closes) or until the server closes it: (frames, close code)."""
    ws = await open_socket(server, path, cookie=cookie)
    frames = []
    try:
        async for raw in ws:
            frames.append(json.loads(raw))
            if frames[-1]["type"] == "hello":
                await ws.close()
    except ConnectionClosed:
        pass
    return frames, ws.close_code


def health(server: DaphneServer) -> int:
    try:
        with urllib.request.urlopen(f"{server.url}/healthz", timeout=WAIT) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_after_a_storm_of_connects_and_closes_redis_holds_the_open_sockets_subscriptions_only(own_services):
    own_redis, server = own_services
    setup = make_setup()
    agent = setup.agents[0]
    conversations = [open_conversation(setup, visitor_id=f"storm-{index}") for index in range(4)]
    cookie = session_cookie(agent)
    paths = {
        c.pk: f"/ws/visitor/conversations/{c.pk}/?token={visitor_token(setup.widget, c.visitor_id)}"
        for c in conversations
    }
    kept_conversation = conversations[0].pk
    tenant = setup.tenant.pk

    async def visitor_round(conversation_id: int, index: int) -> None:
        """Opens, resumes, sends a message and goes away while it is being stored (closed or cut)."""
        ws = await open_socket(server, paths[conversation_id])
        try:
            json.loads(await asyncio.wait_for(ws.recv(), WAIT))
            resume = {"type": "resume", "conversation_id": conversation_id, "last_seq": 0}
            await ws.send(json.dumps(resume))
            send = {"type": "message.send", "client_id": str(uuid.uuid4()), "body": f"storm {index}"}
            await ws.send(json.dumps(send))
            if index % 3 == 0:
                ws.transport.abort()  # a network loss: no closing handshake
            else:
                await ws.close()
        except ConnectionClosed:
            pass

    async def agent_round(conversation_id: int) -> None:
        ws = await open_socket(server, "/ws/agent/", cookie=cookie)
        try:
            json.loads(await asyncio.wait_for(ws.recv(), WAIT))
            await ws.send(json.dumps({"type": "resume", "conversation_id": conversation_id, "last_seq": 0}))
            await ws.send(json.dumps({"type": "typing", "conversation_id": conversation_id, "is_typing": True}))
            await ws.close()
        except ConnectionClosed:
            pass

    async def storm() -> None:
        for wave in range(6):
            rounds = [visitor_round(c.pk, wave * 10 + i) for i, c in enumerate(conversations * 2)]
            rounds += [agent_round(c.pk) for c in conversations[:2]]
            await asyncio.gather(*rounds)

    async def scenario() -> dict[str, Any]:
        visitor = Inbox(await open_socket(server, paths[kept_conversation]))
        console = Inbox(await open_socket(server, "/ws/agent/", cookie=cookie))
        await visitor.expect(type="hello")
        await console.expect(type="hello")
        resume = {"type": "resume", "conversation_id": kept_conversation, "last_seq": 0, "request_id": "r"}
        for inbox in (visitor, console):
            await inbox.ws.send(json.dumps(resume))
            await inbox.expect(type="resume.done")
        before = own_redis.channels()
        await storm()
        healthy = [await asyncio.to_thread(health, server) for _ in range(20)]  # each used to subscribe one
        after_storm = await asyncio.to_thread(settle, own_redis, before)
        await visitor.close()
        await console.close()
        after_all = await asyncio.to_thread(settle, own_redis, set())
        return {"before": before, "healthy": healthy, "after storm": after_storm, "after all": after_all}

    result = asyncio.run(scenario())
    # Two open sockets: a visitor's and a console's, both following one conversation.
    conversation_groups = {f"t{tenant}.conv.{kept_conversation}", f"t{tenant}.conv.{kept_conversation}.agents"}
    assert subscriptions(result["before"]) == (
        2,
        conversation_groups | {f"t{tenant}.agent.{agent.pk}", f"t{tenant}.agents"},
    )
    assert set(result["healthy"]) == {200}
    assert subscriptions(result["after storm"]) == subscriptions(result["before"])
    assert result["after storm"] == result["before"]
    assert result["after all"] == set()


def test_a_socket_opened_while_redis_is_down_is_closed_with_4503_and_opens_once_it_is_back(
    own_services, tolerated_errors
):
    own_redis, server = own_services
    tolerated_errors.append("Service Unavailable: /healthz")  # Django logs the 503 it is asked for
    setup = make_setup()
    conversation = open_conversation(setup)
    cookie = session_cookie(setup.agents[0])
    visitor_path = (
        f"/ws/visitor/conversations/{conversation.pk}/?token={visitor_token(setup.widget, conversation.visitor_id)}"
    )

    async def scenario() -> dict[str, Any]:
        return {
            "visitor": await attempt_socket(server, visitor_path),
            "agent": await attempt_socket(server, "/ws/agent/", cookie),
        }

    own_redis.stop()
    down_health = health(server)
    down = asyncio.run(scenario())
    own_redis.start()  # the same port: the server's layer reconnects on its own
    up = asyncio.run(scenario())

    assert down_health == 503
    for side in ("visitor", "agent"):
        frames, close_code = down[side]
        assert close_code == 4503, (side, down[side])
        assert [(frame["type"], frame["code"]) for frame in frames] == [("error", "unavailable")]
        assert [frame["type"] for frame in up[side][0]][:1] == ["hello"], (side, up[side])


def test_sockets_closed_while_redis_is_down_are_not_subscribed_again_when_it_is_back(own_services, tolerated_errors):
    own_redis, server = own_services
    tolerated_errors.extend(REDIS_AWAY_ERRORS)  # Redis stops under open sockets here
    setup = make_setup()
    agent = setup.agents[0]
    kept, *doomed = [open_conversation(setup, visitor_id=f"outage-{index}") for index in range(3)]
    cookie = session_cookie(agent)
    tenant = setup.tenant.pk

    def path(conversation: Any) -> str:
        return (
            f"/ws/visitor/conversations/{conversation.pk}/?token={visitor_token(setup.widget, conversation.visitor_id)}"
        )

    async def opened(path: str, conversation_id: int, cookie: str = "") -> Inbox:
        inbox = Inbox(await open_socket(server, path, cookie=cookie))
        await inbox.expect(type="hello")
        await inbox.ws.send(json.dumps({"type": "resume", "conversation_id": conversation_id, "last_seq": 0}))
        await inbox.expect(type="resume.done")
        return inbox

    def log_mentions(text: str, times: int) -> bool:
        deadline = time.monotonic() + WAIT
        while server.log_path.read_text(errors="replace").count(text) < times:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    async def scenario() -> dict[str, Any]:
        keep = [await opened(path(kept), kept.pk), await opened("/ws/agent/", kept.pk, cookie)]
        going = [await opened(path(conversation), conversation.pk) for conversation in doomed]
        with_all = own_redis.channels()
        await asyncio.to_thread(own_redis.stop)
        # Closed only once the server's layer has seen Redis go: before that, an unsubscribe may still be written
        # into the dying connection without an error, and the outage would not meet the closes.
        noticed = await asyncio.to_thread(log_mentions, REDIS_AWAY_ERRORS[0], 1)
        for inbox in going:
            await inbox.close()
        # Each closed socket tried to leave its conversation's group (only it was in it) and failed.
        tried = await asyncio.to_thread(log_mentions, "could not leave", len(going))
        await asyncio.to_thread(own_redis.start)  # the same port: the layer reconnects by itself
        deadline = time.monotonic() + WAIT
        expected = (2, {f"t{tenant}.conv.{kept.pk}", f"t{tenant}.conv.{kept.pk}.agents"})
        expected[1].update({f"t{tenant}.agent.{agent.pk}", f"t{tenant}.agents"})
        while subscriptions(after := own_redis.channels()) != expected and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        # The kept sockets still get what is published to them.
        await keep[1].ws.send(json.dumps({"type": "typing", "conversation_id": kept.pk, "is_typing": True}))
        typing = await keep[0].expect(type="typing")
        for inbox in keep:
            await inbox.close()
        return {
            "with all": with_all,
            "noticed": noticed,
            "tried": tried,
            "after": after,
            "expected": expected,
            "typing": typing,
        }

    result = asyncio.run(scenario())
    assert subscriptions(result["with all"])[0] == 4
    assert result["noticed"] and result["tried"]  # the outage really met the closes
    assert subscriptions(result["after"]) == result["expected"]
    assert result["typing"]["is_typing"] is True


def test_a_socket_opened_while_redis_hangs_is_closed_with_4503_and_the_layer_recovers(own_services, tolerated_errors):
    own_redis, server = own_services
    tolerated_errors.append("Service Unavailable: /healthz")
    setup = make_setup()
    conversation = open_conversation(setup)
    path = f"/ws/visitor/conversations/{conversation.pk}/?token={visitor_token(setup.widget, conversation.visitor_id)}"

    own_redis.pause(True)
    try:
        hung_health = health(server)
        hung = asyncio.run(attempt_socket(server, path))
    finally:
        own_redis.pause(False)
    back = asyncio.run(attempt_socket(server, path))
    settled = settle(own_redis, set())

    assert hung_health == 503  # the health check gives up instead of waiting on Redis
    assert hung == ([{"type": "error", "code": "unavailable", "message": hung[0][0]["message"], "fields": {}}], 4503)
    assert [frame["type"] for frame in back[0]][:1] == ["hello"], back  # the layer works again
    assert settled == set()  # and what the cancelled subscription left behind is gone
