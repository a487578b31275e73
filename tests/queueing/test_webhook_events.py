"""Routing's events for integrators' webhooks: an accept is `conversation.assigned` (with the queue it came
through), a transfer `conversation.transferred` (to an agent or a queue); each written with the change."""

from __future__ import annotations

import pytest

from agents.models import AgentProfile, Presence
from chat.selectors import agent_actor_for
from contactcenter.errors import ApplicationError
from contactcenter.models import WebhookEvent
from contactcenter.services.webhooks_out import webhook_subscription_create
from queueing.services import conversation_accept, conversation_request, conversation_transfer
from tests.factories import QueueMemberFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def subscribed(settings, tenant):
    settings.WEBHOOKS_ALLOW_PRIVATE = True
    webhook_subscription_create(
        tenant=tenant,
        url="http://127.0.0.1:9/hooks",
        event_types=["conversation.assigned", "conversation.transferred"],
    )


def events_of(tenant) -> list[tuple[str, dict]]:
    return [(event.type, event.payload) for event in WebhookEvent.objects.filter(tenant=tenant).order_by("pk")]


def test_an_accept_is_assigned_and_a_transfer_transferred(subscribed, tenant, widget, queue, online):
    colleague = QueueMemberFactory(tenant=tenant, queue=queue).user
    AgentProfile.objects.filter(user=colleague).update(presence=Presence.ONLINE, max_chats=3)
    chat = conversation_request(widget=widget, visitor_id="v1", answers={"name": "Vic"}).conversation
    conversation_accept(actor=agent_actor_for(online), conversation_id=chat.pk)
    conversation_transfer(actor=agent_actor_for(online), conversation_id=chat.pk, to_user_id=colleague.pk)
    (assigned_type, assigned), (transferred_type, transferred) = events_of(tenant)
    assert assigned_type == "conversation.assigned"
    assert (assigned["agent_id"], assigned["queue_id"]) == (online.pk, queue.pk)
    assert (assigned["conversation"]["id"], assigned["conversation"]["status"]) == (chat.pk, "open")
    assert transferred_type == "conversation.transferred"
    assert (transferred["from_agent_id"], transferred["to_agent_id"], transferred["to_queue_id"]) == (
        online.pk,
        colleague.pk,
        None,
    )
    assert transferred["conversation"]["status"] == "waiting"


def test_a_refused_accept_records_nothing(subscribed, tenant, widget, queue, online):
    chat = conversation_request(widget=widget, visitor_id="v1", answers={"name": "Vic"}).conversation
    conversation_accept(actor=agent_actor_for(online), conversation_id=chat.pk)
    other = QueueMemberFactory(tenant=tenant, queue=queue).user
    AgentProfile.objects.filter(user=other).update(presence=Presence.ONLINE)
    with pytest.raises(ApplicationError) as refused:
        conversation_accept(actor=agent_actor_for(other), conversation_id=chat.pk)
    assert refused.value.code == "already_taken"
    assert [kind for kind, _ in events_of(tenant)] == ["conversation.assigned"]
