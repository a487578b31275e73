"""Fixtures of the API tests: console sessions of each role and a clean throttle budget per test."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from contactcenter.models import Role
from tests.factories import MembershipFactory


@pytest.fixture(autouse=True)
def fresh_throttle_budget():
    # Row ids repeat across tests (rolled-back sequences), and so would the throttle's cache keys.
    cache.clear()


def session_client(user) -> APIClient:
    """A console session, signed in through SessionAuthentication (no API key)."""
    client = APIClient()
    client.force_login(user)
    return client


@pytest.fixture
def admin_session(admin):
    return session_client(admin)


@pytest.fixture
def agent_session(agent):
    return session_client(agent)


@pytest.fixture
def other_admin_session(other_tenant):
    return session_client(MembershipFactory(tenant=other_tenant, role=Role.ADMIN).user)
