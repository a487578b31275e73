"""Twilio's webhooks on a real daphne server, where the intake answers them ahead of Django's request machinery,
and the inbound messages they keep reach their conversation through the real Celery worker."""

from __future__ import annotations

import http.client
import time
from urllib.parse import urlencode

import pytest
from django.db import close_old_connections

from channels_switch.models import InboundReceipt
from chat.models import Message, SenderKind
from tests.channels_switch.test_twilio_webhooks import (
    OTHER_TOKEN,
    inbound_params,
    sent_delivery,
    sid,
    twilio_signature,
)
from tests.channels_switch.twilio_support import ACCOUNT_SID, AUTH_TOKEN, twilio_connector
from tests.factories import QueueFactory, TenantFactory

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.celery, pytest.mark.django_db(transaction=True)]

WAIT_SECONDS = 60.0  # a bound for a loaded machine, never a speed check
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def post(server, path, params, *, token=AUTH_TOKEN, signed=None, headers=None, method="POST"):
    signature = twilio_signature(token, server.url + path, signed or (params if isinstance(params, dict) else {}))
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        body = urlencode(params).encode() if isinstance(params, dict) else params
        connection.request(
            method, path, body=body, headers={**FORM, "X-Twilio-Signature": signature, **(headers or {})}
        )
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        connection.close()


def eventually(check, what: str):
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        close_old_connections()
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"never happened: {what}")


@pytest.fixture
def sms(transactional_db):
    tenant = TenantFactory()
    return twilio_connector(tenant, queue=QueueFactory(tenant=tenant))


def inbound_path(connector) -> str:
    return f"/hooks/twilio/{connector.webhook_key}/inbound/"


def test_a_signed_sms_is_answered_by_the_intake_and_reaches_a_conversation_through_the_worker(
    daphne_server, celery_worker, sms
):
    status, headers, body = post(daphne_server, inbound_path(sms), inbound_params(sid(1)))
    assert (status, body) == (200, '<?xml version="1.0" encoding="UTF-8"?><Response></Response>')
    assert headers["Content-Type"] == "text/xml" and headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" not in headers  # Django's middleware never saw it: the intake answered
    message = eventually(
        lambda: Message.objects.filter(tenant_id=sms.tenant_id, sender_kind=SenderKind.VISITOR).first(),
        "the worker processed the kept message",
    )
    assert message.body == "Hello, is my order on its way?" and message.conversation.channel == "sms"
    assert InboundReceipt.objects.get(connector=sms).state == "done"
    # Twilio retries the same webhook: answered the same, stored once.
    assert post(daphne_server, inbound_path(sms), inbound_params(sid(1)))[0] == 200
    assert post(daphne_server, inbound_path(sms), inbound_params(sid(2), body="Any news?"))[0] == 200
    eventually(lambda: Message.objects.filter(tenant_id=sms.tenant_id).count() == 2, "the second message")
    time.sleep(0.5)
    assert InboundReceipt.objects.filter(connector=sms).count() == 2
    assert Message.objects.filter(tenant_id=sms.tenant_id).count() == 2


@pytest.mark.parametrize("forgery", ["no signature", "wrong token", "tampered body"])
def test_forged_requests_to_the_intake_are_refused_and_store_nothing(daphne_server, sms, forgery):
    params = inbound_params(sid(9))
    if forgery == "no signature":
        answer = post(daphne_server, inbound_path(sms), params, headers={"X-Twilio-Signature": ""})
    elif forgery == "wrong token":
        answer = post(daphne_server, inbound_path(sms), params, token=OTHER_TOKEN)
    else:
        answer = post(daphne_server, inbound_path(sms), {**params, "Body": "Refund me"}, signed=params)
    assert answer[0] == 403 and answer[2] == "Bad signature."
    assert not InboundReceipt.objects.exists() and not Message.objects.exists()


def test_the_intake_refuses_what_is_too_large_unknown_or_malformed(daphne_server, sms):
    big = {**inbound_params(sid(1)), "Body": "x" * 70_000}
    assert post(daphne_server, inbound_path(sms), big)[0] == 413
    assert post(daphne_server, "/hooks/twilio/not-a-key/inbound/", inbound_params(sid(1)))[0] == 404
    status, _, body = post(daphne_server, inbound_path(sms), inbound_params(sid(1), sender="not-a-number"))
    assert status == 400 and "international format" in body
    fields = urlencode([(f"f{i}", "x") for i in range(2000)]).encode()
    assert post(daphne_server, inbound_path(sms), fields)[0] == 400
    assert not InboundReceipt.objects.exists()
    # Not a form post: Django's view answers (the intake takes only what Twilio sends).
    status, headers, _ = post(daphne_server, inbound_path(sms), {}, method="GET")
    assert status == 405 and "Content-Security-Policy" in headers


def test_a_status_callback_through_the_intake_moves_the_delivery(daphne_server, sms):
    delivery = sent_delivery(sms.tenant, sms)
    path = f"/hooks/twilio/{sms.webhook_key}/status/"
    params = {"MessageSid": sid(1), "MessageStatus": "delivered", "AccountSid": ACCOUNT_SID}
    assert post(daphne_server, path, params)[0] == 204
    assert Message.objects.get(pk=delivery.message_id).delivery_status == "delivered"
