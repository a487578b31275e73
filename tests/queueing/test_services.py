"""Routing on the test database: requests, offers, accept and reject, the waiting list, the console hello,
ending a chat (offers withdrawn), and the sweep that takes agents whose sockets died offline."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db import connections
from django.utils import timezone

from agents.models import AgentProfile, Presence
from agents.services.presence import agent_socket_opened
from chat.models import ConversationStatus, Message
from chat.selectors import agent_actor_for
from chat.services import conversation_set_disposition
from chat.services.starting import conversation_start
from contactcenter.errors import ApplicationError
from contactcenter.models import user_display_name
from contactcenter.realtime import agent_group, tenant_agents_group
from queueing.models import Offer, OfferStatus
from queueing.selectors import waiting_list
from queueing.services import (
    OfflineSweep,
    agent_presence_change,
    agents_offline_sweep,
    conversation_accept,
    conversation_end,
    conversation_request,
    offer_reject,
)
from tests.factories import (
    DispositionFactory,
    MembershipFactory,
    QueueMemberFactory,
    online_agent_in_routed_queue,
)

pytestmark = pytest.mark.django_db


# --- routing: request, offers, accept, reject ---------------------------------------------------------------


def test_a_retried_request_is_not_routed_again(widget, queue, online, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        first = conversation_request(widget=widget, visitor_id=None, answers={"name": "A"}, client_id="start-1")
    assert first.created is True and len(callbacks) == 3  # waiting.added, the offer and the visitor's place
    with django_capture_on_commit_callbacks() as callbacks:
        again = conversation_request(widget=widget, visitor_id=None, answers={"name": "A"}, client_id="start-1")
    assert (again.created, again.offline, again.conversation.pk) == (False, False, first.conversation.pk)
    assert callbacks == []
    assert Offer.objects.count() == 1


def test_a_request_is_offered_to_online_members_and_goes_offline_when_none_is(widget, queue, agent):
    offline = conversation_request(widget=widget, visitor_id="v1", answers={"name": "A"}, message="anyone?")
    assert offline.offline is True
    assert offline.conversation.started_offline is True
    assert not Offer.objects.exists()
    with pytest.raises(ApplicationError) as error:
        conversation_request(widget=widget, visitor_id="v2", answers={"name": "B"})
    assert error.value.code == "offline_message_required"

    AgentProfile.objects.filter(user=agent).update(presence=Presence.ONLINE)
    online = conversation_request(widget=widget, visitor_id="v3", answers={"name": "C"})
    assert online.offline is False
    assert list(Offer.objects.filter(conversation=online.conversation).values_list("agent_id", flat=True)) == [agent.pk]


def test_going_online_offers_the_waiting_conversations_of_ones_queues(widget, queue, agent, agent_actor):
    waiting = conversation_request(widget=widget, visitor_id="v1", answers={"name": "A"}, message="hello").conversation
    agent_presence_change(actor=agent_actor, presence="online")
    assert Offer.objects.get(agent=agent).conversation == waiting
    agent_presence_change(actor=agent_actor, presence="away")
    assert Offer.objects.get(agent=agent).status == OfferStatus.WITHDRAWN


def test_the_first_accept_wins_and_withdraws_the_pending_offer(
    tenant, widget, queue, online, agent_actor, published, django_capture_on_commit_callbacks
):
    colleague = QueueMemberFactory(tenant=tenant, queue=queue).user
    AgentProfile.objects.filter(user=colleague).update(presence=Presence.ONLINE, idle_since=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        conversation = conversation_request(widget=widget, visitor_id="v1", answers={"name": "A"}).conversation
    # One agent at a time: the one idle the longest (the colleague only just came online).
    assert list(Offer.objects.filter(conversation=conversation).values_list("agent_id", flat=True)) == [online.pk]

    # The colleague picks it up from the waiting list first: theirs; the offer is withdrawn.
    with django_capture_on_commit_callbacks(execute=True):
        conversation_accept(actor=agent_for(colleague), conversation_id=conversation.pk)
    with pytest.raises(ApplicationError) as error:
        conversation_accept(actor=agent_actor, conversation_id=conversation.pk)
    assert error.value.code == "already_taken"

    conversation.refresh_from_db()
    assert (conversation.status, conversation.assignee_id) == (ConversationStatus.OPEN, colleague.pk)
    assert Offer.objects.get(conversation=conversation).status == OfferStatus.WITHDRAWN
    withdrawn = {group: event["reason"] for group, event in published if event["type"] == "offer.withdrawn"}
    assert withdrawn == {f"t{tenant.pk}.agent.{online.pk}": "taken"}
    joined = Message.objects.get(conversation=conversation, event="agent.joined")
    assert joined.event_data == {"agent_name": colleague.first_name}


def agent_for(user):
    return agent_actor_for(user)


def test_the_console_hello_costs_the_same_statements_for_one_open_chat_as_for_three(
    tenant, widget, queue, online, agent_actor
):
    """No query per conversation in the agent's hello (it runs for every console socket that connects)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from agents.console_state import console_open
    from queueing.services import conversation_accept

    AgentProfile.objects.filter(user=agent_actor.user).update(max_chats=5)

    def start_and_accept(visitor_id):
        conversation = conversation_start(
            widget=widget, visitor_id=visitor_id, answers={"name": visitor_id}
        ).conversation
        conversation_accept(actor=agent_actor, conversation_id=conversation.pk)

    def hello_statements():
        with CaptureQueriesContext(connection) as queries:
            hello = console_open(actor=agent_actor).hello
        return len(queries), len(hello["conversations"])

    start_and_accept("v-1")
    one = hello_statements()
    start_and_accept("v-2")
    start_and_accept("v-3")
    three = hello_statements()
    assert (one[1], three[1]) == (1, 3)
    assert three[0] == one[0]


