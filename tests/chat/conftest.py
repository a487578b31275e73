"""Fixtures for live chat: a widget routed to a queue, an online agent, a visitor and their conversation."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from agents.models import AgentProfile, Presence
from chat.selectors import VisitorActor, agent_actor_for
from chat.services import conversation_start
from contactcenter import realtime
from tests.factories import DispositionFactory, QueueFactory, QueueMemberFactory, QueueRouteFactory, WidgetFactory

SURVEY = [
    {"key": "name", "label": "Your name", "kind": "name", "required": True},
    {"key": "email", "label": "Email", "kind": "email", "required": False},
    {"key": "phone", "label": "Phone", "kind": "phone", "required": False},
    {"key": "topic", "label": "Topic", "kind": "text", "required": False},
]


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    # Session-start limits are counted in the cache by widget id, and ids repeat across tests (rolled back).
    cache.clear()


@pytest.fixture
def published(monkeypatch):
    """Every (group, event) committed for the channel layer; the real send still happens."""
    sent: list[tuple[str, dict]] = []
    real_dispatch = realtime._dispatch

    def spy(group, event):
        sent.append((group, event))
        real_dispatch(group, event)

    monkeypatch.setattr(realtime, "_dispatch", spy)
    return sent


@pytest.fixture
def widget(tenant):
    return WidgetFactory(tenant=tenant, survey_fields=SURVEY, max_upload_bytes=64 * 1024)


@pytest.fixture
def queue(tenant, widget, agent):
    queue = QueueFactory(tenant=tenant, name="Sales")
    QueueMemberFactory(tenant=tenant, queue=queue, user=agent)
    QueueRouteFactory(tenant=tenant, queue=queue, widget=widget)
    return queue


@pytest.fixture
def online(agent):
    AgentProfile.objects.filter(user=agent).update(presence=Presence.ONLINE)
    return agent


@pytest.fixture
def visitor(widget):
    return VisitorActor(tenant_id=widget.tenant_id, widget_id=widget.pk, visitor_id="visitor-one")


@pytest.fixture
def agent_actor(agent):
    return agent_actor_for(agent)


@pytest.fixture
def conversation(widget, visitor):
    return conversation_start(widget=widget, visitor_id=visitor.visitor_id, answers={"name": "Jane"}).conversation


@pytest.fixture
def assigned(conversation, agent_actor, queue):
    from queueing.services import conversation_accept

    return conversation_accept(actor=agent_actor, conversation_id=conversation.pk)


@pytest.fixture
def disposition(tenant):
    return DispositionFactory(tenant=tenant, name="Solved")
