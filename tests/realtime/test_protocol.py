"""docs/protocol.md against two real daphne processes on PostgreSQL + Redis, driven by the `websockets` client."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.conf import settings
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from agents.models import AgentProfile, Presence
from chat.models import Conversation, Message
from chat.selectors import agent_actor_for
from chat.services.starting import conversation_start
from chat.tokens import visitor_token_issue
from contactcenter.models import Role
from queueing.models import Offer, OfferStatus
from queueing.services import conversation_accept, conversation_request
from tests.factories import (
    MembershipFactory,
    QueueFactory,
    QueueMemberFactory,
    QueueRouteFactory,
    WidgetFactory,
    session_cookie,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

# Only to keep a broken server from hanging the run: nothing here measures speed.
WAIT = 30.0


class Lost(Exception):
    """The socket went away while a reply was awaited."""


# --- set-up (sync, in the test's database, committed so the servers see it) -----------------------------


@dataclass
class Setup:
    tenant: Any
    widget: Any
    queue: Any
    agents: list[Any]


def make_setup(agents: int = 1, max_chats: int = 50) -> Setup:
    widget = WidgetFactory()
    tenant = widget.tenant
    queue = QueueFactory(tenant=tenant)
    QueueRouteFactory(tenant=tenant, queue=queue, widget=widget)
    users = []
    for _ in range(agents):
        user = MembershipFactory(tenant=tenant, role=Role.AGENT).user
        QueueMemberFactory(tenant=tenant, queue=queue, user=user)
        AgentProfile.objects.filter(user=user).update(presence=Presence.ONLINE, max_chats=max_chats)
        users.append(user)
    return Setup(tenant=tenant, widget=widget, queue=queue, agents=users)


def visitor_token(widget: Any, visitor_id: str) -> str:
    return visitor_token_issue(tenant_id=widget.tenant_id, widget_id=widget.pk, visitor_id=visitor_id)


def open_conversation(setup: Setup, visitor_id: str = "visitor-1") -> Conversation:
    conversation = conversation_start(widget=setup.widget, visitor_id=visitor_id, answers={"name": "Jane"}).conversation
    conversation_accept(actor=agent_actor_for(setup.agents[0]), conversation_id=conversation.pk)
    return conversation


# --- a protocol client -------------------------------------------------------------------------------------


async def open_socket(server: Any, path: str, *, cookie: str = "", origin: str | None = None) -> ClientConnection:
    headers = {"Cookie": cookie} if cookie else {}
    return await connect(
        f"{server.ws_url}{path}",
        origin=origin or server.url,  # type: ignore[arg-type]
        additional_headers=headers,
        proxy=None,
        ping_interval=None,  # idle means idle: nothing but our own frames on the wire
        open_timeout=WAIT,
    )


class Inbox:
    """Every frame a socket received, kept in order; `expect` finds the first unclaimed match (none are dropped)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self.claimed: set[int] = set()
        self.arrived = asyncio.Event()
        self.task = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        try:
            async for raw in self.ws:
                self.frames.append(json.loads(raw))
                self.arrived.set()
        except ConnectionClosed:
            pass

    async def expect(self, **match: Any) -> dict[str, Any]:
        async def find() -> dict[str, Any]:
            while True:
                for index, frame in enumerate(self.frames):
                    if index not in self.claimed and all(frame.get(k) == v for k, v in match.items()):
                        self.claimed.add(index)
                        return frame
                self.arrived.clear()
                await self.arrived.wait()

        return await asyncio.wait_for(find(), WAIT)

    async def close(self) -> None:
        await self.ws.close()
        await self.task


async def in_thread(function: Any) -> Any:
    """Runs ORM work off the event loop, on a thread that closes its connection afterwards."""

    def run() -> Any:
        from django.db import connections

        try:
            return function()
        finally:
            connections.close_all()

    return await asyncio.to_thread(run)


