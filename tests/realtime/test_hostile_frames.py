"""Hostile and odd client frames against a real daphne on PostgreSQL + Redis (docs/protocol.md §1, §2, §8).

Deep nesting and text PostgreSQL cannot store are refused with an error frame and the socket lives on; a
second `resume` sends nothing twice; a flood of typing toggles reaches the other side as a few frames that
end on the true last state.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest

from agents.models import AgentProfile
from chat.conversation_stream import TYPING_CHANGE_INTERVAL
from chat.models import Message
from chat.services import message_post
from tests.realtime.test_protocol import (
    Inbox,
    in_thread,
    make_setup,
    open_conversation,
    open_socket,
    session_cookie,
    visitor_token,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

WAIT = 30.0  # only to keep a broken server from hanging the run


def open_sockets_of(user: Any) -> int:
    return AgentProfile.objects.get(user=user).open_sockets


def wait_for_open_sockets(user: Any, expected: int) -> int:
    """The count once it settles on `expected` (the close is handled a moment after the client's close)."""
    deadline = time.monotonic() + WAIT
    while (count := open_sockets_of(user)) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return count


def test_deeply_nested_json_answers_bad_json_and_the_agent_socket_lives_and_closes_cleanly(daphne_server):
    setup = make_setup()
    agent = setup.agents[0]
    cookie = session_cookie(agent)

    async def scenario() -> dict[str, Any]:
        inbox = Inbox(await open_socket(daphne_server, "/ws/agent/", cookie=cookie))
        await inbox.expect(type="hello")
        opened = await in_thread(lambda: open_sockets_of(agent))
        await inbox.ws.send("[" * 60_000)  # under the 64 KiB frame limit, far past the parser's stack
        bare = await inbox.expect(type="error")
        await inbox.ws.send('{"type": "ping", "request_id": "deep", "x": ' + "[" * 30_000 + "]" * 30_000 + "}")
        inside = await inbox.expect(type="error")
        await inbox.ws.send(json.dumps({"type": "ping", "request_id": "alive"}))
        pong = await inbox.expect(type="pong")
        await inbox.close()
        return {"opened": opened, "bare": bare, "inside": inside, "pong": pong}

    result = asyncio.run(scenario())
    assert result["opened"] == 1
    assert result["bare"]["code"] == "bad_json" and "request_id" not in result["bare"]
    assert result["inside"]["code"] == "bad_json"
    assert result["pong"]["request_id"] == "alive"  # the same socket answers on
    assert wait_for_open_sockets(agent, 0) == 0  # the close ran the agent's clean-up: presence is right


@pytest.mark.parametrize(
    "bad",
    ["nul \u0000 byte", "lone \ud800 surrogate", "\udfff"],
    ids=["nul", "lone-high-surrogate", "lone-low-surrogate"],
)
def test_text_that_cannot_be_stored_is_refused_as_invalid_text_on_both_sockets(daphne_server, bad):
    setup = make_setup()
    conversation = open_conversation(setup)
    cookie = session_cookie(setup.agents[0])
    token = visitor_token(setup.widget, conversation.visitor_id)
    raw = json.dumps(bad)  # ASCII with \\u escapes: the way such text arrives

    def frame(**fields: Any) -> str:
        parts = [f'"{key}": {value}' for key, value in fields.items()]
        return "{" + ", ".join(parts) + "}"

    async def scenario() -> list[dict[str, Any]]:
        visitor = Inbox(await open_socket(daphne_server, f"/ws/visitor/conversations/{conversation.pk}/?token={token}"))
        agent = Inbox(await open_socket(daphne_server, "/ws/agent/", cookie=cookie))
        await visitor.expect(type="hello")
        await agent.expect(type="hello")
        await agent.ws.send(json.dumps({"type": "resume", "conversation_id": conversation.pk, "last_seq": 0}))
        await agent.expect(type="resume.done")
        ids = {key: json.dumps(str(uuid.uuid4())) for key in ("v1", "v2", "a1", "r1")}
        answers = []
        await visitor.ws.send(frame(type='"message.send"', client_id=ids["v1"], body=raw))
        answers.append(await visitor.expect(type="error"))
        await visitor.ws.send(frame(type='"message.send"', client_id=raw, body='"hello"', request_id=ids["r1"]))
        answers.append(await visitor.expect(type="error"))
        await agent.ws.send(
            frame(type='"message.send"', conversation_id=conversation.pk, client_id=ids["a1"], body=raw)
        )
        answers.append(await agent.expect(type="error"))
        await agent.ws.send(frame(type='"ping"', request_id=ids["r1"], note=raw))  # any string of any frame
        answers.append(await agent.expect(type="error"))
        for inbox in (visitor, agent):
            await inbox.ws.send(json.dumps({"type": "ping", "request_id": "alive"}))
            answers.append(await inbox.expect(type="pong"))
            await inbox.close()
        return [*answers, ids]

    body, client_id, agent_body, any_field, *pongs, ids = asyncio.run(scenario())
    assert body["code"] == "invalid_text" and list(body["fields"]) == ["body"]
    assert body["client_id"] == json.loads(ids["v1"])  # this message was not stored: resending cannot help
    assert client_id["code"] == "invalid_text" and list(client_id["fields"]) == ["client_id"]
    assert "client_id" not in client_id  # never echo text that cannot be encoded
    assert agent_body["code"] == "invalid_text" and list(agent_body["fields"]) == ["body"]
    assert any_field["code"] == "invalid_text" and list(any_field["fields"]) == ["note"]
    assert [pong["request_id"] for pong in pongs] == ["alive", "alive"]
    assert Message.objects.filter(conversation=conversation).count() == 1  # only the agent-joined notice


def test_a_second_resume_sends_only_what_the_socket_does_not_have(daphne_server):
    setup = make_setup()
    conversation = open_conversation(setup)  # seq 1: the agent joined
    token = visitor_token(setup.widget, conversation.visitor_id)

    def post(body: str) -> None:
        from chat.selectors import agent_actor_for

        message_post(actor=agent_actor_for(setup.agents[0]), conversation_id=conversation.pk, body=body, client_id=body)

    post("two")
    post("three")

    async def scenario() -> dict[str, Any]:
        visitor = Inbox(await open_socket(daphne_server, f"/ws/visitor/conversations/{conversation.pk}/?token={token}"))
        await visitor.expect(type="hello")
        resume = {"type": "resume", "conversation_id": conversation.pk}
        await visitor.ws.send(json.dumps({**resume, "last_seq": 0, "request_id": "first"}))
        first = await visitor.expect(type="resume.done", request_id="first")
        after_first = len(visitor.frames)
        await visitor.ws.send(json.dumps({**resume, "last_seq": 0, "request_id": "again"}))
        again = await visitor.expect(type="resume.done", request_id="again")
        await in_thread(lambda: post("four"))
        await visitor.ws.send(json.dumps({**resume, "last_seq": 1, "request_id": "third"}))
        third = await visitor.expect(type="resume.done", request_id="third")
        await visitor.ws.send(json.dumps({"type": "ping", "request_id": "sync"}))
        await visitor.expect(type="pong", request_id="sync")
        await visitor.close()
        return {"frames": visitor.frames, "after_first": after_first, "done": [first, again, third]}

    result = asyncio.run(scenario())
    seqs = [frame["message"]["seq"] for frame in result["frames"] if frame["type"] == "message.new"]
    assert seqs == [1, 2, 3, 4]  # each once, on one socket, however often it resumes (§2.6)
    first = result["frames"][: result["after_first"]]
    assert [frame["message"]["seq"] for frame in first if frame["type"] == "message.new"] == [1, 2, 3]
    assert [done["last_seq"] for done in result["done"]] == [3, 3, 4]


def test_a_flood_of_typing_toggles_reaches_the_other_side_as_a_few_frames_ending_on_the_last_state(daphne_server):
    setup = make_setup()
    conversation = open_conversation(setup)
    cookie = session_cookie(setup.agents[0])
    token = visitor_token(setup.widget, conversation.visitor_id)
    toggles = 2_000

    async def flood(sender: Inbox, viewer: Inbox, extra: dict[str, Any]) -> tuple[int, float, list[bool]]:
        started, seen_before = time.monotonic(), len(viewer.frames)

        def typing_states() -> list[bool]:
            return [f["is_typing"] for f in viewer.frames[seen_before:] if f["type"] == "typing"]

        for index in range(toggles):  # true, false, true … false
            await sender.ws.send(json.dumps({"type": "typing", "is_typing": index % 2 == 0, **extra}))
        await sender.ws.send(json.dumps({"type": "ping", "request_id": "flooded"}))
        await sender.expect(type="pong", request_id="flooded")
        # The held last state ("stopped") follows within TYPING_CHANGE_INTERVAL; wait until it has come.
        while not (states := typing_states()) or states[-1]:
            viewer.arrived.clear()
            await asyncio.wait_for(viewer.arrived.wait(), WAIT)
        await asyncio.sleep(2 * TYPING_CHANGE_INTERVAL)  # anything still held would arrive now
        elapsed = time.monotonic() - started
        states = typing_states()
        return len(states), elapsed, states

    async def scenario() -> dict[str, Any]:
        visitor = Inbox(await open_socket(daphne_server, f"/ws/visitor/conversations/{conversation.pk}/?token={token}"))
        agent = Inbox(await open_socket(daphne_server, "/ws/agent/", cookie=cookie))
        await visitor.expect(type="hello")
        await agent.expect(type="hello")
        resume = {"type": "resume", "conversation_id": conversation.pk, "last_seq": 0}
        for inbox in (visitor, agent):
            await inbox.ws.send(json.dumps({**resume, "request_id": "r"}))
            await inbox.expect(type="resume.done")
        to_agent = await flood(visitor, agent, {})
        to_visitor = await flood(agent, visitor, {"conversation_id": conversation.pk})
        await visitor.close()
        await agent.close()
        return {"to agent": to_agent, "to visitor": to_visitor}

    for direction, (count, elapsed, states) in asyncio.run(scenario()).items():
        # At most one change per interval of the flood's own duration, plus the first and the held last one.
        assert count <= elapsed / TYPING_CHANGE_INTERVAL + 2, (direction, count, elapsed)
        assert count < toggles / 10, (direction, count)
        assert states[0] is True and states[-1] is False, (direction, states)
