"""Channel connectors: provider secrets sealed at rest and never shown back, the rules of each provider, the
settings page and the API."""

from __future__ import annotations

import logging

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection
from django.urls import reverse
from rest_framework.test import APIClient

from channels_switch.models import ChannelConnector
from channels_switch.services import connector_save
from contactcenter import secretbox
from contactcenter.errors import ApplicationError
from contactcenter.secretbox import SecretUnreadable, keys_check, reseal, seal, unseal
from tests.factories import QueueFactory

pytestmark = pytest.mark.django_db

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "f" * 8 + "0123456789abcdef" + "e" * 8
SERVICE_SID = "MG" + "fedcba9876543210" * 2


@pytest.fixture
def keys(settings):
    """Sets SECRETS_KEYS for one test (and forgets the box built from the previous keys)."""

    def use(*values: bytes) -> None:
        settings.SECRETS_KEYS = [v.decode() for v in values]
        secretbox.keys_changed()

    yield use
    secretbox.keys_changed()


def twilio_sms(tenant, **fields):
    values = {
        "kind": "sms",
        "provider": "twilio",
        "account_sid": ACCOUNT_SID,
        "from_address": "+44 20 7946 0958",
        "secret": AUTH_TOKEN,
    }
    values.update(fields)
    return connector_save(tenant=tenant, **values)


def stored_column(connector: ChannelConnector) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret_sealed FROM channels_switch_channelconnector WHERE id = %s", [connector.pk])
        return cursor.fetchone()[0]


# --- the box ------------------------------------------------------------------------------------------------


def test_a_sealed_secret_opens_and_shows_nothing_of_itself(keys):
    keys(Fernet.generate_key())
    sealed = seal(AUTH_TOKEN)
    assert AUTH_TOKEN not in sealed and unseal(sealed) == AUTH_TOKEN
    assert seal(AUTH_TOKEN) != sealed  # a fresh IV each time: equal secrets do not look equal at rest


def test_rotation_puts_a_new_key_first_and_reseals(keys):
    old, new = Fernet.generate_key(), Fernet.generate_key()
    keys(old)
    sealed = seal(AUTH_TOKEN)
    keys(new, old)  # the new key seals, the old one still opens
    assert unseal(sealed) == AUTH_TOKEN
    resealed = reseal(sealed)
    keys(new)  # the old key dropped: only what was resealed still opens
    assert unseal(resealed) == AUTH_TOKEN
    with pytest.raises(SecretUnreadable):
        unseal(sealed)


def test_a_key_that_is_not_a_fernet_key_is_refused_by_name(settings):
    settings.SECRETS_KEYS = ["not-a-key"]
    secretbox.keys_changed()
    try:
        with pytest.raises(ImproperlyConfigured, match="SECRETS_KEYS"):
            seal("x")
    finally:
        secretbox.keys_changed()


def test_without_keys_of_its_own_a_deploy_check_warns(settings, keys):
    keys()
    assert [m.id for m in keys_check()] == ["switchboard.W001"]
    assert unseal(seal("works anyway")) == "works anyway"  # derived from SECRET_KEY meanwhile
    keys(Fernet.generate_key())
    assert keys_check() == []


def test_the_reseal_command_reseals_every_tenants_secrets(tenant, other_tenant, keys, capsys):
    old, new = Fernet.generate_key(), Fernet.generate_key()
    keys(old)
    mine, theirs = twilio_sms(tenant), twilio_sms(other_tenant)
    connector_save(tenant=tenant, kind="email", provider="sandbox", from_address="help@example.com")
    keys(new, old)
    call_command("secrets_reseal")
    assert "2 secret(s)" in capsys.readouterr().out
    keys(new)
    for connector in (mine, theirs):
        assert unseal(stored_column(connector)) == AUTH_TOKEN


# --- the rules of each provider -----------------------------------------------------------------------------


def test_a_twilio_connector_stores_its_token_sealed(tenant, keys):
    keys(Fernet.generate_key())
    connector = twilio_sms(tenant)
    assert connector.from_address == "+442079460958"
    column = stored_column(connector)
    assert AUTH_TOKEN not in column and unseal(column) == AUTH_TOKEN
    assert connector.secret_set_at is not None and connector.has_secret


