"""Shared fixtures: tenants, members of each role, API clients. Service plumbing lives in tests/support."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from contactcenter.models import Role
from contactcenter.services import apikey_create
from tests.factories import PASSWORD, MembershipFactory, TenantFactory

pytest_plugins = ["tests.support.services"]


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
