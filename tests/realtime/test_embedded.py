"""The embedded mode (one process, in-memory channel layer, SQLite): both sockets in-process, and the sweeper loop."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.layers import InMemoryChannelLayer, get_channel_layer
from channels.testing import WebsocketCommunicator
from django.db import connections
from django.utils import timezone

from agents.models import AgentProfile, Presence
from chat.models import Conversation, ConversationStatus
from chat.selectors import agent_actor_for
from chat.services.starting import conversation_start
from chat.tokens import visitor_token_issue
from contactcenter.asgi import application
from contactcenter.realtime import conversation_group, tenant_agents_group
from contactcenter.wiring import sweeper
from contactcenter.wiring.routing import build_application
from queueing.services import conversation_accept
from tests.factories import (
    DispositionFactory,
    MembershipFactory,
    online_agent_in_routed_queue,
    session_cookie,
)

pytestmark = [pytest.mark.smoke]

ORIGIN = (b"origin", b"http://127.0.0.1:8000")


def build() -> dict:
    widget, agent = online_agent_in_routed_queue()
    conversation = conversation_start(widget=widget, visitor_id="v-embedded", answers={"name": "Jane"}).conversation
    conversation_accept(actor=agent_actor_for(agent), conversation_id=conversation.pk)
    return {
        "tenant": widget.tenant_id,
        "conversation": conversation.pk,
        "disposition": DispositionFactory(tenant=widget.tenant).pk,
        "token": visitor_token_issue(tenant_id=widget.tenant_id, widget_id=widget.pk, visitor_id="v-embedded"),
        "cookie": session_cookie(agent).encode(),
    }


async def open_both(data: dict) -> tuple[WebsocketCommunicator, WebsocketCommunicator]:
    """The visitor's and the agent's socket of `build()`'s conversation, both connected (hello not read yet)."""
    visitor = WebsocketCommunicator(
        application, f"/ws/visitor/conversations/{data['conversation']}/?token={data['token']}", headers=[ORIGIN]
    )
    agent = WebsocketCommunicator(application, "/ws/agent/", headers=[ORIGIN, (b"cookie", data["cookie"])])
    assert (await visitor.connect())[0] and (await agent.connect())[0]
    return visitor, agent


async def next_of(socket: WebsocketCommunicator, kind: str) -> dict:
    while True:
        frame = json.loads(await socket.receive_from(timeout=10))
        if frame["type"] == kind:
            return frame


@pytest.mark.django_db(transaction=True)
async def test_visitor_and_agent_chat_in_one_process(settings):
    settings.SWEEP_IN_PROCESS = False  # the loop is tested below; here it would only share the test database
    data = await database_sync_to_async(build)()
    conversation_id = data["conversation"]
    visitor, agent = await open_both(data)
    assert (await next_of(visitor, "hello"))["conversation"]["status"] == "open"
    hello = await next_of(agent, "hello")
    assert [c["id"] for c in hello["conversations"]] == [conversation_id]

    resume = {"type": "resume", "conversation_id": conversation_id, "last_seq": 0}
    for socket in (visitor, agent):
        await socket.send_to(text_data=json.dumps(resume))
        notice = await next_of(socket, "message.new")
        assert notice["message"]["event"] == "agent.joined" and notice["replay"] is True
        assert (await next_of(socket, "resume.done"))["last_seq"] == 1

    await visitor.send_to(text_data=json.dumps({"type": "message.send", "client_id": "c1", "body": "Hello"}))
    ack = await next_of(visitor, "message.ack")
    # 2 follows the 1 this socket has: the ack is its delivery (last_seq), no message.new copy comes.
    assert (ack["seq"], ack["last_seq"]) == (2, 2)
    received = await next_of(agent, "message.new")
    assert (received["message"]["seq"], received["message"]["body"]) == (2, "Hello")
    await agent.send_to(
        text_data=json.dumps(
            {"type": "message.send", "conversation_id": conversation_id, "client_id": "a1", "body": "Hi"}
        )
    )
    assert (await next_of(agent, "message.ack"))["last_seq"] == 3
    reply = await next_of(visitor, "message.new")  # the next frame the visitor gets: not a copy of its own 2
    assert (reply["message"]["seq"], reply["message"]["body"]) == (3, "Hi")

    close = {"type": "conversation.close", "conversation_id": conversation_id, "request_id": "bye"}
    await agent.send_to(text_data=json.dumps(close))
    assert (await next_of(agent, "error"))["code"] == "disposition_required"
    await agent.send_to(text_data=json.dumps({**close, "disposition_id": data["disposition"]}))
    assert (await next_of(agent, "ok"))["request_id"] == "bye"
    closed = await next_of(visitor, "message.new")
    assert closed["message"]["event"] == "conversation.closed"
    assert (await next_of(visitor, "conversation.updated"))["conversation"]["status"] == "closed"

    await visitor.disconnect()
    await agent.disconnect()
    conversation = await database_sync_to_async(Conversation.objects.get)(pk=conversation_id)
    assert conversation.status == ConversationStatus.CLOSED
    profile = await database_sync_to_async(AgentProfile.objects.get)(user_id=conversation.assignee_id)
    # The consumers' database thread keeps its connection; close it, or the test database cannot be dropped.
    await sync_to_async(connections.close_all)()
    assert profile.open_sockets == 0


