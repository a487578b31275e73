"""The console's inbox (docs/protocol.md §7 `GET /console/api/inbox`, §4 `inbox.watch` / `inbox.changed`): who
sees which conversation, the filters, unread counts, the order by last activity with its cursor, tenant
isolation, and the events that keep it live."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections
from django.test import Client
from django.utils import timezone

from chat.models import Channel, Conversation, ConversationStatus, SenderKind
from chat.selectors import agent_actor_for
from chat.services import conversation_mark_important, conversation_mark_read, message_post
from contactcenter.models import Role
from contactcenter.realtime import tenant_inbox_group
from queueing.models import ConversationRoute
from queueing.selectors import InboxFilters, inbox_list, inbox_rows_get
from queueing.services import conversation_request
from tests.factories import (
    ConversationFactory,
    MembershipFactory,
    MessageFactory,
    QueueFactory,
    QueueMemberFactory,
    online_agent_in_routed_queue,
    session_cookie,
)
from tests.realtime.test_embedded import ORIGIN

ALL = InboxFilters()


@dataclass
class Inbox:
    """One tenant's conversations, one of each kind an agent may or may not see, newest activity first."""

    mine: Conversation  # assigned to the agent, open, SMS
    participating: Conversation  # a colleague's, the agent takes part
    colleagues: Conversation  # a colleague's alone
    unassigned_mine: Conversation  # waiting in the agent's queue
    unassigned_other_queue: Conversation  # waiting in a queue the agent does not serve
    unrouted: Conversation  # waiting, routed nowhere
    closed_mine: Conversation  # closed, assigned to the agent, email
    foreign: Conversation  # another tenant's


def _routed(conversation: Conversation, queue) -> Conversation:
    ConversationRoute.objects.create(
        tenant=conversation.tenant, conversation=conversation, queue=queue, queue_name=queue.name
    )
    return conversation


@pytest.fixture
def inbox(tenant, other_tenant, agent) -> Inbox:
    colleague = MembershipFactory(tenant=tenant, role=Role.AGENT).user
    served = QueueFactory(tenant=tenant, name="Sales")
    QueueMemberFactory(tenant=tenant, queue=served, user=agent)
    other_queue = QueueFactory(tenant=tenant, name="Billing")
    open_ = ConversationStatus.OPEN
    waiting = ConversationStatus.WAITING

    def make(**fields) -> Conversation:
        return ConversationFactory(tenant=fields.pop("tenant", tenant), **fields)

    made = Inbox(
        mine=_routed(make(status=open_, assignee=agent, channel=Channel.SMS, widget=None), served),
        participating=make(status=open_, assignee=colleague),
        colleagues=_routed(make(status=open_, assignee=colleague), served),
        unassigned_mine=_routed(make(status=waiting), served),
        unassigned_other_queue=_routed(make(status=waiting), other_queue),
        unrouted=make(status=waiting),
        closed_mine=make(status=ConversationStatus.CLOSED, assignee=agent, channel=Channel.EMAIL, widget=None),
        foreign=make(tenant=other_tenant, status=waiting),
    )
    made.participating.participants.add(agent)
    # Last activity: the order the fields are listed in is newest first.
    now = timezone.now()
    for age, conversation in enumerate(vars(made).values()):
        Conversation.objects.filter(pk=conversation.pk).update(last_message_at=now - timedelta(minutes=age))
    return made


def ids(page_or_rows) -> list[int]:
    rows = page_or_rows.conversations if hasattr(page_or_rows, "conversations") else page_or_rows
    return [row.pk for row in rows]


def test_an_agent_sees_their_own_the_ones_they_take_part_in_and_the_unassigned_of_their_queues(inbox, agent):
    page = inbox_list(actor=agent_actor_for(agent), filters=ALL)
    assert ids(page) == [
        inbox.mine.pk,
        inbox.participating.pk,
        inbox.unassigned_mine.pk,
        inbox.unrouted.pk,
        inbox.closed_mine.pk,
    ]
    assert page.next_cursor is None