@dataclass
class Party:
    """One side of a conversation that reconnects and resumes like the real clients must."""

    server: Any
    path: str
    conversation_id: int
    cookie: str = ""
    ws: ClientConnection | None = None
    last_seq: int = 0
    seen: list[int] = field(default_factory=list)
    frames: list[dict[str, Any]] = field(default_factory=list)
    waiters: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    reader: asyncio.Task[None] | None = None
    connects: int = 0

    async def connect(self) -> None:
        self.ws = await open_socket(self.server, self.path, cookie=self.cookie)
        hello = json.loads(await asyncio.wait_for(self.ws.recv(), WAIT))
        assert hello["type"] == "hello", hello
        self.connects += 1
        done = asyncio.get_running_loop().create_future()
        self.waiters["resume"] = done
        self.reader = asyncio.create_task(self.read(self.ws))
        await self.ws.send(
            json.dumps(
                {
                    "type": "resume",
                    "conversation_id": self.conversation_id,
                    "last_seq": self.last_seq,
                    "request_id": "resume",
                }
            )
        )
        await asyncio.wait_for(done, WAIT)

    async def read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                frame = json.loads(raw)
                self.frames.append(frame)
                kind = frame["type"]
                if kind == "message.new":
                    self.seen.append(frame["message"]["seq"])
                    self.last_seq = max(self.last_seq, frame["message"]["seq"])
                elif kind == "resume.done":
                    self.last_seq = max(self.last_seq, frame["last_seq"])
                elif kind == "message.ack" and "last_seq" in frame:
                    # The ack is this socket's delivery of its own message (protocol §2.3).
                    assert frame["last_seq"] == frame["seq"] > self.last_seq, frame
                    self.seen.append(frame["seq"])
                    self.last_seq = frame["seq"]
                key = frame.get("client_id") or frame.get("request_id")
                if kind in ("message.ack", "error", "resume.done", "pong", "ok") and key in self.waiters:
                    waiter = self.waiters.pop(key)
                    if not waiter.done():
                        waiter.set_result(frame)
        except ConnectionClosed:
            pass
        finally:
            for waiter in self.waiters.values():
                if not waiter.done():
                    waiter.set_exception(Lost())
            self.waiters.clear()

    async def kill(self) -> None:
        """Drops the TCP connection without a closing handshake, as a network failure would."""
        ws, self.ws = self.ws, None
        if ws is not None:
            ws.transport.abort()
        if self.reader is not None:
            await self.reader

    async def request(self, frame: dict[str, Any], key: str, *, kill_after_send: bool = False) -> dict[str, Any]:
        while True:
            if self.ws is None:
                await self.connect()
            assert self.ws is not None
            waiter = asyncio.get_running_loop().create_future()
            self.waiters[key] = waiter
            try:
                await self.ws.send(json.dumps(frame))
                if kill_after_send:
                    kill_after_send = False
                    await self.kill()  # the reply is lost: the same frame goes again on a new socket
                    continue
                reply = await asyncio.wait_for(waiter, WAIT)
            except (Lost, ConnectionClosed):
                await self.kill()
                continue
            if reply.get("code") == "rate_limited":
                await asyncio.sleep(reply["retry_after"])
                continue
            return reply

    async def send_message(self, body: str, *, private: bool = False, kill_after_send: bool = False) -> dict[str, Any]:
        client_id = str(uuid.uuid4())
        frame = {"type": "message.send", "conversation_id": self.conversation_id, "client_id": client_id, "body": body}
        if private:
            frame["private"] = True
        return await self.request(frame, client_id, kill_after_send=kill_after_send)

    async def sync(self) -> None:
        """A ping: the server sends anything this socket has not seen before it answers."""
        request_id = uuid.uuid4().hex
        await self.request({"type": "ping", "request_id": request_id}, request_id)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            await self.reader


def visitor_party(server: Any, setup: Setup, conversation: Conversation) -> Party:
    token = visitor_token(setup.widget, conversation.visitor_id)
    return Party(server, f"/ws/visitor/conversations/{conversation.pk}/?token={token}", conversation.pk)


def agent_party(server: Any, cookie: str, conversation: Conversation) -> Party:
    return Party(server, "/ws/agent/", conversation.pk, cookie=cookie)


