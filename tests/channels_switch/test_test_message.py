"""The settings page's "send a test message": real provider clients, mocked only at their HTTP edge, with the
exact requests checked."""

from __future__ import annotations

import base64
import json
import logging
from urllib.parse import parse_qs

import pytest
import requests
from cryptography.fernet import Fernet
from django.contrib.messages import get_messages
from django.core.cache import cache
from django.urls import reverse

from channels_switch.providers import ProviderError, twilio_send
from channels_switch.services import connector_save
from contactcenter import secretbox
from tests.channels_switch.twilio_support import ACCOUNT_SID, AUTH_TOKEN, twilio_connector
from tests.factories import ChannelConnectorFactory

pytestmark = pytest.mark.django_db

SERVICE_SID = "MG" + "fedcba9876543210" * 2
TWILIO_MESSAGES = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
POSTMARK_EMAIL = "https://api.postmarkapp.com/email"


@pytest.fixture(autouse=True)
def fresh_budget():
    cache.clear()  # the test-message rate limit counts per connector id, and ids repeat across tests


@pytest.fixture
def admin_client(client, admin):
    client.force_login(admin)
    return client


def twilio_created(sid="SM" + "a" * 32, status="queued", segments="1") -> dict:
    return {"sid": sid, "status": status, "num_segments": segments, "account_sid": ACCOUNT_SID, "body": "…"}


def form_of(call) -> dict[str, list[str]]:
    return parse_qs(call.request.body if isinstance(call.request.body, str) else call.request.body.decode())


def flashed(response) -> list[str]:
    """The messages the page will show next, oldest first (those of earlier unfollowed redirects too)."""
    return [str(m) for m in get_messages(response.wsgi_request)]


def send_test(admin_client, connector, to):
    return admin_client.post(reverse("settings-channels-test", args=[connector.pk]), {"to": to})


def test_an_sms_test_goes_to_twilio_as_twilio_expects_it(admin_client, tenant, mocked):
    connector = twilio_connector(tenant)
    mocked.post(TWILIO_MESSAGES, json=twilio_created(), status=201)
    response = send_test(admin_client, connector, "+44 20 7946 0958")
    assert response.status_code == 302
    (call,) = mocked.calls
    expected_auth = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    assert call.request.headers["Authorization"] == expected_auth
    form = form_of(call)
    assert form["To"] == ["+442079460958"] and form["From"] == ["+14155550100"]
    assert "Test message" in form["Body"][0] and "MessagingServiceSid" not in form
    assert flashed(response) == [f"Twilio accepted the test message: id SM{'a' * 32}, status queued, 1 segment."]


def test_sms_through_a_messaging_service_names_the_service_not_a_number(tenant, mocked):
    connector = twilio_connector(tenant, from_address="", messaging_service_sid=SERVICE_SID)
    mocked.post(TWILIO_MESSAGES, json=twilio_created(segments="2"), status=201)
    sent = twilio_send(connector, to="+442079460958", body="x" * 200)
    form = form_of(mocked.calls[0])
    assert form["MessagingServiceSid"] == [SERVICE_SID] and "From" not in form
    assert sent.segments == 2


def test_whatsapp_addresses_carry_the_whatsapp_prefix(tenant, mocked):
    connector = twilio_connector(tenant, kind="whatsapp")
    mocked.post(TWILIO_MESSAGES, json=twilio_created(), status=201)
    twilio_send(connector, to="+442079460958", body="hi")
    form = form_of(mocked.calls[0])
    assert form["To"] == ["whatsapp:+442079460958"] and form["From"] == ["whatsapp:+14155550100"]


def test_twilios_refusal_is_shown_in_plain_words(admin_client, tenant, mocked):
    connector = twilio_connector(tenant)
    body = {"code": 21610, "message": "Attempt to send to unsubscribed recipient", "status": 400}
    mocked.post(TWILIO_MESSAGES, json=body, status=400)
    response = send_test(admin_client, connector, "+442079460958")
    (message,) = flashed(response)
    assert "opted out" in message and "21610" in message and message.startswith("Twilio did not send it.")


@pytest.mark.parametrize(
    ("status", "body", "retryable"),
    [
        (400, {"code": 21211, "message": "Invalid 'To' Phone Number", "status": 400}, False),
        (401, {"code": 20003, "message": "Authenticate", "status": 401}, False),
        (429, {"code": 20429, "message": "Too Many Requests", "status": 429}, True),
        (500, {"code": 20500, "message": "Internal Server Error", "status": 500}, True),
        (503, {"message": "Service Unavailable", "status": 503}, True),
    ],
)
def test_a_refusal_says_whether_trying_again_may_help(tenant, mocked, status, body, retryable):
    connector = twilio_connector(tenant)
    mocked.post(TWILIO_MESSAGES, json=body, status=status)
    with pytest.raises(ProviderError) as failed:
        twilio_send(connector, to="+442079460958", body="hi")
    assert failed.value.retryable is retryable