def test_the_console_hello_reads_waiting_chats_and_offers_with_their_first_words_in_fixed_statements(
    tenant, widget, queue, online, agent_actor
):
    """An agent who connects while chats wait gets each one's first visitor words and contact on its offer card
    and waiting item, in as many statements for three waiting chats as for one (no query per chat)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from agents.console_state import console_open
    from contactcenter.models import ContactIdentity

    def request(visitor_id, words):
        conversation = conversation_request(
            widget=widget, visitor_id=visitor_id, answers={"name": visitor_id}, message=words
        ).conversation
        ContactIdentity.objects.create(
            tenant=tenant, contact=conversation.contact, kind="email", value=f"{visitor_id}@example.com"
        )
        return conversation

    def hello():
        with CaptureQueriesContext(connection) as queries:
            frame = console_open(actor=agent_actor).hello
        return len(queries), frame

    AgentProfile.objects.filter(user=online).update(max_chats=5)  # room left after three offers: the same reads
    request("v-1", "first words of one")
    one, frame = hello()
    request("v-2", "")  # has not written yet
    request("v-3", "x" * 250)
    three, frame = hello()
    assert three == one
    assert [item["preview"] for item in frame["waiting"]] == ["first words of one", "", "x" * 200]
    assert [offer["preview"] for offer in frame["offers"]] == ["first words of one", "", "x" * 200]
    assert [offer["contact"]["identities"] for offer in frame["offers"]] == [
        [
            {"kind": "web", "value": f"v-{n}", "verified": True},
            {"kind": "email", "value": f"v-{n}@example.com", "verified": False},
        ]
        for n in (1, 2, 3)
    ]


def test_a_console_that_opens_offers_what_waits_for_its_agent_and_skips_the_offer_pass_when_nothing_waits(
    tenant, widget, queue, online, agent_actor
):
    """Opening a console offers the agent what waits in their queues and was never offered to them; when
    their waiting list is empty there is nothing to offer, and the offer pass (its locked pick) is not run."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from agents.console_state import console_open

    AgentProfile.objects.filter(user=online).update(max_chats=5)
    with CaptureQueriesContext(connection) as idle:
        hello = console_open(actor=agent_actor).hello
    assert (hello["offers"], hello["waiting"]) == ([], [])
    assert not [query for query in idle.captured_queries if "SKIP LOCKED" in query["sql"]]

    AgentProfile.objects.filter(user=online).update(max_chats=0)  # busy: the chat waits in line, offered to no one
    waiting = conversation_request(widget=widget, visitor_id="v-1", answers={"name": "Vera"}).conversation
    AgentProfile.objects.filter(user=online).update(max_chats=5)  # room again, with no routing pass since
    assert not Offer.objects.filter(conversation=waiting).exists()
    with CaptureQueriesContext(connection) as busy:
        hello = console_open(actor=agent_actor).hello
    assert [offer["conversation_id"] for offer in hello["offers"]] == [waiting.pk]
    assert [item["conversation_id"] for item in hello["waiting"]] == [waiting.pk]
    assert [query for query in busy.captured_queries if "SKIP LOCKED" in query["sql"]]
    assert len(idle.captured_queries) < len(busy.captured_queries)