def assert_in_order_once(seen: list[int], expected: Iterable[int]) -> None:
    expected = list(expected)
    duplicated = len(seen) - len(set(seen))
    lost = sorted(set(expected) - set(seen))
    assert duplicated == 0, f"{duplicated} duplicated"
    assert lost == [], f"{len(lost)} lost: {lost[:20]}"
    assert seen == sorted(seen), "out of order"
    assert set(seen) <= set(expected), "a message this side may not see"


# --- tests ------------------------------------------------------------------------------------------------


def test_messages_cross_processes_and_a_resend_stores_one_message(daphne_pair):
    first, second = daphne_pair
    setup = make_setup()
    conversation = open_conversation(setup)
    cookie = session_cookie(setup.agents[0])

    async def scenario() -> dict[str, Any]:
        visitor = visitor_party(first, setup, conversation)
        agent = agent_party(second, cookie, conversation)
        await visitor.connect()
        await agent.connect()
        assert visitor.seen == agent.seen == [1]  # agent.joined, replayed to both

        client_id = str(uuid.uuid4())
        send = {"type": "message.send", "conversation_id": conversation.pk, "client_id": client_id, "body": "Hello"}
        ack = await visitor.request(send, client_id)
        again = await visitor.request({**send, "body": "Hello (resent)"}, client_id)
        assert ack["type"] == again["type"] == "message.ack"
        assert ack["seq"] == again["seq"] == 2
        assert ack["channel"] == "web"  # the channel it was stored for: its receipt is the web chat's

        note = await agent.send_message("internal only", private=True)
        reply = await agent.send_message("Hi Jane")
        assert (note["seq"], reply["seq"]) == (3, 4)
        await visitor.sync()
        await agent.sync()

        # Errors answer, and the socket stays open and usable.
        assert visitor.ws is not None
        await visitor.ws.send("{not json")
        await visitor.ws.send(json.dumps({"type": "no.such.thing"}))
        await visitor.ws.send(json.dumps({"type": "resume", "conversation_id": conversation.pk + 999, "last_seq": 0}))
        long = "x" * (settings.MESSAGE_MAX_CHARS + 1)
        error = await visitor.request(
            {"type": "message.send", "conversation_id": conversation.pk, "client_id": "too-long", "body": long},
            "too-long",
        )
        await visitor.sync()
        await visitor.close()
        await agent.close()
        errors = [f["code"] for f in visitor.frames if f["type"] == "error"]
        return {"visitor": visitor.seen, "agent": agent.seen, "error": error, "errors": errors}

    result = asyncio.run(scenario())
    assert result["visitor"] == [1, 2, 4]  # a gap where the private note stands
    assert result["agent"] == [1, 2, 3, 4]
    assert result["error"]["code"] == "message_too_long" and result["error"]["client_id"] == "too-long"
    assert result["errors"] == ["bad_json", "unknown_type", "not_found", "message_too_long"]
    assert Message.objects.filter(conversation=conversation).count() == 4
    assert Message.objects.get(conversation=conversation, seq=2).body == "Hello"


def test_killed_sockets_resume_with_nothing_lost_and_nothing_twice(daphne_pair):
    first, second = daphne_pair
    setup = make_setup()
    conversation = open_conversation(setup)
    rng = random.Random(20261121)
    per_side = 100
    cookie = session_cookie(setup.agents[0])

    async def scenario() -> tuple[Party, Party, list[int]]:
        visitor = visitor_party(first, setup, conversation)
        agent = agent_party(second, cookie, conversation)
        await visitor.connect()
        await agent.connect()

        async def talk(party: Party, side: str, notes: bool) -> list[int]:
            seqs = []
            for i in range(per_side):
                roll = rng.random()
                if roll < 0.05:
                    await party.kill()  # dies between two sends; the next send reconnects and resumes
                ack = await party.send_message(
                    f"{side} {i}", private=notes and i % 10 == 0, kill_after_send=0.05 <= roll < 0.10
                )
                assert ack["type"] == "message.ack", ack
                seqs.append(ack["seq"])
            return seqs

        visitor_seqs, agent_seqs = await asyncio.gather(talk(visitor, "visitor", False), talk(agent, "agent", True))
        await visitor.sync()
        await agent.sync()
        await visitor.close()
        await agent.close()
        return visitor, agent, visitor_seqs + agent_seqs

    visitor, agent, acked = asyncio.run(scenario())
    stored = list(Message.objects.filter(conversation=conversation).order_by("seq").values_list("seq", "is_private"))
    all_seqs = [seq for seq, _ in stored]
    public = [seq for seq, private in stored if not private]
    assert len(stored) == 1 + 2 * per_side  # agent.joined + every message exactly once, resends included
    assert sorted(acked) == all_seqs[1:]
    assert visitor.connects > 1 and agent.connects > 1  # the kills happened
    assert_in_order_once(visitor.seen, public)
    assert_in_order_once(agent.seen, all_seqs)


