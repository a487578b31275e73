"""Shared fixtures: tenants, members of each role, API clients, and live chat's (a widget routed to a queue, an
online agent, a visitor and their conversation). Service plumbing lives in tests/support."""

from __future__ import annotations

import time
import warnings

import pytest
from django.core.management.base import CommandError
from django.test import TransactionTestCase
from rest_framework.test import APIClient

from agents.models import AgentProfile, Presence
from chat.selectors import VisitorActor, agent_actor_for
from chat.services.starting import conversation_start
from contactcenter import realtime
from contactcenter.models import Role
from contactcenter.services import apikey_create
from tests.factories import (
    PASSWORD,
    DispositionFactory,
    MembershipFactory,
    QueueFactory,
    QueueMemberFactory,
    QueueRouteFactory,
    TenantFactory,
    WidgetFactory,
)

pytest_plugins = ["tests.support.services"]

SURVEY = [
    {"key": "name", "label": "Your name", "kind": "name", "required": True},
    {"key": "email", "label": "Email", "kind": "email", "required": False},
    {"key": "phone", "label": "Phone", "kind": "phone", "required": False},
    {"key": "topic", "label": "Topic", "kind": "text", "required": False},
]


DEADLOCK = "40P01"
FLUSH_ATTEMPTS = 3


def _deadlocked(error: BaseException | None) -> bool:
    while error is not None:
        if getattr(error, "sqlstate", None) == DEADLOCK:
            return True
        error = error.__cause__
    return False


@pytest.fixture(scope="session", autouse=True)
def flush_retried_after_a_deadlock():
    """pytest-django empties the database after a transactional test with one TRUNCATE of every table. A
    server process (daphne, the worker) still writing what a closing socket left may deadlock with it, and
    PostgreSQL may pick the TRUNCATE as the one to abort: the flush is then run again (it was rolled back
    whole). Any other flush error, or a third deadlock, fails as before."""
    original = TransactionTestCase._fixture_teardown

    def fixture_teardown(self: TransactionTestCase) -> None:
        for attempt in range(1, FLUSH_ATTEMPTS + 1):
            try:
                return original(self)
            except CommandError as error:
                if attempt == FLUSH_ATTEMPTS or not _deadlocked(error):
                    raise
                warnings.warn(f"flush deadlocked with a server's write; attempt {attempt + 1}", stacklevel=1)
                time.sleep(0.2 * attempt)

    TransactionTestCase._fixture_teardown = fixture_teardown
    yield
    TransactionTestCase._fixture_teardown = original


@pytest.fixture(autouse=True)
def message_threads_closed():
    """The message threads of in-process sockets keep a connection each: closed after every test."""
    yield
    from chat.message_writer import post_threads_stop

    post_threads_stop()


@pytest.fixture
def tenant(db):
    return TenantFactory(name="Acme")


@pytest.fixture
def other_tenant(db):
    return TenantFactory(name="Globex")


@pytest.fixture
def admin(tenant):
    return MembershipFactory(tenant=tenant, role=Role.ADMIN).user


@pytest.fixture
def supervisor(tenant):
    return MembershipFactory(tenant=tenant, role=Role.SUPERVISOR).user


@pytest.fixture
def agent(tenant):
    return MembershipFactory(tenant=tenant, role=Role.AGENT).user


@pytest.fixture
def password():
    return PASSWORD


@pytest.fixture
def api_key(tenant):
    """The plaintext of a fresh key of `tenant`."""
    return apikey_create(tenant=tenant, name="tests").plaintext


@pytest.fixture
def api_client(api_key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    return client


@pytest.fixture
def other_api_client(other_tenant):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {apikey_create(tenant=other_tenant, name='other').plaintext}")
    return client


# --- live chat: a widget routed to a queue, an online agent, a visitor and their conversation ---------------


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
def sandbox_outbox(settings):
    """The sandbox provider keeps what it sends in its outbox (the /sandbox/ page), as on `make run`."""
    settings.SANDBOX_OUTBOX = True


@pytest.fixture
def connectors(tenant, sandbox_outbox):
    """The tenant's SMS, WhatsApp and email channels, on the sandbox provider."""
    from channels_switch.services import connector_save

    return {
        kind: connector_save(tenant=tenant, kind=kind, provider="sandbox", from_address=address)
        for kind, address in (("sms", "+14155550100"), ("whatsapp", "+14155550111"), ("email", "help@shop.example"))
    }


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
    """Started and routed as a visitor's request is (to the widget's queue when the test made one first)."""
    from queueing.services import conversation_route, widget_queue

    started = conversation_start(widget=widget, visitor_id=visitor.visitor_id, answers={"name": "Jane"})
    conversation_route(conversation=started.conversation, queue=widget_queue(widget))
    return started.conversation


@pytest.fixture
def assigned(conversation, agent_actor, queue):
    from queueing.services import conversation_accept

    return conversation_accept(actor=agent_actor, conversation_id=conversation.pk)


@pytest.fixture
def disposition(tenant):
    return DispositionFactory(tenant=tenant, name="Solved")