def test_accept_respects_max_chats(tenant, widget, queue, online, agent_actor):
    AgentProfile.objects.filter(user=online).update(max_chats=1)
    first = conversation_request(widget=widget, visitor_id="v1", answers={"name": "A"}).conversation
    second = conversation_request(widget=widget, visitor_id="v2", answers={"name": "B"}).conversation
    conversation_accept(actor=agent_actor, conversation_id=first.pk)
    with pytest.raises(ApplicationError) as error:
        conversation_accept(actor=agent_actor, conversation_id=second.pk)
    assert error.value.code == "at_capacity"


def test_only_queue_members_pick_up_without_an_offer(tenant, widget, queue, conversation):
    outsider = agent_actor_for(MembershipFactory(tenant=tenant).user)
    with pytest.raises(ApplicationError) as error:
        conversation_accept(actor=outsider, conversation_id=conversation.pk)
    assert error.value.code == "not_in_queue"
    assert waiting_list(actor=outsider) == []


def test_waiting_list_and_reject(widget, queue, online, agent_actor):
    conversation = conversation_request(
        widget=widget, visitor_id="v1", answers={"name": "Ann"}, message="hi"
    ).conversation
    items = waiting_list(actor=agent_actor)
    assert [(i["conversation_id"], i["contact_name"], i["preview"]) for i in items] == [(conversation.pk, "Ann", "hi")]
    offer_reject(actor=agent_actor, conversation_id=conversation.pk)
    assert Offer.objects.get(conversation=conversation).status == OfferStatus.REJECTED
    # Rejecting keeps it waiting, and pickable from the list.
    assert conversation_accept(actor=agent_actor, conversation_id=conversation.pk).status == ConversationStatus.OPEN


# --- close and disposition ---------------------------------------------------------------------------------


def test_an_agent_must_pick_a_disposition_before_closing(assigned, agent_actor, disposition, other_tenant):
    with pytest.raises(ApplicationError) as error:
        conversation_end(actor=agent_actor, conversation_id=assigned.pk)
    assert error.value.code == "disposition_required"
    foreign = DispositionFactory(tenant=other_tenant)
    inactive = DispositionFactory(tenant=assigned.tenant, is_active=False)
    # Another tenant's, an inactive one, one that does not exist (types are checked at the edge, by the frame).
    for bad in (foreign.pk, inactive.pk, max(foreign.pk, inactive.pk) + 1000):
        with pytest.raises(ApplicationError) as error:
            conversation_set_disposition(actor=agent_actor, conversation_id=assigned.pk, disposition_id=bad)
        assert error.value.code == "invalid_disposition"

    conversation_set_disposition(actor=agent_actor, conversation_id=assigned.pk, disposition_id=disposition.pk)
    result = conversation_end(actor=agent_actor, conversation_id=assigned.pk)
    assert result.closed_now
    assigned.refresh_from_db()
    assert assigned.status == ConversationStatus.CLOSED and assigned.disposition == disposition
    notice = Message.objects.filter(conversation=assigned).order_by("-seq").first()
    assert (notice.sender_kind, notice.event, notice.event_data["by"]) == ("system", "conversation.closed", "agent")
    # Closing twice changes nothing and stores no second notice.
    assert conversation_end(actor=agent_actor, conversation_id=assigned.pk).closed_now is False
    assert Message.objects.filter(conversation=assigned, event="conversation.closed").count() == 1


def test_the_visitor_ends_the_chat_without_a_disposition_and_offers_are_withdrawn(widget, queue, online, visitor):
    conversation = conversation_request(
        widget=widget, visitor_id=visitor.visitor_id, answers={"name": "A"}
    ).conversation
    conversation_end(actor=visitor, conversation_id=conversation.pk)
    conversation.refresh_from_db()
    assert conversation.status == ConversationStatus.CLOSED
    assert Message.objects.get(conversation=conversation, event="conversation.closed").event_data == {"by": "visitor"}
    assert Offer.objects.get(conversation=conversation).status == OfferStatus.WITHDRAWN