def test_an_unreachable_twilio_may_be_tried_again(tenant, mocked):
    connector = twilio_connector(tenant)
    mocked.post(TWILIO_MESSAGES, body=requests.ConnectionError("connection refused"))
    with pytest.raises(ProviderError) as failed:
        twilio_send(connector, to="+442079460958", body="hi")
    assert (failed.value.code, failed.value.retryable) == ("unreachable", True)


def test_an_email_test_goes_through_the_esp_with_the_tenants_key(admin_client, tenant, mocked):
    connector = connector_save(
        tenant=tenant,
        kind="email",
        provider="anymail",
        esp="postmark",
        from_address="help@example.com",
        secret="postmark-server-token",
    )
    answer = {
        "To": "me@example.org",
        "SubmittedAt": "2026-12-03T07:00:00Z",
        "MessageID": "b7bc2f4a-e38e",
        "ErrorCode": 0,
    }
    mocked.post(POSTMARK_EMAIL, json={**answer, "Message": "OK"}, status=200)
    response = send_test(admin_client, connector, "Me@Example.org")
    (call,) = mocked.calls
    assert call.request.headers["X-Postmark-Server-Token"] == "postmark-server-token"
    sent = json.loads(call.request.body)
    assert (sent["From"], sent["To"], sent["Subject"]) == ("help@example.com", "me@example.org", "Test message")
    assert flashed(response) == ["Postmark accepted the test message: id b7bc2f4a-e38e, status sent."]


def test_an_esp_outage_is_shown_and_may_be_tried_again(admin_client, tenant, mocked):
    connector = connector_save(
        tenant=tenant, kind="email", provider="anymail", esp="postmark", from_address="help@example.com", secret="t"
    )
    mocked.post(POSTMARK_EMAIL, json={"ErrorCode": 500, "Message": "Internal error"}, status=500)
    response = send_test(admin_client, connector, "me@example.org")
    (message,) = flashed(response)
    assert message.startswith("Postmark did not send it. Postmark API response 500")


def test_a_malformed_recipient_is_refused_before_any_request(admin_client, tenant, mocked):
    connector = twilio_connector(tenant)
    response = send_test(admin_client, connector, "07946 0958")
    assert "international format" in flashed(response)[0]
    assert len(mocked.calls) == 0


def test_tests_are_limited_to_five_in_ten_minutes_per_channel(admin_client, tenant, mocked):
    connector = twilio_connector(tenant)
    mocked.post(TWILIO_MESSAGES, json=twilio_created(), status=201)
    for _ in range(5):
        assert "accepted" in flashed(send_test(admin_client, connector, "+442079460958"))[-1]
    assert "try again in" in flashed(send_test(admin_client, connector, "+442079460958"))[-1]
    assert len(mocked.calls) == 5


def test_credentials_sealed_with_a_dropped_key_are_reported_not_sent(admin_client, tenant, mocked, settings):
    connector = twilio_connector(tenant)
    settings.SECRETS_KEYS = [Fernet.generate_key().decode()]
    secretbox.keys_changed()
    try:
        response = send_test(admin_client, connector, "+442079460958")
    finally:
        secretbox.keys_changed()
    assert "enter them again" in flashed(response)[0] and len(mocked.calls) == 0


def test_a_sandbox_channel_has_no_test_button(admin_client, tenant, mocked):
    connector = ChannelConnectorFactory(tenant=tenant, kind="sms", provider="sandbox", from_address="+14155550100")
    page = admin_client.get(reverse("settings-channels-edit", args=[connector.pk])).content.decode()
    assert reverse("settings-channels-test", args=[connector.pk]) not in page
    assert "no provider to test" in flashed(send_test(admin_client, connector, "+442079460958"))[0]
    assert len(mocked.calls) == 0


def test_another_tenants_channel_cannot_be_tested(admin_client, other_tenant, mocked):
    connector = twilio_connector(other_tenant)
    assert send_test(admin_client, connector, "+442079460958").status_code == 404
    assert len(mocked.calls) == 0


def test_agents_cannot_send_tests(client, agent, tenant, mocked):
    connector = twilio_connector(tenant)
    client.force_login(agent)
    assert send_test(client, connector, "+442079460958").status_code == 403
    assert len(mocked.calls) == 0


def test_the_auth_token_is_never_logged(admin_client, tenant, mocked, caplog):
    connector = twilio_connector(tenant)
    mocked.post(TWILIO_MESSAGES, json=twilio_created(), status=201)
    caplog.set_level(logging.DEBUG)
    send_test(admin_client, connector, "+442079460958")
    assert len(mocked.calls) == 1 and AUTH_TOKEN not in caplog.text
