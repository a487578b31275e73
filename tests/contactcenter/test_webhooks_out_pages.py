"""The Webhooks settings tab: list, add (the secret shown once), rotate, enable/disable, deliveries with their
attempts, replay; admins of the tenant only, CSRF-protected forms."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from contactcenter.models import WebhookDelivery, WebhookDeliveryState, WebhookSubscription
from contactcenter.services.webhooks_out import MESSAGE_CREATED, webhook_event_record, webhook_subscription_create
from tests.contactcenter.test_webhooks_out_delivery import Receiver, attempt

pytestmark = [pytest.mark.django_db]


@pytest.fixture(autouse=True)
def allow_private(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = True
    settings.WEBHOOKS_BACKOFF_SECONDS = 0.0


@pytest.fixture
def admin_client(client, admin):
    client.force_login(admin)
    return client


def secret_on(page: str) -> str:
    match = re.search(r'id="webhook-secret">(whsec_[^<]+)<', page)
    assert match, "the page shows the secret"
    return match.group(1)


def test_adding_a_webhook_shows_its_secret_once(admin_client, tenant):
    assert "No webhooks yet" in admin_client.get("/settings/webhooks/").content.decode()
    response = admin_client.post(
        "/settings/webhooks/new/",
        {"url": "http://127.0.0.1:9/hook", "description": "CRM", "event_types": [MESSAGE_CREATED]},
    )
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    secret = secret_on(response.content.decode())
    subscription = WebhookSubscription.objects.get(tenant=tenant)
    assert subscription.event_types == [MESSAGE_CREATED] and subscription.description == "CRM"
    for path in ("/settings/webhooks/", f"/settings/webhooks/{subscription.pk}/"):
        page = admin_client.get(path).content.decode()
        assert "127.0.0.1:9/hook" in page and secret not in page


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"url": "ftp://example.com/"}, "The URL must start with https://."),
        ({"url": ""}, "This field is required."),
        ({"url": "https://example.com/", "event_types": ["nope"]}, "Select a valid choice."),
    ],
)
def test_a_refused_webhook_is_shown_on_the_form(admin_client, data, message):
    response = admin_client.post("/settings/webhooks/new/", data)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not WebhookSubscription.objects.exists()


def test_a_private_address_is_refused_on_the_form_in_production(admin_client, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = False
    response = admin_client.post("/settings/webhooks/new/", {"url": "https://169.254.169.254/latest/"})
    assert "Webhooks go to public addresses only" in response.content.decode()
    assert not WebhookSubscription.objects.exists()


def test_rotate_shows_the_new_secret_and_toggle_disables_and_enables(admin_client, tenant):
    issued = webhook_subscription_create(tenant=tenant, url="http://127.0.0.1:9/hook")
    response = admin_client.post(f"/settings/webhooks/{issued.subscription.pk}/rotate/")
    new = secret_on(response.content.decode())
    assert new != issued.secret and "signed with both" in response.content.decode()
    assert admin_client.get(f"/settings/webhooks/{issued.subscription.pk}/rotate/").status_code == 405

    path = f"/settings/webhooks/{issued.subscription.pk}/enabled/"
    assert admin_client.post(path, {"enabled": "false"}).status_code == 302
    assert not WebhookSubscription.objects.get().enabled
    assert "Disabled." in admin_client.get(f"/settings/webhooks/{issued.subscription.pk}/").content.decode()
    admin_client.post(path, {"enabled": "true"})
    assert WebhookSubscription.objects.get().enabled


def test_deliveries_show_their_attempts_and_replay_sends_again(admin_client, tenant):
    receiver = Receiver().start()
    try:
        receiver.answer((404, b"no such hook", {}), 200)
        issued = webhook_subscription_create(tenant=tenant, url=receiver.url)
        webhook_event_record(tenant_id=tenant.pk, type=MESSAGE_CREATED, data={"id": 1})
        delivery = WebhookDelivery.objects.get()
        assert attempt(delivery) == "failed"
        page = admin_client.get(f"/settings/webhooks/{issued.subscription.pk}/").content.decode()
        assert "message.created" in page and "HTTP 404" in page and "no such hook" in page
        assert delivery.event.public_id in page and "Replay" in page

        replay = f"/settings/webhooks/{issued.subscription.pk}/deliveries/{delivery.pk}/replay/"
        response = admin_client.post(replay, follow=True)
        assert "Delivery queued again" in response.content.decode()
        assert WebhookDelivery.objects.get().state == WebhookDeliveryState.PENDING
        response = admin_client.post(replay, follow=True)
        assert "still being attempted" in response.content.decode()
        assert attempt(delivery) == "delivered"
        assert len(receiver.requests) == 2
    finally:
        receiver.stop()


def test_only_admins_of_the_tenant_reach_the_pages(client, agent, admin, other_tenant):
    theirs = webhook_subscription_create(tenant=other_tenant, url="http://127.0.0.1:9/theirs").subscription
    client.force_login(agent)
    assert client.get("/settings/webhooks/").status_code == 403
    client.force_login(admin)
    for path in (f"/settings/webhooks/{theirs.pk}/", f"/settings/webhooks/{theirs.pk}/delete/"):
        assert client.get(path).status_code == 404
    for path in (f"/settings/webhooks/{theirs.pk}/rotate/", f"/settings/webhooks/{theirs.pk}/enabled/"):
        assert client.post(path, {"enabled": "false"}).status_code == 404
    assert WebhookSubscription.objects.get(pk=theirs.pk).enabled
    assert client.post(f"/settings/webhooks/{theirs.pk}/delete/").status_code == 404
    assert WebhookSubscription.objects.filter(pk=theirs.pk).exists()


def test_the_forms_need_their_csrf_token(admin, tenant):
    issued = webhook_subscription_create(tenant=tenant, url="http://127.0.0.1:9/hook")
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin)
    assert client.post(f"/settings/webhooks/{issued.subscription.pk}/rotate/").status_code == 403
    assert client.post("/settings/webhooks/new/", {"url": "http://127.0.0.1:9/x"}).status_code == 403
    assert WebhookSubscription.objects.count() == 1


def test_delete_asks_then_deletes(admin_client, tenant):
    issued = webhook_subscription_create(tenant=tenant, url="http://127.0.0.1:9/hook")
    path = f"/settings/webhooks/{issued.subscription.pk}/delete/"
    assert "Its deliveries and their attempts are deleted" in admin_client.get(path).content.decode()
    assert admin_client.post(path).status_code == 302
    assert not WebhookSubscription.objects.exists()
