"""Whatever ends a socket, its clean-up runs: here an unexpected error escapes the consumer (in-process)."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from autobahn.exception import Disconnected
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.db import connections

from agents.models import AgentProfile
from chat.models import Conversation
from contactcenter.asgi import application
from contactcenter.sockets import ProtocolSocket
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
