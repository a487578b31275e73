"""A teammate removed, deactivated or given another role loses what an already open agent socket let them do."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from chat.models import Conversation, ConversationStatus, Message
from chat.services.starting import conversation_start
from contactcenter.models import Membership, Role
from contactcenter.services import membership_remove, membership_update
from queueing.services import conversation_request
from tests.factories import MembershipFactory
from tests.realtime.test_protocol import (
    WAIT,
    Inbox,
    in_thread,
    make_setup,
    open_conversation,
    open_socket,
    session_cookie,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


async def closed(inbox: Inbox) -> int | None:
    """Waits until the server closes the socket; its close code."""
    await asyncio.wait_for(asyncio.shield(inbox.task), WAIT)
    return inbox.ws.close_code


async def refused(inbox: Inbox, frame: dict[str, Any]) -> bool:
    try:
        await inbox.ws.send(json.dumps(frame))
    except ConnectionClosed:
        return True
    return False


async def handshake(server: Any, cookie: str) -> tuple[list[dict[str, Any]], int | None]:
    ws = await open_socket(server, "/ws/agent/", cookie=cookie)
    frames = []
    try:
        frames.append(json.loads(await asyncio.wait_for(ws.recv(), WAIT)))
    finally:
        await ws.close()
    return frames, ws.close_code


def test_a_removed_teammate_s_open_socket_is_closed_and_can_store_nothing(daphne_server):
    setup = make_setup()
    MembershipFactory(tenant=setup.tenant, role=Role.ADMIN)
    agent = setup.agents[0]
    mine = open_conversation(setup)
    cookie = session_cookie(agent)

    async def scenario() -> dict[str, Any]:
        inbox = Inbox(await open_socket(daphne_server, "/ws/agent/", cookie=cookie))
        await inbox.expect(type="hello")
        await inbox.ws.send(json.dumps({"type": "resume", "conversation_id": mine.pk, "last_seq": 0}))
        await inbox.expect(type="resume.done")
        waiting = await in_thread(
            lambda: conversation_request(widget=setup.widget, visitor_id="new", answers={"name": "New"}).conversation
        )
        await inbox.expect(type="offer.new")
        await in_thread(lambda: membership_remove(membership=Membership.objects.get(user=agent)))
        error = await inbox.expect(type="error")
        code = await closed(inbox)
        message = {"type": "message.send", "conversation_id": mine.pk, "client_id": "after", "body": "still here"}
        accept = {"type": "conversation.accept", "conversation_id": waiting.pk}
        return {
            "error": error,
            "code": code,
            "send refused": await refused(inbox, message),
            "accept refused": await refused(inbox, accept),
            "reconnect": await handshake(daphne_server, cookie),
            "waiting": waiting.pk,
        }

    result = asyncio.run(scenario())
    assert result["error"]["code"] == "forbidden"
    assert result["code"] == 4403
    assert result["send refused"] and result["accept refused"]
    assert not Message.objects.filter(conversation=mine, client_id="after").exists()
    assert Conversation.objects.get(pk=result["waiting"]).status == ConversationStatus.WAITING
    frames, code = result["reconnect"]
    assert code == 4401 and frames[0]["code"] == "not_authenticated"  # the session went with the account


def test_a_demoted_supervisor_s_socket_closes_and_reconnects_as_an_agent(daphne_server):
    setup = make_setup()
    supervisor = MembershipFactory(tenant=setup.tenant, role=Role.SUPERVISOR).user
    theirs = open_conversation(setup)  # an agent's: the supervisor reads it without taking part
    cookie = session_cookie(supervisor)

    async def scenario() -> dict[str, Any]:
        inbox = Inbox(await open_socket(daphne_server, "/ws/agent/", cookie=cookie))
        hello = await inbox.expect(type="hello")
        await inbox.ws.send(json.dumps({"type": "resume", "conversation_id": theirs.pk, "last_seq": 0}))
        await inbox.expect(type="resume.done")
        await in_thread(lambda: membership_update(membership=Membership.objects.get(user=supervisor), role=Role.AGENT))
        error = await inbox.expect(type="error")
        code = await closed(inbox)
        again = Inbox(await open_socket(daphne_server, "/ws/agent/", cookie=cookie))
        new_hello = await again.expect(type="hello")
        await again.ws.send(json.dumps({"type": "resume", "conversation_id": theirs.pk, "last_seq": 0}))
        resume = await again.expect(type="error")
        await again.close()
        return {"role": hello["me"]["role"], "error": error, "code": code, "new": new_hello, "resume": resume}

    result = asyncio.run(scenario())
    assert result["role"] == Role.SUPERVISOR
    assert result["error"]["code"] == "access_changed"
    assert result["code"] == 4000  # outside 44xx: the console reconnects at once
    assert result["new"]["me"]["role"] == Role.AGENT
    assert result["resume"]["code"] == "not_found"  # a conversation the agent takes no part in


def test_a_name_change_leaves_the_socket_alone_and_a_deactivation_past_the_services_ends_it_at_the_next_ping(
    daphne_server,
):
    setup = make_setup()
    agent = setup.agents[0]
    cookie = session_cookie(agent)
    conversation = conversation_start(widget=setup.widget, visitor_id="v", answers={"name": "V"}).conversation

    async def scenario() -> dict[str, Any]:
        inbox = Inbox(await open_socket(daphne_server, "/ws/agent/", cookie=cookie))
        await inbox.expect(type="hello")
        await in_thread(lambda: membership_update(membership=Membership.objects.get(user=agent), first_name="Renamed"))
        await inbox.ws.send(json.dumps({"type": "ping", "request_id": "p1"}))
        pong = await inbox.expect(request_id="p1")
        # As Django's admin does it: no service, no event. The heartbeat re-reads the account.
        await in_thread(lambda: type(agent).objects.filter(pk=agent.pk).update(is_active=False))
        await inbox.ws.send(json.dumps({"type": "ping", "request_id": "p2"}))
        error = await inbox.expect(type="error")
        code = await closed(inbox)
        accept = {"type": "conversation.accept", "conversation_id": conversation.pk}
        return {"pong": pong, "error": error, "code": code, "accept refused": await refused(inbox, accept)}

    result = asyncio.run(scenario())
    assert result["pong"]["type"] == "pong"
    assert result["error"]["code"] == "forbidden" and result["code"] == 4403
    assert result["accept refused"]
    assert Conversation.objects.get(pk=conversation.pk).assignee_id is None
