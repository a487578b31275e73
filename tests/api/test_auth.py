"""API authentication: Bearer keys (hashed, revocable, use recorded), console sessions with CSRF, rate limits."""

from __future__ import annotations

import hashlib

import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone
from django.utils.crypto import get_random_string
from rest_framework.test import APIClient

from contactcenter.models import ApiKey
from contactcenter.services import apikey_create
from tests.api.conftest import session_client
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/templates/"


def bearer(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def assert_unauthenticated(response) -> None:
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_no_credentials_is_401():
    assert_unauthenticated(APIClient().get(URL))


@pytest.mark.parametrize(
    "header",
    [
        "Bearer sb_000000000000_not-the-secret",
        "Bearer not-a-switchboard-key",
        "Bearer",
        "Bearer two parts",
    ],
)
def test_malformed_or_unknown_key_is_401(tenant, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    assert_unauthenticated(client.get(URL))


def test_right_prefix_with_a_wrong_secret_is_401(tenant):
    issued = apikey_create(tenant=tenant, name="crm")
    assert_unauthenticated(bearer(issued.plaintext[:-4] + "AAAA").get(URL))


def test_a_revoked_key_stops_working(api_client, api_key):
    own = api_client.get("/api/v1/api-keys/").json()["results"][0]
    assert api_client.delete(f"/api/v1/api-keys/{own['id']}/").status_code == 204
    assert_unauthenticated(bearer(api_key).get(URL))
    assert ApiKey.objects.get(pk=own["id"]).revoked_at is not None


def test_a_key_records_when_it_was_last_used(tenant):
    issued = apikey_create(tenant=tenant, name="crm")
    assert issued.key.last_used_at is None
    before = timezone.now()
    assert bearer(issued.plaintext).get(URL).status_code == 200
    issued.key.refresh_from_db()
    assert issued.key.last_used_at is not None and issued.key.last_used_at >= before


def test_a_key_is_stored_hashed_and_shown_once(api_client):
    response = api_client.post("/api/v1/api-keys/", {"name": "CRM sync"}, format="json")
    assert response.status_code == 201
    plaintext = response.json()["key"]
    prefix, secret = plaintext.removeprefix("sb_").split("_", 1)

    row = ApiKey.objects.get(pk=response.json()["id"])
    stored = [str(value) for value in ApiKey.objects.filter(pk=row.pk).values().get().values()]
    assert not any(secret in value or plaintext in value for value in stored)
    assert row.prefix == prefix
    assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()

    listed = api_client.get("/api/v1/api-keys/").json()["results"]
    detail = api_client.get(f"/api/v1/api-keys/{row.pk}/").json()
    for shown in [*listed, detail]:
        assert "key" not in shown and secret not in str(shown)
    assert bearer(plaintext).get(URL).status_code == 200


def test_a_key_acts_as_an_admin_of_its_tenant(api_client, tenant):
    response = api_client.post(URL, {"name": "Hello", "body": "Hi!"}, format="json")
    assert response.status_code == 201
    assert tenant.cannedtemplate_set.get().name == "Hello"


def test_a_console_session_is_accepted(admin_session):
    assert admin_session.get(URL).status_code == 200
    assert admin_session.post(URL, {"name": "Hello", "body": "Hi!"}, format="json").status_code == 201


def test_a_console_session_needs_the_csrf_token_to_write(admin):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(admin)
    refused = client.post(URL, {"name": "Hello", "body": "Hi!"}, format="json")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    assert "CSRF" in refused.json()["error"]["message"]

    token = get_random_string(32)  # what the console's pages put in the cookie and the header
    client.cookies[settings.CSRF_COOKIE_NAME] = token
    accepted = client.post(URL, {"name": "Hello", "body": "Hi!"}, format="json", HTTP_X_CSRFTOKEN=token)
    assert accepted.status_code == 201


def test_a_signed_in_user_outside_any_tenant_is_refused(db):
    response = session_client(UserFactory()).get(URL)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


def test_an_inactive_users_session_is_not_authenticated(agent):
    client = session_client(agent)
    agent.is_active = False
    agent.save()
    assert_unauthenticated(client.get(URL))


@override_settings(API_RATE_LIMIT="2/min")
def test_each_key_has_its_own_request_budget(tenant):
    first, second = (bearer(apikey_create(tenant=tenant, name=n).plaintext) for n in ("a", "b"))
    assert [first.get(URL).status_code for _ in range(2)] == [200, 200]

    limited = first.get(URL)
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "rate_limited"
    assert 0 < int(limited["Retry-After"]) <= 60
    assert second.get(URL).status_code == 200