def test_two_agents_accepting_at_once_exactly_one_wins(daphne_pair):
    first, second = daphne_pair
    setup = make_setup(agents=2)
    rounds = 20
    cookies = [session_cookie(user) for user in setup.agents]

    async def scenario() -> list[dict[str, Any]]:
        inboxes = [
            Inbox(await open_socket(first, "/ws/agent/", cookie=cookies[0])),
            Inbox(await open_socket(second, "/ws/agent/", cookie=cookies[1])),
        ]
        for inbox in inboxes:
            await inbox.expect(type="hello")
        outcomes = []
        for round_ in range(rounds):
            conversation = await in_thread(
                lambda r=round_: (
                    conversation_request(
                        widget=setup.widget, visitor_id=f"racer-{r}", answers={"name": f"Racer {r}"}
                    ).conversation
                )
            )
            # Offered to one of them (longest idle first); both may pick it up from the waiting list.
            offered_to = await in_thread(
                lambda c=conversation: Offer.objects.get(conversation=c, status=OfferStatus.PENDING).agent_id
            )
            holder = [user.pk for user in setup.agents].index(offered_to)
            offer = await inboxes[holder].expect(type="offer.new")
            assert offer["offer"]["conversation_id"] == conversation.pk
            assert offer["offer"]["queue"]["name"] == setup.queue.name
            accept = {"type": "conversation.accept", "conversation_id": conversation.pk}
            await asyncio.gather(
                *(
                    inbox.ws.send(json.dumps({**accept, "request_id": f"r{round_}-{i}"}))
                    for i, inbox in enumerate(inboxes)
                )
            )
            replies = [await inbox.expect(request_id=f"r{round_}-{i}") for i, inbox in enumerate(inboxes)]
            withdrawn = await inboxes[holder].expect(type="offer.withdrawn", conversation_id=conversation.pk)
            outcomes.append(
                {"conversation": conversation.pk, "replies": replies, "withdrawn": withdrawn, "holder": holder}
            )
        for inbox in inboxes:
            await inbox.close()
        return outcomes

    outcomes = asyncio.run(scenario())
    wins = {0: 0, 1: 0}
    for outcome in outcomes:
        kinds = [reply["type"] for reply in outcome["replies"]]
        assert sorted(kinds) == ["error", "ok"], outcome
        winner = kinds.index("ok")
        loser = 1 - winner
        wins[winner] += 1
        assert outcome["replies"][loser]["code"] == "already_taken"
        holder = outcome["holder"]
        assert outcome["withdrawn"]["reason"] == ("accepted" if holder == winner else "taken")
        conversation = Conversation.objects.get(pk=outcome["conversation"])
        assert conversation.assignee_id == setup.agents[winner].pk
        offers = dict(Offer.objects.filter(conversation=conversation).values_list("agent_id", "status"))
        status = OfferStatus.ACCEPTED if holder == winner else OfferStatus.WITHDRAWN
        assert offers == {setup.agents[holder].pk: status}
        assert Message.objects.filter(conversation=conversation, event="agent.joined").count() == 1
    assert sum(wins.values()) == rounds