@pytest.mark.parametrize("role", [Role.SUPERVISOR, Role.ADMIN])
def test_supervisors_and_admins_see_every_conversation_of_their_tenant_only(inbox, tenant, role):
    reader = MembershipFactory(tenant=tenant, role=role).user
    page = inbox_list(actor=agent_actor_for(reader), filters=ALL)
    assert ids(page) == [c.pk for name, c in vars(inbox).items() if name != "foreign"]


def test_another_tenants_conversations_never_appear(inbox, other_tenant):
    outsider = MembershipFactory(tenant=other_tenant, role=Role.ADMIN).user
    actor = agent_actor_for(outsider)
    assert ids(inbox_list(actor=actor, filters=ALL)) == [inbox.foreign.pk]
    asked = [c.pk for c in vars(inbox).values()]
    assert ids(inbox_rows_get(actor=actor, filters=ALL, conversation_ids=asked)) == [inbox.foreign.pk]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (InboxFilters(assignee="mine"), ["mine", "participating", "closed_mine"]),
        (InboxFilters(assignee="unassigned"), ["unassigned_mine", "unrouted"]),
        (InboxFilters(channel="sms"), ["mine"]),
        (InboxFilters(channel="email"), ["closed_mine"]),
        (InboxFilters(channel="whatsapp"), []),
        (InboxFilters(status="open"), ["mine", "participating"]),
        (InboxFilters(status="waiting"), ["unassigned_mine", "unrouted"]),
        (InboxFilters(status="closed"), ["closed_mine"]),
        (InboxFilters(status="active"), ["mine", "participating", "unassigned_mine", "unrouted"]),
        (InboxFilters(assignee="mine", status="closed", channel="email"), ["closed_mine"]),
    ],
)
def test_filters_narrow_what_the_agent_may_see(inbox, agent, filters, expected):
    page = inbox_list(actor=agent_actor_for(agent), filters=filters)
    assert ids(page) == [getattr(inbox, name).pk for name in expected]


def test_unread_counts_the_customers_messages_after_the_agents_read_marker(inbox, agent):
    conversation = inbox.mine
    for kind, private, body in [
        (SenderKind.VISITOR, False, "one"),
        (SenderKind.AGENT, False, "two"),
        (SenderKind.VISITOR, False, "three"),
        (SenderKind.AGENT, True, "a note"),
        (SenderKind.VISITOR, False, "five " * 100),
        (SenderKind.AGENT, True, "another note"),
    ]:
        MessageFactory(
            tenant=conversation.tenant, conversation=conversation, sender_kind=kind, is_private=private, body=body
        )
    Conversation.objects.filter(pk=conversation.pk).update(agent_read_seq=2)
    rows = {row.pk: row for row in inbox_list(actor=agent_actor_for(agent), filters=ALL).conversations}
    assert rows[conversation.pk].unread == 2  # seq 3 and 5; agents' messages and notes never count
    assert rows[conversation.pk].preview == ("five " * 100)[:140]  # the latest the customer saw, cut
    assert rows[inbox.unrouted.pk].unread == 0 and rows[inbox.unrouted.pk].preview is None


def test_the_cursor_pages_by_last_activity_without_gaps_or_repeats(inbox, agent, django_assert_num_queries):
    actor = agent_actor_for(agent)
    # Two rows with the same activity: the id breaks the tie.
    newest = Conversation.objects.get(pk=inbox.mine.pk).last_message_at
    Conversation.objects.filter(pk=inbox.participating.pk).update(last_message_at=newest)
    seen: list[int] = []
    cursor = None
    while True:
        with django_assert_num_queries(3):  # rows, the contacts' identities, the participants
            page = inbox_list(actor=actor, filters=ALL, cursor=cursor, limit=2)
        seen += ids(page)
        cursor = page.next_cursor
        if cursor is None:
            break
    expected = sorted(
        [inbox.mine, inbox.participating, inbox.unassigned_mine, inbox.unrouted, inbox.closed_mine],
        key=lambda c: (Conversation.objects.get(pk=c.pk).last_message_at, c.pk),
        reverse=True,
    )
    assert seen == [c.pk for c in expected]