def test_an_empty_secret_keeps_the_stored_one_and_a_new_one_replaces_it(tenant):
    connector = twilio_sms(tenant)
    before = stored_column(connector)
    connector_save(tenant=tenant, instance=connector, secret="", enabled=False)
    assert stored_column(connector) == before
    connector_save(tenant=tenant, instance=connector, secret="a" * 32)
    assert unseal(stored_column(connector)) == "a" * 32


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"account_sid": "AC123"}, "account_sid", "AC followed by 32"),
        ({"secret": "not-a-token"}, "secret", "32 characters"),
        ({"secret": None}, "secret", "Enter the auth token"),
        ({"from_address": "0207 946 0958"}, "from_address", "international format"),
        ({"from_address": "", "messaging_service_sid": "MG12"}, "messaging_service_sid", "MG followed by 32"),
        ({"from_address": ""}, "from_address", "or a messaging service"),
        ({"provider": "anymail"}, "provider", "cannot use anymail"),
    ],
)
def test_a_twilio_sms_connector_refuses_bad_settings_by_field(tenant, fields, field, message):
    with pytest.raises(ApplicationError) as refused:
        twilio_sms(tenant, **fields)
    assert message in refused.value.fields[field][0]
    assert not ChannelConnector.objects.exists()


def test_sms_may_send_through_a_messaging_service_alone(tenant):
    connector = twilio_sms(tenant, from_address="", messaging_service_sid=SERVICE_SID)
    assert connector.messaging_service_sid == SERVICE_SID and connector.from_address == ""


def test_whatsapp_sends_from_its_sender_not_a_messaging_service(tenant):
    with pytest.raises(ApplicationError) as refused:
        twilio_sms(tenant, kind="whatsapp", messaging_service_sid=SERVICE_SID)
    assert "WhatsApp sender" in refused.value.fields["messaging_service_sid"][0]


def test_an_email_connector_needs_its_provider_and_key(tenant):
    with pytest.raises(ApplicationError) as refused:
        connector_save(tenant=tenant, kind="email", provider="anymail", from_address="help@example.com", secret="k")
    assert "esp" in refused.value.fields
    with pytest.raises(ApplicationError) as refused:
        connector_save(tenant=tenant, kind="email", provider="anymail", from_address="help@example.com", esp="postmark")
    assert "API key" in refused.value.fields["secret"][0]
    connector = connector_save(
        tenant=tenant,
        kind="email",
        provider="anymail",
        esp="postmark",
        from_address="Help@Example.com",
        inbound_address="Replies.Example.com",
        secret="server-token",
    )
    assert (connector.from_address, connector.inbound_address) == ("help@example.com", "replies.example.com")


@pytest.mark.parametrize("inbound", ["not a domain", "replies", "@example.com", "a@b@c"])
def test_an_inbound_address_is_an_address_or_a_domain(tenant, inbound):
    with pytest.raises(ApplicationError) as refused:
        connector_save(
            tenant=tenant,
            kind="email",
            provider="anymail",
            esp="mailgun",
            from_address="help@example.com",
            inbound_address=inbound,
            secret="key",
        )
    assert "inbound_address" in refused.value.fields


def test_going_back_to_the_sandbox_forgets_the_account(tenant):
    connector = twilio_sms(tenant)
    connector = connector_save(tenant=tenant, instance=connector, provider="sandbox")
    connector.refresh_from_db()
    assert (connector.account_sid, connector.secret_sealed, connector.secret_set_at) == ("", "", None)


def test_another_tenants_queue_is_refused(tenant, other_tenant):
    with pytest.raises(ApplicationError) as refused:
        twilio_sms(tenant, queue=QueueFactory(tenant=other_tenant))
    assert "queue" in refused.value.fields


def test_each_connector_has_its_own_webhook_key(tenant, other_tenant):
    keys = {twilio_sms(tenant).webhook_key, twilio_sms(other_tenant).webhook_key}
    assert len(keys) == 2 and all(len(key) >= 32 for key in keys)


# --- the settings page and the API: the secret is written, never read back ---------------------------------


@pytest.fixture
def admin_client(client, admin):
    client.force_login(admin)
    return client


