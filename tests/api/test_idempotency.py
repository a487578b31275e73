"""Idempotency-Key on API POSTs: a retried create returns the first result and creates nothing twice."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

import contactcenter.api
from contactcenter.models import ApiKey, Contact, IdempotencyKey, WebhookSubscription
from contactcenter.services import apikey_create
from contactcenter.services.idempotency import idempotency_begin, idempotency_keys_sweep, request_hash
from contactcenter.wiring.tasks import sweep_once

pytestmark = pytest.mark.django_db

CONTACTS = "/api/v1/contacts/"


def post(client, url: str, data: dict, key: str | None = "retry-1"):
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.post(url, data, format="json", headers=headers)


def assert_error(response, status: int, code: str) -> dict:
    body = response.json()
    assert response.status_code == status, body
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    assert body["error"]["code"] == code
    return body["error"]


def test_a_retried_create_returns_the_first_result_and_creates_once(api_client, tenant):
    first = post(api_client, CONTACTS, {"name": "Ada"})
    again = post(api_client, CONTACTS, {"name": "Ada"})

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert Contact.objects.filter(tenant=tenant).count() == 1


def test_without_a_key_each_post_creates(api_client, tenant):
    post(api_client, CONTACTS, {"name": "Ada"}, key=None)
    post(api_client, CONTACTS, {"name": "Ada"}, key=None)
    assert Contact.objects.filter(tenant=tenant).count() == 2


def test_the_same_key_with_another_body_or_path_is_refused(api_client, tenant):
    post(api_client, CONTACTS, {"name": "Ada"})
    other_body = assert_error(post(api_client, CONTACTS, {"name": "Grace"}), 422, "idempotency_key_reused")
    assert other_body["fields"] == {"Idempotency-Key": [other_body["message"]]}

    contact = Contact.objects.get(tenant=tenant)
    other_path = post(api_client, f"/api/v1/contacts/{contact.pk}/identities/", {"name": "Ada"})
    assert_error(other_path, 422, "idempotency_key_reused")
    assert Contact.objects.filter(tenant=tenant).count() == 1


def test_key_order_and_whitespace_of_the_body_do_not_matter(api_client, tenant):
    contact = Contact.objects.create(tenant=tenant, name="Ada")
    url = f"/api/v1/contacts/{contact.pk}/identities/"
    headers = {"Idempotency-Key": "order"}
    first = api_client.post(
        url, '{"kind": "email", "value": "a@example.com"}', content_type="application/json", headers=headers
    )
    again = api_client.post(
        url, '{"value":"a@example.com","kind":"email"}', content_type="application/json", headers=headers
    )
    assert (first.status_code, again.status_code) == (201, 201)
    assert again["Idempotent-Replayed"] == "true"


@pytest.mark.parametrize("key", ["x" * 256, "", "café", "with space", "tab\there"])
def test_a_malformed_key_is_refused_on_the_header(api_client, tenant, key):
    error = assert_error(post(api_client, CONTACTS, {"name": "Ada"}, key=key), 400, "invalid")
    assert list(error["fields"]) == ["Idempotency-Key"]
    assert not Contact.objects.filter(tenant=tenant).exists()


def test_a_key_of_255_characters_is_accepted(api_client):
    key = "k" * 255
    assert post(api_client, CONTACTS, {"name": "Ada"}, key=key).status_code == 201
    assert post(api_client, CONTACTS, {"name": "Ada"}, key=key)["Idempotent-Replayed"] == "true"


def test_keys_belong_to_their_principal(api_client, tenant, other_api_client, admin_session):
    first = post(api_client, CONTACTS, {"name": "Ada"})
    second_key = APIClient()
    second_key.credentials(HTTP_AUTHORIZATION=f"Bearer {apikey_create(tenant=tenant, name='b').plaintext}")
    by_other_key = post(second_key, CONTACTS, {"name": "Ada"})
    by_session = post(admin_session, CONTACTS, {"name": "Ada"})
    by_other_tenant = post(other_api_client, CONTACTS, {"name": "Ada"})

    assert {r.status_code for r in (by_other_key, by_session, by_other_tenant)} == {201}
    assert len({first.json()["id"], by_other_key.json()["id"], by_session.json()["id"]}) == 3
    assert not any("Idempotent-Replayed" in r for r in (by_other_key, by_session, by_other_tenant))
    assert by_other_tenant.json()["id"] not in {first.json()["id"], by_other_key.json()["id"]}


def test_a_refusal_is_stored_and_replayed_too(api_client, tenant):
    first = post(api_client, CONTACTS, {"name": 5 * "x" * 100})  # over 200 characters
    again = post(api_client, CONTACTS, {"name": 5 * "x" * 100})
    assert first.status_code == again.status_code == 400
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"


def test_a_server_error_is_not_stored_and_the_retry_runs_again(api_client, tenant, monkeypatch):
    real = contactcenter.api.contact_create
    calls = []

    def failing_once(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise RuntimeError("database went away")
        return real(**kwargs)

    monkeypatch.setattr(contactcenter.api, "contact_create", failing_once)
    api_client.raise_request_exception = False
    assert post(api_client, CONTACTS, {"name": "Ada"}).status_code == 500
    assert not IdempotencyKey.objects.filter(tenant=tenant).exists()

    retried = post(api_client, CONTACTS, {"name": "Ada"})
    assert retried.status_code == 201
    assert "Idempotent-Replayed" not in retried
    assert len(calls) == 2


def test_a_retry_while_the_first_runs_is_told_to_wait(api_client, tenant, api_key):
    key = ApiKey.objects.get(tenant=tenant)
    first = request_hash(method="POST", path=CONTACTS, body={"name": "Ada"})
    idempotency_begin(tenant=tenant, principal=f"key:{key.pk}", key="retry-1", request_hash=first)
    assert_error(post(api_client, CONTACTS, {"name": "Ada"}), 409, "idempotency_in_progress")
    assert not Contact.objects.filter(tenant=tenant).exists()


@override_settings(IDEMPOTENCY_IN_PROGRESS_SECONDS=60)
def test_a_first_request_that_never_finished_stops_blocking_the_key(api_client, tenant):
    key = ApiKey.objects.get(tenant=tenant)
    idempotency_begin(tenant=tenant, principal=f"key:{key.pk}", key="retry-1", request_hash="0" * 64)
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(seconds=61))
    assert post(api_client, CONTACTS, {"name": "Ada"}).status_code == 201
    assert post(api_client, CONTACTS, {"name": "Ada"})["Idempotent-Replayed"] == "true"


@override_settings(IDEMPOTENCY_KEY_TTL_SECONDS=3600)
def test_keys_expire_lazily_and_in_the_sweep(api_client, tenant):
    post(api_client, CONTACTS, {"name": "Ada"})
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(seconds=3601))
    # Past its retention the key is new again, even with another body.
    assert post(api_client, CONTACTS, {"name": "Grace"}).status_code == 201
    assert Contact.objects.filter(tenant=tenant).count() == 2

    assert idempotency_keys_sweep() == {"idempotency_keys_expired": 0}
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(seconds=3601))
    assert sweep_once()["idempotency_keys_expired"] == 1
    assert not IdempotencyKey.objects.exists()


def test_a_new_api_key_is_replayed_but_never_stored_in_clear(api_client, tenant):
    first = post(api_client, "/api/v1/api-keys/", {"name": "CRM"})
    again = post(api_client, "/api/v1/api-keys/", {"name": "CRM"})
    assert first.status_code == again.status_code == 201
    plaintext = first.json()["key"]
    assert again.json()["key"] == plaintext
    assert ApiKey.objects.filter(tenant=tenant, name="CRM").count() == 1
    row = IdempotencyKey.objects.get(tenant=tenant)
    assert plaintext not in row.response_sealed
    assert plaintext.split("_")[-1] not in row.response_sealed


def test_a_webhook_subscription_is_created_once_with_one_secret(api_client, tenant):
    body = {"url": "https://hooks.example.com/a", "event_types": ["message.created"]}
    first = post(api_client, "/api/v1/webhooks/", body)
    again = post(api_client, "/api/v1/webhooks/", body)
    assert first.status_code == again.status_code == 201
    assert again.json()["secret"] == first.json()["secret"]
    assert WebhookSubscription.objects.filter(tenant=tenant).count() == 1
    assert first.json()["secret"] not in IdempotencyKey.objects.get(tenant=tenant).response_sealed


def test_the_openapi_document_offers_the_header_on_every_post(admin_session):
    schema = admin_session.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    posts = [(path, item["post"]) for path, item in schema["paths"].items() if "post" in item]
    assert len(posts) >= 10
    for path, operation in posts:
        headers = [p for p in operation.get("parameters", []) if p["in"] == "header"]
        assert [p["name"] for p in headers] == ["Idempotency-Key"], path
        assert headers[0]["schema"]["maxLength"] == 255
        assert "422" in operation["responses"], path
        assert "idempotency_in_progress" in operation["responses"]["409"]["description"], path
    for path, item in schema["paths"].items():
        for method in set(item) & {"get", "patch", "put", "delete"}:
            assert all(p["name"] != "Idempotency-Key" for p in item[method].get("parameters", [])), (path, method)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_concurrent_retry_gets_409_and_the_first_one_finishes(tenant, api_key, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("concurrency is proven on PostgreSQL")
    real = contactcenter.api.contact_create
    inside, release = threading.Event(), threading.Event()

    def slow(**kwargs):
        inside.set()
        assert release.wait(10)
        return real(**kwargs)

    monkeypatch.setattr(contactcenter.api, "contact_create", slow)
    results = {}

    def first_request():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
        try:
            results["first"] = post(client, CONTACTS, {"name": "Ada"})
        finally:
            connection.close()

    thread = threading.Thread(target=first_request)
    thread.start()
    try:
        assert inside.wait(10)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
        assert_error(post(client, CONTACTS, {"name": "Ada"}), 409, "idempotency_in_progress")
    finally:
        release.set()
        thread.join(15)
    assert results["first"].status_code == 201
    replay = post(client, CONTACTS, {"name": "Ada"})
    assert replay.json() == results["first"].json()
    assert replay["Idempotent-Replayed"] == "true"
    assert Contact.objects.filter(tenant=tenant).count() == 1


def test_a_retried_rotation_rotates_once(api_client, tenant):
    created = post(api_client, "/api/v1/webhooks/", {"url": "https://hooks.example.com/a"}, key=None).json()
    url = f"/api/v1/webhooks/{created['id']}/rotate-secret/"
    first = post(api_client, url, {}, key="rotate-1")
    again = post(api_client, url, {}, key="rotate-1")
    assert first.status_code == again.status_code == 200
    assert again.json()["secret"] == first.json()["secret"] != created["secret"]
    assert again["Idempotent-Replayed"] == "true"
    fresh = post(api_client, url, {}, key="rotate-2")
    assert fresh.json()["secret"] not in {created["secret"], first.json()["secret"]}