# --- presence ---------------------------------------------------------------------------------------------


def gone_since_long(user):
    """The server process holding the agent's only socket died: counted open, silent for an hour."""
    long_ago = timezone.now() - timedelta(hours=1)
    AgentProfile.objects.filter(user=user).update(open_sockets=1, last_heartbeat_at=long_ago)


def test_the_sweep_takes_agents_whose_sockets_died_offline_and_withdraws_their_offers(
    tenant, widget, queue, online, settings, django_capture_on_commit_callbacks
):
    settings.PRESENCE_GRACE_SECONDS = 0
    still_here = QueueMemberFactory(tenant=tenant, queue=queue).user
    AgentProfile.objects.filter(user=still_here).update(presence=Presence.ONLINE)
    agent_socket_opened(user=still_here)
    conversation = conversation_request(widget=widget, visitor_id="v1", answers={"name": "A"}).conversation
    offer = Offer.objects.get(conversation=conversation, agent=online)
    gone_since_long(online)

    with django_capture_on_commit_callbacks() as callbacks:
        result = agents_offline_sweep()
    assert result == OfflineSweep(sockets_cleared=1, user_ids=[online.pk], offers_withdrawn=1)
    # agent.presence to the colleagues, offer.withdrawn to the agent and offer.new to the next one, and the
    # check whether the agent was the last of their queue, all waiting for the commit.
    assert len(callbacks) == 4
    assert AgentProfile.objects.get(user=online).presence == Presence.OFFLINE
    assert AgentProfile.objects.get(user=still_here).presence == Presence.ONLINE
    offer.refresh_from_db()
    assert offer.status == OfferStatus.WITHDRAWN
    # The conversation went to the agent still here at once; a second pass finds nothing to do.
    assert Offer.objects.get(conversation=conversation, agent=still_here).status == OfferStatus.PENDING
    assert agents_offline_sweep() == OfflineSweep(sockets_cleared=0, user_ids=[], offers_withdrawn=0)


def _an_online_agent_with_an_offer_whose_server_died() -> dict:
    widget, agent = online_agent_in_routed_queue()
    conversation = conversation_request(widget=widget, visitor_id="v1", answers={"name": "A"}).conversation
    gone_since_long(agent)
    return {
        "tenant": widget.tenant_id,
        "agent": agent.pk,
        "name": user_display_name(agent),
        "conversation": conversation.pk,
        "offer": Offer.objects.get(agent=agent).pk,
    }


@pytest.mark.django_db(transaction=True)
async def test_colleagues_hear_that_the_sweep_took_an_agent_offline_as_after_a_manual_change(settings):
    """Read from the real channel layer, after a real commit: the events of a manual `presence.set offline`."""
    settings.PRESENCE_GRACE_SECONDS = 0
    setup = await database_sync_to_async(_an_online_agent_with_an_offer_whose_server_died)()
    layer = get_channel_layer()
    colleagues, own = await layer.new_channel(), await layer.new_channel()
    groups = [(tenant_agents_group(setup["tenant"]), colleagues), (agent_group(setup["tenant"], setup["agent"]), own)]
    for group, channel in groups:
        await layer.group_add(group, channel)
    try:
        await database_sync_to_async(agents_offline_sweep)()
        presence = await asyncio.wait_for(layer.receive(colleagues), 10)
        withdrawn = await asyncio.wait_for(layer.receive(own), 10)
    finally:
        for group, channel in groups:
            await layer.group_discard(group, channel)
        # The database thread keeps its connection; close it, or the test database cannot be flushed.
        await sync_to_async(connections.close_all)()
    assert presence == {
        "type": "agent.presence",
        "user_id": setup["agent"],
        "name": setup["name"],
        "presence": "offline",
        "pause_reason": None,
    }
    assert withdrawn == {
        "type": "offer.withdrawn",
        "conversation_id": setup["conversation"],
        "offer_id": setup["offer"],
        "reason": "unavailable",
    }