def test_a_conversation_without_messages_counts_its_start_as_activity(inbox, agent):
    fresh = ConversationFactory(tenant=inbox.mine.tenant, status=ConversationStatus.OPEN, assignee=agent)
    assert ids(inbox_list(actor=agent_actor_for(agent), filters=ALL))[0] == fresh.pk


# --- the JSON endpoint --------------------------------------------------------------------------------------


def _get(user, path: str) -> tuple[int, dict]:
    client = Client()
    client.force_login(user)
    response = client.get(path)
    return response.status_code, response.json()


def test_the_endpoint_lists_rows_with_access_unread_and_the_next_cursor(inbox, agent):
    status, body = _get(agent, "/console/api/inbox?assignee=all&status=&limit=2")
    assert status == 200
    first, second = body["conversations"]
    assert [first["id"], second["id"]] == [inbox.mine.pk, inbox.participating.pk]
    assert first["channel"] == "sms" and first["status"] == "open" and first["access"] == "write"
    assert first["queue"] == {"id": inbox.mine.queue_route.queue_id, "name": "Sales"}
    assert first["assignee"]["id"] == agent.pk and first["unread"] == 0
    assert set(first["contact"]) == {"id", "name", "identities"}
    status, rest = _get(agent, f"/console/api/inbox?cursor={body['next_cursor']}&limit=2")
    assert [row["id"] for row in rest["conversations"]] == [inbox.unassigned_mine.pk, inbox.unrouted.pk]
    unassigned = rest["conversations"][0]
    assert unassigned["access"] == "history" and unassigned["assignee"] is None  # opened as the contact's history


def test_the_endpoint_refreshes_named_rows_under_the_filters(inbox, agent):
    asked = f"{inbox.mine.pk},{inbox.colleagues.pk},{inbox.unrouted.pk},{inbox.foreign.pk}"
    status, body = _get(agent, f"/console/api/inbox?ids={asked}&status=open")
    assert status == 200
    assert [row["id"] for row in body["conversations"]] == [inbox.mine.pk]
    assert body["next_cursor"] is None


def test_a_supervisor_opens_any_conversation_read_only(inbox, tenant):
    supervisor = MembershipFactory(tenant=tenant, role=Role.SUPERVISOR).user
    status, body = _get(supervisor, f"/console/api/inbox?ids={inbox.colleagues.pk}")
    assert body["conversations"][0]["access"] == "read"
    status, body = _get(supervisor, f"/console/api/conversations/{inbox.colleagues.pk}")
    assert status == 200
    assert body["conversation"]["id"] == inbox.colleagues.pk and body["conversation"]["access"] == "read"


def test_an_agent_opens_their_own_conversation_but_not_a_colleagues(inbox, agent):
    status, body = _get(agent, f"/console/api/conversations/{inbox.closed_mine.pk}")
    assert status == 200 and body["conversation"]["access"] == "write"
    assert body["conversation"]["status"] == "closed"
    for other in (inbox.colleagues, inbox.foreign):
        status, body = _get(agent, f"/console/api/conversations/{other.pk}")
        assert status == 404 and body["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "query", ["assignee=everyone", "channel=fax", "status=pending", "cursor=yesterday", "ids=1,x", "limit=many"]
)
def test_unknown_filters_are_refused_naming_the_field(inbox, agent, query):
    status, body = _get(agent, f"/console/api/inbox?{query}")
    assert status == 400 and body["error"]["code"] == "invalid"
    assert query.split("=")[0] in body["error"]["fields"]


