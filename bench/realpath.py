"""The real visitor/agent path of docs/protocol.md: seeded through the project's services, and its client driver."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection

from bench.loadclient import Driver, Refused

HANDSHAKE_TIMEOUT = 60.0


@dataclass(frozen=True)
class RealPair:
    conversation_id: int
    visitor_token: str
    session_key: str


SEED_WORKERS = 4


def seed_real(*, pairs: int) -> Callable[[], Driver]:
    """A tenant, a widget routed to a queue, `pairs` agents each assigned one open conversation, and their sessions.

    Everything goes through the project's services; `SEED_WORKERS` forked processes share the work.
    """
    import multiprocessing

    from django.db import connections

    from agents.services import tenant_setup
    from chat.services import widget_save
    from queueing.services import queue_save, queue_widgets_set

    started = time.monotonic()
    tenant = tenant_setup(name="Bench", admin_email="admin@bench.example", slug="bench").tenant
    widget = widget_save(tenant=tenant, name="Bench widget", allowed_origins=["http://127.0.0.1"])
    queue = queue_save(tenant=tenant, name="Bench queue")
    queue_widgets_set(queue=queue, widgets=[widget])
    connections.close_all()  # a forked child must open its own connection, never share the parent's socket
    chunks = [(i, min(pairs, i + 250), tenant.pk, widget.pk, queue.pk) for i in range(0, pairs, 250)]
    with multiprocessing.get_context("fork").Pool(min(SEED_WORKERS, len(chunks))) as pool:
        seeded = [pair for chunk in pool.starmap(_seed_chunk, chunks) for pair in chunk]
    print(f"seeded {pairs} agents with one open conversation each in {time.monotonic() - started:.1f} s", flush=True)
    return lambda: RealDriver(seeded)


def _seed_chunk(first: int, last: int, tenant_id: int, widget_id: int, queue_id: int) -> list[RealPair]:
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore
    from django.db import connections

    from agents.models import Presence
    from agents.services import agent_create
    from chat.models import Widget
    from chat.selectors import agent_actor_for
    from chat.tokens import new_visitor_id, visitor_token_issue
    from contactcenter.models import Role, Tenant
    from queueing.models import Queue
    from queueing.services import agent_presence_change, conversation_accept, conversation_request, queue_member_add

    tenant = Tenant.objects.get(pk=tenant_id)
    widget = Widget.objects.select_related("tenant").get(pk=widget_id)
    queue = Queue.objects.select_related("tenant").get(pk=queue_id)
    seeded: list[RealPair] = []
    for i in range(first, last):
        # No password: a usable one would cost a PBKDF2 hash per agent; the session is made directly below.
        user = agent_create(
            tenant=tenant, email=f"agent{i}@bench.example", role=Role.AGENT, first_name=f"Agent{i}", max_chats=1
        ).user
        queue_member_add(queue=queue, user=user)
        actor = agent_actor_for(user)
        assert actor is not None
        visitor_id = new_visitor_id()
        # Agents are offline while conversations start, so each is one offline message (not an offer to
        # every agent), which the agent then accepts: the conversation is open and assigned, seq 1 and 2.
        request = conversation_request(
            widget=widget,
            visitor_id=visitor_id,
            answers={"name": f"Visitor {i}"},
            message="Hello from the bench",
            client_id=f"seed-{i}",
        )
        conversation_accept(actor=actor, conversation_id=request.conversation.pk)
        agent_presence_change(actor=actor, presence=Presence.ONLINE)
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        assert session.session_key is not None
        token = visitor_token_issue(tenant_id=tenant_id, widget_id=widget_id, visitor_id=visitor_id)
        seeded.append(RealPair(request.conversation.pk, token, session.session_key))
    connections.close_all()
    return seeded


def stored_count(prefix: str) -> int:
    """Visitor messages of one run in the database (each client_id once, by the unique constraint)."""
    from chat.models import Message, SenderKind

    return Message.objects.filter(client_id__startswith=prefix, sender_kind=SenderKind.VISITOR).count()


class RealDriver:
    """Visitors authenticate with the signed token, agents with a session cookie; both `resume` before load."""

    name = "real"

    def __init__(self, pairs: list[RealPair]) -> None:
        self.pairs = pairs
        self.prefix = f"b{secrets.token_hex(3)}-"
        self.agent_seq: dict[int, int] = {}
        self.replays: dict[int, list[str]] = {}
        self.seq_repeats = 0
        self.seq_holes = 0
        self.acks = 0
        self.errors: Counter[str] = Counter()
        self.error_samples: list[str] = []

    def visitor_url(self, base: str, pair: int) -> str:
        p = self.pairs[pair]
        return f"{base}/ws/visitor/conversations/{p.conversation_id}/?token={p.visitor_token}"

    def agent_url(self, base: str, pair: int) -> str:
        return f"{base}/ws/agent/"

    def visitor_headers(self, pair: int) -> dict[str, str]:
        return {}

    def agent_headers(self, pair: int) -> dict[str, str]:
        return {"Cookie": f"sessionid={self.pairs[pair].session_key}"}

    def encode(self, pair: int, msg_id: int) -> str:
        # The body carries the id too: agents are not shown a visitor's client_id (protocol 1.1, §5).
        return f'{{"type":"message.send","client_id":"{self.prefix}{msg_id}","body":"{self.prefix}{msg_id}"}}'

    def decode_delivery(self, pair: int, frame: str) -> int | None:
        data = json.loads(frame)
        if data.get("type") != "message.new":
            if data.get("type") == "error":
                self._error("agent", data)
            return None
        message = data["message"]
        seq = message["seq"]
        last = self.agent_seq.get(pair, 0)
        if seq <= last:
            self.seq_repeats += 1
        elif seq > last + 1:
            self.seq_holes += 1
        self.agent_seq[pair] = max(last, seq)
        body = message.get("body") or ""
        if message.get("sender") != "visitor" or not body.startswith(self.prefix):
            return None
        return int(body[len(self.prefix) :])

    def on_visitor_frame(self, pair: int, frame: str) -> tuple[int, float] | None:
        if frame.startswith('{"type":"message.new"'):
            return None
        data = json.loads(frame)
        kind = data.get("type")
        if kind == "message.ack":
            self.acks += 1
        elif kind == "error":
            self._error("visitor", data)
            client_id = data.get("client_id") or ""
            # Not stored (or unknown, for server_error): the protocol says resend the same client_id.
            if client_id.startswith(self.prefix) and data.get("code") in ("rate_limited", "server_error"):
                return int(client_id[len(self.prefix) :]), float(data.get("retry_after") or 1)
        return None

    def _error(self, side: str, data: dict[str, Any]) -> None:
        self.errors[f"{side}:{data.get('code')}"] += 1
        if len(self.error_samples) < 3:
            self.error_samples.append(f"{side} error frame: {json.dumps(data)[:200]}")

    async def agent_ready(self, pair: int, agent: ClientConnection) -> None:
        """hello, then `resume`: from the last seq this agent saw when it saw one (a reconnect), else from the
        position hello gives; ready at `resume.done`. The replay is kept for `replayed`."""
        conversation_id = self.pairs[pair].conversation_id
        async with asyncio.timeout(HANDSHAKE_TIMEOUT):
            hello = await _expect(agent, "hello")
            mine = [c for c in hello["conversations"] if c["id"] == conversation_id]
            if not mine:
                raise RuntimeError(f"agent hello lacks conversation {conversation_id}")
            last_seq = self.agent_seq.get(pair, mine[0]["last_seq"])
            await agent.send(json.dumps({"type": "resume", "conversation_id": conversation_id, "last_seq": last_seq}))
            skipped: list[str] = []
            done = await _expect(agent, "resume.done", skipped)
        # Only once it is ready: an attempt refused half-way must be retried from where the agent last stood,
        # or its replay (never counted) would be skipped for good.
        self.replays.setdefault(pair, []).extend(
            frame for frame in skipped if frame.startswith('{"type":"message.new"')
        )
        self.agent_seq[pair] = done["last_seq"]

    async def visitor_ready(self, pair: int, visitor: ClientConnection) -> None:
        """hello, then `resume` from the position hello gives; ready at `resume.done`."""
        conversation_id = self.pairs[pair].conversation_id
        async with asyncio.timeout(HANDSHAKE_TIMEOUT):
            hello = await _expect(visitor, "hello")
            last_seq = hello["conversation"]["last_seq"]
            await visitor.send(json.dumps({"type": "resume", "conversation_id": conversation_id, "last_seq": last_seq}))
            await _expect(visitor, "resume.done")

    def replayed(self, pair: int) -> list[str]:
        return self.replays.pop(pair, [])

    def notes(self) -> list[str]:
        lines = [f"visitor acks received: {self.acks}"]
        if self.seq_repeats or self.seq_holes:
            lines.append(f"agent sockets saw {self.seq_repeats} repeated and {self.seq_holes} skipped seqs")
        if self.errors:
            lines.append("error frames: " + ", ".join(f"{k} x{v}" for k, v in self.errors.most_common()))
            lines.extend(self.error_samples)
        return lines


async def _expect(ws: ClientConnection, kind: str, skipped: list[str] | None = None) -> dict[str, Any]:
    """Reads frames until one of `kind` (others, e.g. replays or presence, are skipped, and kept in `skipped`
    when given); errors raise."""
    while True:
        raw = await ws.recv()
        text = raw if isinstance(raw, str) else raw.decode()
        data = json.loads(text)
        if data.get("type") == kind:
            return data
        if skipped is not None:
            skipped.append(text)
        if data.get("type") == "error":
            raise Refused(f"error frame while waiting for {kind}: {raw!r}"[:300], data.get("retry_after"))