def test_the_page_sets_up_a_channel_and_never_shows_its_secret(admin_client, tenant, caplog):
    queue = QueueFactory(tenant=tenant)
    caplog.set_level(logging.DEBUG)
    response = admin_client.post(
        reverse("settings-channels-create"),
        {
            "kind": "sms",
            "provider": "twilio",
            "enabled": "on",
            "from_address": "+44 20 7946 0958",
            "queue": queue.pk,
            "account_sid": ACCOUNT_SID,
            "secret": AUTH_TOKEN,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    connector = ChannelConnector.objects.get(tenant=tenant)
    assert (connector.kind, connector.queue_id, unseal(connector.secret_sealed)) == ("sms", queue.pk, AUTH_TOKEN)
    for page in (reverse("settings-channels-list"), reverse("settings-channels-edit", args=[connector.pk])):
        shown = admin_client.get(page).content.decode()
        assert AUTH_TOKEN not in shown and connector.secret_sealed not in shown
    assert (
        "A secret is stored"
        in admin_client.get(reverse("settings-channels-edit", args=[connector.pk])).content.decode()
    )
    assert AUTH_TOKEN not in caplog.text


def test_a_refused_save_shows_the_error_by_its_field_and_not_the_secret_typed(admin_client, tenant):
    response = admin_client.post(
        reverse("settings-channels-create"),
        {
            "kind": "sms",
            "provider": "twilio",
            "from_address": "+44 20 7946 0958",
            "account_sid": "AC1",
            "secret": AUTH_TOKEN,
        },
    )
    page = response.content.decode()
    assert response.status_code == 200 and "AC followed by 32" in page
    assert AUTH_TOKEN not in page  # the password field is never filled back in
    assert not ChannelConnector.objects.exists()


def test_saving_the_page_with_an_empty_secret_keeps_the_stored_one(admin_client, tenant):
    connector = twilio_sms(tenant)
    before = stored_column(connector)
    response = admin_client.post(
        reverse("settings-channels-edit", args=[connector.pk]),
        {"provider": "twilio", "from_address": "+442079460958", "account_sid": ACCOUNT_SID, "secret": ""},
    )
    assert response.status_code == 302
    connector.refresh_from_db()
    assert stored_column(connector) == before and connector.enabled is False


def test_the_list_offers_to_set_up_each_missing_channel(admin_client, tenant):
    twilio_sms(tenant)
    page = admin_client.get(reverse("settings-channels-list")).content.decode()
    assert "?kind=email" in page and "?kind=whatsapp" in page and "?kind=sms" not in page


def test_the_api_takes_a_secret_and_never_returns_it(admin, tenant):
    client = APIClient()
    client.force_login(admin)
    body = {"kind": "whatsapp", "provider": "twilio", "from_address": "+1 415 555 2671", "account_sid": ACCOUNT_SID}
    response = client.post("/api/v1/channels/", {**body, "secret": AUTH_TOKEN}, format="json")
    assert response.status_code == 201, response.json()
    assert "secret" not in response.json() and response.json()["has_secret"] is True
    assert AUTH_TOKEN not in response.content.decode()
    listed = client.get("/api/v1/channels/")
    assert AUTH_TOKEN not in listed.content.decode() and "secret_sealed" not in listed.content.decode()


def test_the_api_refuses_another_tenants_queue(admin, tenant, other_tenant):
    client = APIClient()
    client.force_login(admin)
    response = client.post(
        "/api/v1/channels/",
        {
            "kind": "sms",
            "provider": "sandbox",
            "from_address": "+14155552671",
            "queue": QueueFactory(tenant=other_tenant).pk,
        },
        format="json",
    )
    assert response.status_code == 400 and "queue" in response.json()["error"]["fields"]


def test_a_twilio_channel_shows_the_webhook_urls_to_paste(admin_client, tenant, settings):
    connector = twilio_sms(tenant)
    page = admin_client.get(reverse("settings-channels-edit", args=[connector.pk])).content.decode()
    assert f"{settings.SITE_URL}/hooks/twilio/{connector.webhook_key}/inbound/" in page
    assert f"{settings.SITE_URL}/hooks/twilio/{connector.webhook_key}/status/" in page