@pytest.mark.django_db(transaction=True)
async def test_sockets_ignore_unknown_events_and_spend_no_thread_hop_on_frames_that_need_no_database(
    settings, monkeypatch
):
    """A newer process may publish event types this one does not know (rolling deploy): ignored, the socket
    lives on. And Channels' per-event close_old_connections hop to the shared database thread is skipped."""
    import channels.consumer

    hops = []

    async def counting_hop():
        hops.append(1)

    monkeypatch.setattr(channels.consumer, "aclose_old_connections", counting_hop)
    settings.SWEEP_IN_PROCESS = False
    data = await database_sync_to_async(build)()
    visitor = WebsocketCommunicator(
        application, f"/ws/visitor/conversations/{data['conversation']}/?token={data['token']}", headers=[ORIGIN]
    )
    assert (await visitor.connect())[0]
    await next_of(visitor, "hello")
    await get_channel_layer().group_send(
        conversation_group(data["tenant"], data["conversation"]), {"type": "from.the.future", "x": 1}
    )
    await visitor.send_to(text_data=json.dumps({"type": "ping", "request_id": "p"}))
    assert (await next_of(visitor, "pong"))["request_id"] == "p"
    await visitor.disconnect()
    await sync_to_async(connections.close_all)()
    assert hops == []


@pytest.mark.django_db
def test_the_in_process_sweeper_runs_the_beat_sweep_and_starts_once(settings):
    assert sweeper.run_once()["agents_offline"] == 0  # the same dict contactcenter.tasks.sweep returns
    settings.SWEEP_IN_PROCESS = False
    assert sweeper.ensure_started() is False
    settings.SWEEP_IN_PROCESS = True
    settings.CELERY_BEAT_SCHEDULE = {"sweep": {"schedule": 3600.0}}  # no pass runs while the test looks
    try:
        assert sweeper.ensure_started() is True
        thread = sweeper._started
        assert thread is not None and thread.is_alive()
        assert sweeper.ensure_started() is True
        assert sweeper._started is thread  # started once per process
    finally:
        sweeper.stop()
    assert not thread.is_alive()


@pytest.mark.django_db
async def test_the_application_starts_the_sweeper_at_its_first_connection_on_the_servers_loop(settings):
    """The wiring starts the embedded sweeper (not a socket): the first connection of any kind, an HTTP request
    here, starts it once, with the loop it runs on as the loop its passes publish from."""
    settings.SWEEP_IN_PROCESS = True
    settings.CELERY_BEAT_SCHEDULE = {"sweep": {"schedule": 3600.0}}
    seen: list[str] = []

    async def http_app(scope, receive, send):
        seen.append(scope["type"])

    application = build_application(http_app)
    sweeper.stop()
    try:
        assert sweeper._started is None
        await application({"type": "http", "path": "/healthz"}, None, None)
        thread = sweeper._started
        assert thread is not None and thread.is_alive()
        assert sweeper._server_loop is asyncio.get_running_loop()
        await application({"type": "http", "path": "/healthz"}, None, None)
        assert sweeper._started is thread
    finally:
        sweeper.stop()
    assert seen == ["http", "http"]


def gone_agent() -> dict:
    agent = MembershipFactory().user
    long_ago = timezone.now() - timedelta(hours=1)
    AgentProfile.objects.filter(user=agent).update(presence=Presence.ONLINE, open_sockets=1, last_heartbeat_at=long_ago)
    return {"tenant": agent.membership.tenant_id, "agent": agent.pk}


class ThreadNotingLayer(InMemoryChannelLayer):
    """The embedded layer, noting the thread of each group_send: its asyncio queues are not thread-safe."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.send_threads: list[int] = []

    async def group_send(self, group, message):
        self.send_threads.append(threading.get_ident())
        await super().group_send(group, message)


@pytest.mark.django_db(transaction=True)
async def test_a_sweeper_pass_publishes_from_the_servers_loop(settings):
    """The sweeper thread runs each pass through the server's loop, so an agent it takes offline is announced
    on the loop that owns the in-memory layer's queues (the consumers'), never from the sweeper's thread."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": f"{__name__}.ThreadNotingLayer"}}
    settings.PRESENCE_GRACE_SECONDS = 0
    settings.SWEEP_IN_PROCESS = True
    settings.CELERY_BEAT_SCHEDULE = {"sweep": {"schedule": 3600.0}}  # the thread's own passes stay away
    data = await database_sync_to_async(gone_agent)()
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(tenant_agents_group(data["tenant"]), channel)
    try:
        assert sweeper.ensure_started() is True  # as the application does at a connection, on the server's loop
        await asyncio.to_thread(sweeper._pass, 1.0)  # what the sweeper thread does every interval
        event = await asyncio.wait_for(layer.receive(channel), 5)
    finally:
        sweeper.stop()
        await sync_to_async(connections.close_all)()
    assert (event["type"], event["user_id"], event["presence"]) == ("agent.presence", data["agent"], "offline")
    assert layer.send_threads == [threading.get_ident()]
