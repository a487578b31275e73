"""Frames are typed at the edge: a field of the wrong type is `bad_frame` naming it (docs/protocol.md §8)
before any service runs, on both sockets, and nothing is stored or changed (in-process sockets)."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections

from chat.models import Conversation, Message
from tests.realtime.test_embedded import build, next_of, open_both

pytestmark = [pytest.mark.smoke, pytest.mark.django_db(transaction=True)]


async def answer(socket: WebsocketCommunicator, frame: dict) -> dict:
    await socket.send_to(text_data=json.dumps({**frame, "request_id": "r"}))
    while True:
        reply = json.loads(await socket.receive_from(timeout=10))
        if reply.get("request_id") == "r":
            return reply


def state(conversation_id: int) -> tuple:
    conversation = Conversation.objects.get(pk=conversation_id)
    return (
        Message.objects.filter(conversation=conversation).count(),
        conversation.important,
        conversation.disposition_id,
        conversation.visitor_read_seq,
        conversation.status,
    )


async def test_wrong_types_are_refused_at_the_edge_of_both_sockets_and_change_nothing(settings):
    settings.SWEEP_IN_PROCESS = False
    data = await database_sync_to_async(build)()
    conversation_id = data["conversation"]
    visitor, agent = await open_both(data)
    await next_of(visitor, "hello")
    await next_of(agent, "hello")
    before = await database_sync_to_async(state)(conversation_id)

    cid = conversation_id
    cases = [
        (visitor, {"type": "message.send", "client_id": "v1", "body": 12}, "body"),
        (visitor, {"type": "message.send", "client_id": "v2", "body": "hi", "attachment_ids": "7"}, "attachment_ids"),
        (visitor, {"type": "read", "seq": "1"}, "seq"),
        (agent, {"type": "message.send", "conversation_id": cid, "client_id": "a1", "body": ["x"]}, "body"),
        (
            agent,
            {"type": "message.send", "conversation_id": cid, "client_id": "a2", "template": {"id": "3"}},
            "template",
        ),
        (
            agent,
            {
                "type": "message.send",
                "conversation_id": cid,
                "client_id": "a3",
                "template": {"id": 3, "variables": {"1": 5}},
            },
            "template.variables",
        ),
        (
            agent,
            {"type": "conversation.important", "conversation_id": cid, "important": "yes"},
            "important",
        ),
        (agent, {"type": "conversation.important", "conversation_id": cid}, "important"),
        (
            agent,
            {"type": "conversation.disposition", "conversation_id": cid, "disposition_id": "3"},
            "disposition_id",
        ),
        (
            agent,
            {"type": "conversation.close", "conversation_id": cid, "disposition_id": True},
            "disposition_id",
        ),
    ]
    for socket, frame, field in cases:
        reply = await answer(socket, frame)
        assert (reply["type"], reply["code"], list(reply["fields"])) == ("error", "bad_frame", [field]), frame
        if frame["type"] == "message.send":
            assert reply["client_id"] == frame["client_id"]  # not stored: the client knows which send failed

    # A client_id that is not text is the documented client_id_required, as a missing one is.
    reply = await answer(visitor, {"type": "message.send", "client_id": 5, "body": "hi"})
    assert reply["code"] == "client_id_required"
    after = await database_sync_to_async(state)(conversation_id)
    await visitor.disconnect()
    await agent.disconnect()
    await sync_to_async(connections.close_all)()
    assert after == before
