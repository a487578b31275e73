"""A conversation's queue is written when it is routed (ConversationRoute) and read from there: re-routing a
widget or deleting a queue does not move past or waiting chats, an unrouted chat waits for every agent, and
the data migration gives older conversations the queue their widget routed to."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse

from chat.selectors import agent_actor_for
from chat.services.starting import conversation_start
from queueing.models import ConversationRoute, QueueRoute
from queueing.selectors import conversation_queue, conversation_queues, waiting_list
from queueing.services import conversation_route
from tests.factories import MembershipFactory, QueueFactory, QueueMemberFactory, WidgetFactory

pytestmark = pytest.mark.django_db


def waiting_ids(user) -> list[int]:
    return [item["conversation_id"] for item in waiting_list(actor=agent_actor_for(user))]


def test_re_routing_a_widget_leaves_its_waiting_and_past_chats_in_their_queue(
    client, tenant, widget, queue, agent, conversation
):
    support = QueueFactory(tenant=tenant, name="Support")
    support_agent = MembershipFactory(tenant=tenant).user
    QueueMemberFactory(tenant=tenant, queue=support, user=support_agent)
    QueueRoute.objects.filter(widget=widget).update(queue=support)

    assert conversation_queue(conversation=conversation) == queue
    assert conversation_queues(tenant_id=tenant.pk, conversation_ids=[conversation.pk]) == {
        conversation.pk: {"id": queue.pk, "name": "Sales"}
    }
    assert waiting_ids(agent) == [conversation.pk]
    assert waiting_ids(support_agent) == []  # the new queue's members do not see the old queue's chat

    supervisor = MembershipFactory(tenant=tenant, role="supervisor").user
    client.force_login(supervisor)
    page = client.get(reverse("console-conversations")).content.decode()
    assert "<td>Sales</td>" in page
    assert "<td>Support</td>" not in page


def test_a_deleted_queue_leaves_its_name_and_its_waiting_chats_open_to_every_agent(
    tenant, widget, queue, agent, conversation
):
    outsider = MembershipFactory(tenant=tenant).user
    assert waiting_ids(outsider) == []

    queue.delete()

    route = ConversationRoute.objects.get(conversation=conversation)
    assert (route.queue_id, route.queue_name) == (None, "Sales")
    assert conversation_queue(conversation=conversation) is None
    assert waiting_ids(outsider) == [conversation.pk]  # no queue any more: nobody's chat is lost


def test_a_chat_routed_nowhere_waits_for_every_agent_of_its_tenant(tenant, widget, agent, other_tenant):
    started = conversation_start(widget=widget, visitor_id="visitor-two", answers={"name": "Jo"})
    conversation_route(conversation=started.conversation, queue=None)
    foreign = MembershipFactory(tenant=other_tenant).user

    assert not ConversationRoute.objects.filter(conversation=started.conversation).exists()
    assert conversation_queue(conversation=started.conversation) is None
    assert waiting_ids(agent) == [started.conversation.pk]
    assert waiting_ids(foreign) == []


def test_a_route_of_another_tenant_is_not_read(tenant, other_tenant, widget, queue, conversation):
    assert conversation_queues(tenant_id=other_tenant.pk, conversation_ids=[conversation.pk]) == {}


@pytest.fixture
def executor():
    """A migration executor that puts the test database back on the latest migrations whatever the test did."""
    yield MigrationExecutor(connection)
    latest = MigrationExecutor(connection)
    latest.migrate(latest.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_the_migration_gives_older_conversations_the_queue_their_widget_routes_to(tenant, executor):
    before, after = [("queueing", "0002_offer")], [("queueing", "0003_conversation_route")]
    others = [node for node in executor.loader.graph.leaf_nodes() if node[0] != "queueing"]
    executor.migrate(before)
    old = executor.loader.project_state(before + others).apps
    Queue = old.get_model("queueing", "Queue")
    QueueRouteOld = old.get_model("queueing", "QueueRoute")
    Widget = old.get_model("chat", "Widget")
    Conversation = old.get_model("chat", "Conversation")
    Contact = old.get_model("contactcenter", "Contact")
    routed_widget = Widget.objects.get(pk=WidgetFactory(tenant=tenant).pk)
    unrouted_widget = Widget.objects.get(pk=WidgetFactory(tenant=tenant).pk)
    billing = Queue.objects.create(tenant_id=tenant.pk, name="Billing")
    QueueRouteOld.objects.create(tenant_id=tenant.pk, queue=billing, widget=routed_widget)
    contact = Contact.objects.create(tenant_id=tenant.pk, name="Ada")
    routed = Conversation.objects.create(tenant_id=tenant.pk, widget=routed_widget, contact=contact, channel="web")
    unrouted = Conversation.objects.create(tenant_id=tenant.pk, widget=unrouted_widget, contact=contact, channel="web")

    forward = MigrationExecutor(connection)
    forward.migrate(after)
    new = forward.loader.project_state(after + others).apps
    routes = new.get_model("queueing", "ConversationRoute").objects.all()

    assert list(routes.values_list("conversation_id", "queue_id", "queue_name", "tenant_id")) == [
        (routed.pk, billing.pk, "Billing", tenant.pk)
    ]
    assert not routes.filter(conversation_id=unrouted.pk).exists()