def test_an_idle_agent_socket_stays_alive_on_real_redis(daphne_server):
    setup = make_setup()
    cookie = session_cookie(setup.agents[0])

    async def scenario() -> dict[str, Any]:
        inbox = Inbox(await open_socket(daphne_server, "/ws/agent/", cookie=cookie))
        await inbox.expect(type="hello")
        await asyncio.sleep(16)  # past redis-py's default 5 s read timeout, three times over
        # The layer's receive loop must still be alive: an event published now reaches the socket.
        conversation = await in_thread(
            lambda: conversation_request(widget=setup.widget, visitor_id="late", answers={"name": "Late"}).conversation
        )
        offer = await inbox.expect(type="offer.new")
        await inbox.ws.send(json.dumps({"type": "ping", "request_id": "still-there"}))
        pong = await inbox.expect(request_id="still-there")
        await inbox.close()
        return {"offer": offer, "pong": pong, "conversation": conversation.pk}

    result = asyncio.run(scenario())
    assert result["offer"]["type"] == "offer.new"
    assert result["offer"]["offer"]["conversation_id"] == result["conversation"]
    assert result["pong"] == {**result["pong"], "type": "pong", "request_id": "still-there"}


def test_sockets_for_someone_elses_conversation_are_refused(daphne_server):
    setup = make_setup()
    mine = open_conversation(setup, visitor_id="me")
    theirs = conversation_start(widget=setup.widget, visitor_id="them", answers={"name": "Them"}).conversation
    other_widget = WidgetFactory(tenant=setup.tenant)
    elsewhere = conversation_start(widget=other_widget, visitor_id="me", answers={"name": "Me"}).conversation
    token = visitor_token(setup.widget, "me")

    async def attempt(path: str, cookie: str = "") -> tuple[list[dict[str, Any]], int | None]:
        ws = await open_socket(daphne_server, path, cookie=cookie)
        frames = []
        try:
            async for raw in ws:
                frames.append(json.loads(raw))
        except ConnectionClosed:
            pass
        return frames, ws.close_code

    async def scenario() -> dict[str, Any]:
        return {
            "theirs": await attempt(f"/ws/visitor/conversations/{theirs.pk}/?token={token}"),
            "other widget": await attempt(f"/ws/visitor/conversations/{elsewhere.pk}/?token={token}"),
            "bad token": await attempt(f"/ws/visitor/conversations/{mine.pk}/?token={token}x"),
            "no session": await attempt("/ws/agent/"),
        }

    results = asyncio.run(scenario())
    assert results["theirs"][1] == 4404
    assert [frame["code"] for frame in results["theirs"][0]] == ["not_found"]  # no hello, nothing of theirs
    assert results["other widget"][1] == 4404 and results["other widget"][0][0]["code"] == "not_found"
    assert results["bad token"][1] == 4401 and results["bad token"][0][0]["code"] == "invalid_token"
    assert results["no session"][1] == 4401 and results["no session"][0][0]["code"] == "not_authenticated"


def test_a_foreign_origin_is_refused_at_the_handshake(daphne_server):
    setup = make_setup()
    conversation = open_conversation(setup)
    token = visitor_token(setup.widget, conversation.visitor_id)
    cookie = session_cookie(setup.agents[0])

    async def status(path: str, origin: str, cookie: str = "") -> int:
        try:
            ws = await open_socket(daphne_server, path, cookie=cookie, origin=origin)
        except InvalidStatus as exc:
            return exc.response.status_code
        hello = json.loads(await asyncio.wait_for(ws.recv(), WAIT))  # let the server finish opening it
        await ws.close()
        return 101 if hello["type"] == "hello" else 0

    async def scenario() -> list[int]:
        visitor_path = f"/ws/visitor/conversations/{conversation.pk}/?token={token}"
        return [
            await status(visitor_path, "http://evil.example"),
            await status("/ws/agent/", "http://evil.example", cookie),
            await status(visitor_path, daphne_server.url),  # the same socket from our own origin opens
            await status("/ws/agent/", daphne_server.url, cookie),
        ]

    assert asyncio.run(scenario()) == [403, 403, 101, 101]