def test_the_endpoint_needs_a_signed_in_member(db):
    response = Client().get("/console/api/inbox")
    assert response.status_code == 401 and response.json()["error"]["code"] == "not_authenticated"


# --- live: what announces a change ----------------------------------------------------------------------------


def _inbox_events(published, tenant) -> list[int]:
    return [event["conversation_id"] for group, event in published if group == tenant_inbox_group(tenant.pk)]


def test_a_message_a_state_change_and_the_agents_read_announce_the_conversation(
    tenant, visitor, assigned, agent_actor, published, django_capture_on_commit_callbacks
):
    conversation = assigned
    with django_capture_on_commit_callbacks(execute=True):
        message = message_post(actor=visitor, conversation_id=conversation.pk, body="Hello", client_id="c1").message
    with django_capture_on_commit_callbacks(execute=True):
        conversation_mark_important(actor=agent_actor, conversation_id=conversation.pk, important=True)
    with django_capture_on_commit_callbacks(execute=True):
        conversation_mark_read(actor=agent_actor, conversation_id=conversation.pk, seq=message.seq)
    assert _inbox_events(published, tenant) == [conversation.pk] * 3
    assert {event["type"] for group, event in published if group == tenant_inbox_group(tenant.pk)} == {"inbox.changed"}


def test_the_visitors_read_marker_changes_nothing_in_the_inbox(
    tenant, visitor, assigned, agent_actor, published, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        message_post(actor=agent_actor, conversation_id=assigned.pk, body="Hi", client_id="a1")
    published.clear()
    with django_capture_on_commit_callbacks(execute=True):
        conversation_mark_read(actor=visitor, conversation_id=assigned.pk, seq=assigned.last_seq + 5)
    assert _inbox_events(published, tenant) == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.smoke
async def test_the_socket_forwards_changes_only_while_its_inbox_is_watched(settings):
    from contactcenter.asgi import application

    settings.SWEEP_IN_PROCESS = False
    widget, agent = await database_sync_to_async(online_agent_in_routed_queue)()
    cookie = (await database_sync_to_async(session_cookie)(agent)).encode()
    socket = WebsocketCommunicator(application, "/ws/agent/", headers=[ORIGIN, (b"cookie", cookie)])
    assert (await socket.connect())[0]

    async def frames_until_pong(request_id: str) -> list[dict]:
        await socket.send_json_to({"type": "ping", "request_id": request_id})
        frames = []
        while not frames or frames[-1].get("request_id") != request_id:
            frames.append(json.loads(await socket.receive_from(timeout=10)))
        return frames

    def start(visitor_id: str) -> int:
        request = conversation_request(widget=widget, visitor_id=visitor_id, answers={"name": "Jane"}, message="Hi")
        return request.conversation.pk

    try:
        await database_sync_to_async(start)("before")
        assert not [f for f in await frames_until_pong("p1") if f["type"] == "inbox.changed"]

        await socket.send_json_to({"type": "inbox.watch", "watch": True, "request_id": "w1"})
        assert [f["type"] for f in await frames_until_ok(socket, "w1")][-1] == "ok"
        started = await database_sync_to_async(start)("during")
        changed = []
        while not changed:
            frame = json.loads(await socket.receive_from(timeout=10))
            if frame["type"] == "inbox.changed":
                changed.append(frame)
        assert changed == [{"type": "inbox.changed", "conversation_id": started}]

        await socket.send_json_to({"type": "inbox.watch", "watch": False, "request_id": "w2"})
        await frames_until_ok(socket, "w2")
        await database_sync_to_async(start)("after")
        assert not [f for f in await frames_until_pong("p2") if f["type"] == "inbox.changed"]
    finally:
        await socket.disconnect()
        await sync_to_async(connections.close_all)()


async def frames_until_ok(socket: WebsocketCommunicator, request_id: str) -> list[dict]:
    frames = []
    while not frames or frames[-1].get("request_id") != request_id:
        frames.append(json.loads(await socket.receive_from(timeout=10)))
    return frames
