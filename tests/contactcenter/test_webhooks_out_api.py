"""Outbound webhooks through the REST API: subscriptions (the secret shown once), deliveries with their attempts
(cursor pages), replay; tenant isolation and every refused input."""

from __future__ import annotations

import pytest
from django.utils import timezone
from rest_framework.test import APIClient
from standardwebhooks.webhooks import Webhook

from contactcenter.models import WebhookAttempt, WebhookDelivery, WebhookDeliveryState, WebhookSubscription
from contactcenter.services.webhooks_out import (
    CONVERSATION_CLOSED,
    MESSAGE_CREATED,
    webhook_event_record,
)
from tests.contactcenter.test_webhooks_out_delivery import Receiver, attempt

pytestmark = [pytest.mark.django_db]

URL = "https://hooks.example.com/switchboard"


@pytest.fixture(autouse=True)
def allow_private(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = True
    settings.WEBHOOKS_BACKOFF_SECONDS = 0.0
    return settings


def create(client, **fields):
    body = {"url": "http://127.0.0.1:9/hook", **fields}
    return client.post("/api/v1/webhooks/", body, format="json")


def test_create_shows_the_secret_once_and_never_again(api_client):
    response = create(api_client, description="CRM", event_types=[MESSAGE_CREATED, CONVERSATION_CLOSED])
    assert response.status_code == 201, response.json()
    body = response.json()
    secret = body["secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    assert body["event_types"] == [CONVERSATION_CLOSED, MESSAGE_CREATED]  # the documented order
    assert body["enabled"] is True and body["description"] == "CRM"

    listed = api_client.get("/api/v1/webhooks/")
    retrieved = api_client.get(f"/api/v1/webhooks/{body['id']}/")
    for answer in (listed, retrieved):
        assert answer.status_code == 200
        assert secret not in answer.content.decode()
        assert secret.removeprefix("whsec_") not in answer.content.decode()
        assert b"secret" not in answer.content.replace(b"secret_", b"")  # no secret field, sealed or not
    assert listed.json()["results"][0]["id"] == body["id"]


def test_rotate_shows_the_new_secret_once_and_both_sign_meanwhile(api_client):
    receiver = Receiver().start()
    try:
        created = create(api_client, url=receiver.url).json()
        response = api_client.post(f"/api/v1/webhooks/{created['id']}/rotate-secret/")
        assert response.status_code == 200
        rotated = response.json()
        assert rotated["secret"] != created["secret"] and rotated["rotation_expires_at"] is not None
        assert rotated["secret"] not in api_client.get(f"/api/v1/webhooks/{created['id']}/").content.decode()

        subscription = WebhookSubscription.objects.get(pk=created["id"])
        webhook_event_record(tenant_id=subscription.tenant_id, type=MESSAGE_CREATED, data={"id": 1})
        assert attempt(WebhookDelivery.objects.get(subscription=subscription)) == "delivered"
        headers, body = receiver.requests[0]
        assert Webhook(created["secret"]).verify(body, headers)["type"] == MESSAGE_CREATED
        assert Webhook(rotated["secret"]).verify(body, headers)["type"] == MESSAGE_CREATED
    finally:
        receiver.stop()


@pytest.mark.parametrize(
    ("fields", "field", "code"),
    [
        ({"url": "ftp://example.com/x"}, "url", "url_not_allowed"),
        ({"url": "not a url"}, "url", "url_not_allowed"),
        ({"url": ""}, "url", "invalid"),
        ({"url": "https://example.com/" + "x" * 2000}, "url", "invalid"),
        ({"event_types": ["conversation.exploded"]}, "event_types.0", "invalid"),
        ({"event_types": "message.created"}, "event_types", "invalid"),
        ({"description": "d" * 201}, "description", "invalid"),
        ({"enabled": "yes"}, "enabled", "invalid"),
    ],
)
def test_bad_input_is_refused_on_its_field(api_client, fields, field, code):
    response = create(api_client, **fields)
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["code"] == code and field in error["fields"], error
    assert not WebhookSubscription.objects.exists()


def test_a_private_address_is_refused_in_production(api_client, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = False
    for url in ("https://10.0.0.1/hook", "https://127.0.0.1/hook", "https://169.254.169.254/", "https://localhost/"):
        response = create(api_client, url=url)
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "url_not_allowed" and "public addresses only" in error["fields"]["url"][0]
    response = create(api_client, url="http://93.184.215.14/hook")
    assert response.json()["error"]["fields"]["url"] == ["The URL must start with https://."]
    assert create(api_client, url="https://93.184.215.14/hook").status_code == 201


def test_another_tenants_subscription_is_a_404_everywhere(api_client, other_api_client):
    theirs = create(other_api_client).json()["id"]
    WebhookSubscription.objects.filter(pk=theirs).update(url=URL)
    for method, path in [
        ("get", f"/api/v1/webhooks/{theirs}/"),
        ("patch", f"/api/v1/webhooks/{theirs}/"),
        ("delete", f"/api/v1/webhooks/{theirs}/"),
        ("post", f"/api/v1/webhooks/{theirs}/rotate-secret/"),
        ("get", f"/api/v1/webhooks/{theirs}/deliveries/"),
    ]:
        response = getattr(api_client, method)(path, {}, format="json")
        assert response.status_code == 404, (method, path)
        assert response.json()["error"]["code"] == "not_found"
    assert api_client.get("/api/v1/webhooks/").json()["results"] == []
    assert WebhookSubscription.objects.get(pk=theirs).url == URL


def test_agents_cannot_see_subscriptions(agent):
    client = APIClient()
    client.force_login(agent)
    assert client.get("/api/v1/webhooks/").status_code == 403


def test_patch_changes_and_turns_off_and_on(api_client):
    created = create(api_client).json()
    path = f"/api/v1/webhooks/{created['id']}/"
    response = api_client.patch(path, {"enabled": False, "event_types": [MESSAGE_CREATED]}, format="json")
    assert response.status_code == 200
    assert response.json()["enabled"] is False and response.json()["disabled_at"] is not None
    subscription = WebhookSubscription.objects.get(pk=created["id"])
    assert webhook_event_record(tenant_id=subscription.tenant_id, type=MESSAGE_CREATED, data={}) is None
    WebhookSubscription.objects.filter(pk=subscription.pk).update(failing_since=timezone.now())
    response = api_client.patch(path, {"enabled": True}, format="json")
    assert response.json()["enabled"] is True and response.json()["failing_since"] is None
    assert response.json()["disabled_reason"] == ""
    assert webhook_event_record(tenant_id=subscription.tenant_id, type=MESSAGE_CREATED, data={}) is not None
    assert api_client.put(path, {"url": URL}, format="json").status_code == 405
    refused = api_client.patch(path, {"url": "gopher://example.com/"}, format="json")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "url_not_allowed"
    assert WebhookSubscription.objects.get(pk=created["id"]).url == "http://127.0.0.1:9/hook"


def test_a_subscription_created_disabled_gets_no_events(api_client):
    created = create(api_client, enabled=False).json()
    assert created["enabled"] is False and created["disabled_at"] is not None
    subscription = WebhookSubscription.objects.get(pk=created["id"])
    assert webhook_event_record(tenant_id=subscription.tenant_id, type=MESSAGE_CREATED, data={}) is None


def test_delete_removes_it_with_its_deliveries(api_client):
    created = create(api_client).json()
    subscription = WebhookSubscription.objects.get(pk=created["id"])
    webhook_event_record(tenant_id=subscription.tenant_id, type=MESSAGE_CREATED, data={})
    assert api_client.delete(f"/api/v1/webhooks/{created['id']}/").status_code == 204
    assert not WebhookSubscription.objects.exists() and not WebhookDelivery.objects.exists()


def test_deliveries_are_listed_newest_first_with_their_attempts_by_cursor(api_client):
    receiver = Receiver().start()
    try:
        receiver.answer((500, b"busy", {}), 200)
        created = create(api_client, url=receiver.url).json()
        subscription = WebhookSubscription.objects.get(pk=created["id"])
        events = [
            webhook_event_record(tenant_id=subscription.tenant_id, type=MESSAGE_CREATED, data={"n": n})
            for n in range(3)
        ]
        first = WebhookDelivery.objects.get(event=events[0])
        assert attempt(first) == "retry" and attempt(first) == "delivered"
    finally:
        receiver.stop()
    path = f"/api/v1/webhooks/{created['id']}/deliveries/"
    page = api_client.get(path, {"limit": 2}).json()
    assert [d["event"]["data"]["n"] for d in page["results"]] == [2, 1]
    assert page["next"] and "cursor=" in page["next"] and page["previous"] is None
    rest = api_client.get(page["next"]).json()
    (oldest,) = rest["results"]
    assert oldest["event"]["id"] == events[0].public_id and oldest["event"]["type"] == MESSAGE_CREATED
    assert oldest["state"] == "delivered" and oldest["attempt_count"] == 2
    assert [(a["status_code"], a["response_body"]) for a in oldest["attempts"]] == [(500, "busy"), (200, "")]
    assert rest["next"] is None
    tampered = api_client.get(path, {"cursor": "garbage"})
    assert tampered.status_code == 400 and "cursor" in tampered.json()["error"]["fields"]


def test_replay_sends_a_finished_delivery_again_with_the_same_id(api_client):
    receiver = Receiver().start()
    try:
        receiver.answer(400, 200)
        created = create(api_client, url=receiver.url).json()
        subscription = WebhookSubscription.objects.get(pk=created["id"])
        webhook_event_record(tenant_id=subscription.tenant_id, type=MESSAGE_CREATED, data={})
        delivery = WebhookDelivery.objects.get(subscription=subscription)
        assert attempt(delivery) == "failed"
        path = f"/api/v1/webhooks/{created['id']}/deliveries/{delivery.pk}/replay/"
        response = api_client.post(path)
        assert response.status_code == 202 and response.json()["state"] == "pending"
        assert api_client.post(path).json()["error"]["code"] == "delivery_pending"
        assert attempt(delivery) == "delivered"
        assert receiver.requests[0][0]["webhook-id"] == receiver.requests[1][0]["webhook-id"]
        assert WebhookAttempt.objects.filter(delivery=delivery).count() == 2
    finally:
        receiver.stop()
    WebhookSubscription.objects.filter(pk=subscription.pk).update(enabled=False)
    response = api_client.post(path)
    assert response.status_code == 409 and response.json()["error"]["code"] == "subscription_disabled"
    assert api_client.get(path).status_code == 405


def test_replay_of_another_subscriptions_or_tenants_delivery_is_a_404(api_client, other_api_client):
    mine = create(api_client).json()["id"]
    theirs = create(other_api_client).json()["id"]
    other = WebhookSubscription.objects.get(pk=theirs)
    webhook_event_record(tenant_id=other.tenant_id, type=MESSAGE_CREATED, data={})
    delivery = WebhookDelivery.objects.get(subscription=other)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(state=WebhookDeliveryState.FAILED)
    assert api_client.post(f"/api/v1/webhooks/{mine}/deliveries/{delivery.pk}/replay/").status_code == 404
    assert api_client.post(f"/api/v1/webhooks/{theirs}/deliveries/{delivery.pk}/replay/").status_code == 404
    assert WebhookDelivery.objects.get(pk=delivery.pk).state == WebhookDeliveryState.FAILED


def test_the_schema_documents_the_webhook_endpoints_with_examples(api_client):
    schema = api_client.get("/api/schema/?format=json").json()
    paths = schema["paths"]
    create_op = paths["/api/v1/webhooks/"]["post"]
    assert "Subscribed" in create_op["responses"]["201"]["content"]["application/json"]["examples"]
    assert "400" in create_op["responses"] and "404" in paths["/api/v1/webhooks/{id}/"]["get"]["responses"]
    assert "/api/v1/webhooks/{id}/rotate-secret/" in paths
    deliveries = paths["/api/v1/webhooks/{subscription_pk}/deliveries/"]["get"]
    assert {p["name"] for p in deliveries["parameters"]} >= {"cursor", "limit"}
    replay = paths["/api/v1/webhooks/{id}/deliveries/{delivery_pk}/replay/"]["post"]
    assert "QueuedAgain" in replay["responses"]["202"]["content"]["application/json"]["examples"]
    assert {"404", "409"} <= replay["responses"].keys()
