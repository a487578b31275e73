"""Agents' wrappers of the core's membership services: every member gets an agent profile, all or nothing.
Presence: an agent whose sockets are gone past the grace period goes offline."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core import mail

from agents.models import AgentProfile, Presence
from agents.services import agent_create, agent_invite, tenant_setup
from agents.services.presence import agent_socket_closed, agent_socket_opened, presence_sweep
from contactcenter.errors import ApplicationError
from contactcenter.models import Membership, Role
from contactcenter.services.team import membership_create

pytestmark = pytest.mark.django_db


def test_a_created_agent_has_a_profile_with_their_chat_cap(tenant):
    membership = agent_create(tenant=tenant, email="Ann@Example.com", role=Role.AGENT, password="x-9!long", max_chats=5)
    assert membership.user.username == "ann@example.com"
    profile = AgentProfile.objects.get(user=membership.user)
    assert (profile.tenant_id, profile.max_chats) == (tenant.pk, 5)


def test_the_core_creates_only_the_membership(tenant):
    """contactcenter knows nothing of agents: the profile comes from agents.services."""
    membership = membership_create(tenant=tenant, email="core@example.com", role=Role.AGENT)
    assert not AgentProfile.objects.filter(user=membership.user).exists()


def test_an_invited_agent_has_a_profile_and_an_email_after_commit(tenant, admin, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        membership = agent_invite(tenant=tenant, invited_by=admin, email="new@example.com", role=Role.SUPERVISOR)
    assert AgentProfile.objects.filter(user=membership.user, tenant=tenant).exists()
    assert [m.to for m in mail.outbox] == [["new@example.com"]]


def test_a_refused_chat_cap_leaves_no_teammate_and_sends_no_email(tenant, admin, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(ApplicationError) as error:
        agent_invite(tenant=tenant, invited_by=admin, email="new@example.com", role=Role.AGENT, max_chats=0)
    assert error.value.fields == {"max_chats": ["Between 1 and 50."]}
    assert not get_user_model().objects.filter(username="new@example.com").exists()
    assert mail.outbox == []


def test_a_new_tenants_first_admin_has_a_profile():
    membership = tenant_setup(name="Initech", admin_email="boss@initech.example", admin_password="x-9!long")
    assert membership.role == Role.ADMIN
    assert Membership.objects.filter(tenant=membership.tenant).count() == 1
    assert AgentProfile.objects.filter(user=membership.user, tenant=membership.tenant).exists()


# --- presence ---------------------------------------------------------------------------------------------


def test_an_agent_whose_sockets_are_gone_past_the_grace_period_goes_offline(agent, settings):
    settings.PRESENCE_GRACE_SECONDS = 0
    AgentProfile.objects.filter(user=agent).update(presence=Presence.ONLINE)
    agent_socket_opened(user=agent)
    assert presence_sweep() == []  # a socket is open
    agent_socket_closed(user=agent)
    agent_socket_closed(user=agent)  # a second close never goes below zero
    assert AgentProfile.objects.get(user=agent).open_sockets == 0
    assert presence_sweep() == [agent.pk]
    assert AgentProfile.objects.get(user=agent).presence == Presence.OFFLINE
