"""Outbound webhooks, the sending side: Standard Webhooks signatures checked with the `standardwebhooks` package,
retries against a real loopback HTTP receiver, the SSRF guard, disabling after a day of failures, and the outbox
written in the caller's transaction (or not at all)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.core import mail
from django.db import transaction
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from chat.selectors import VisitorActor, agent_actor_for
from chat.services import message_post
from chat.services.starting import conversation_start
from chat.services.state import conversation_close
from contactcenter.models import (
    Role,
    WebhookAttempt,
    WebhookDelivery,
    WebhookDeliveryState,
    WebhookEvent,
    WebhookSubscription,
)
from contactcenter.services.webhooks_delivery import (
    UrlRefused,
    url_check,
    webhook_deliveries_sweep,
    webhook_delivery_attempt,
)
from contactcenter.services.webhooks_out import (
    CONVERSATION_CLOSED,
    CONVERSATION_CREATED,
    MESSAGE_CREATED,
    webhook_event_record,
    webhook_subscription_create,
    webhook_subscription_rotate,
)
from tests.factories import ConversationFactory, MembershipFactory, WidgetFactory

pytestmark = [pytest.mark.django_db]


class Receiver:
    """A real HTTP server on 127.0.0.1 (a free port) in a thread: answers each POST with the next scripted
    (status, body, headers) (the last one repeats) and keeps every request it got."""

    def __init__(self) -> None:
        self.script: list[tuple[int, bytes, dict[str, str]]] = [(200, b"ok", {})]
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    status, answer, headers = receiver.script[0]
                    if len(receiver.script) > 1:
                        receiver.script.pop(0)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks?src=switchboard"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, *script: tuple[int, bytes, dict[str, str]] | int) -> None:
        self.script = [item if isinstance(item, tuple) else (item, b"", {}) for item in script]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def webhook_settings(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = True  # the loopback receiver
    settings.WEBHOOKS_BACKOFF_SECONDS = 0.0  # a retry is due at once: the test calls the next attempt itself
    settings.WEBHOOKS_TIMEOUT_SECONDS = 2.0
    return settings


def subscribe(tenant, url: str, event_types: tuple[str, ...] = ()):
    return webhook_subscription_create(tenant=tenant, url=url, event_types=event_types)


def record(tenant, data: dict[str, Any] | None = None) -> WebhookEvent:
    event = webhook_event_record(tenant_id=tenant.pk, type=CONVERSATION_CREATED, data=data or {"id": 1})
    assert event is not None
    return event


def only_delivery(event: WebhookEvent) -> WebhookDelivery:
    (delivery,) = WebhookDelivery.objects.filter(event=event)
    return delivery


def attempt(delivery: WebhookDelivery) -> str:
    return webhook_delivery_attempt(tenant_id=delivery.tenant_id, delivery_id=delivery.pk)


# --- signatures -----------------------------------------------------------------------------------------------


def test_a_delivery_verifies_with_the_standardwebhooks_library(tenant, receiver):
    issued = subscribe(tenant, receiver.url)
    event = record(tenant, {"id": 7, "channel": "web"})
    assert attempt(only_delivery(event)) == "delivered"

    ((headers, body),) = receiver.requests
    payload = Webhook(issued.secret).verify(body, headers)
    assert payload == {
        "type": "conversation.created",
        "timestamp": payload["timestamp"],
        "data": {"id": 7, "channel": "web"},
    }
    assert headers["webhook-id"] == event.public_id and event.public_id.startswith("msg_")
    assert headers["content-type"] == "application/json"
    assert receiver.requests and "/hooks?src=switchboard" in receiver.url
    # Another secret, or a changed body, does not verify.
    other = subscribe(tenant, receiver.url)
    with pytest.raises(WebhookVerificationError):
        Webhook(other.secret).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(issued.secret).verify(body.replace(b"7", b"8"), headers)


def test_during_a_rotation_both_secrets_verify_and_after_it_only_the_new_one(tenant, receiver):
    old = subscribe(tenant, receiver.url)
    new = webhook_subscription_rotate(subscription=old.subscription)
    assert new.secret != old.secret and new.secret.startswith("whsec_")
    attempt(only_delivery(record(tenant)))
    headers, body = receiver.requests[-1]
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert Webhook(old.secret).verify(body, headers)
    assert Webhook(new.secret).verify(body, headers)

    WebhookSubscription.objects.filter(pk=old.subscription.pk).update(
        previous_secret_expires_at=timezone.now() - timedelta(seconds=1)
    )
    attempt(only_delivery(record(tenant)))
    headers, body = receiver.requests[-1]
    assert len(headers["webhook-signature"].split(" ")) == 1
    assert Webhook(new.secret).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old.secret).verify(body, headers)


def test_secrets_are_sealed_at_rest(tenant):
    issued = subscribe(tenant, "http://127.0.0.1:9/x")
    row = WebhookSubscription.objects.get(pk=issued.subscription.pk)
    assert issued.secret not in row.secret_sealed
    assert issued.secret.removeprefix("whsec_") not in row.secret_sealed


# --- retries --------------------------------------------------------------------------------------------------


def test_a_500_is_retried_with_the_same_webhook_id_and_each_attempt_recorded(tenant, receiver):
    subscribe(tenant, receiver.url)
    receiver.answer((500, b"boom " * 200, {}), (200, b"thanks", {}))
    delivery = only_delivery(record(tenant))

    assert attempt(delivery) == "retry"
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == ("pending", 1, 500)
    assert attempt(delivery) == "delivered"

    first, second = receiver.requests
    assert first[0]["webhook-id"] == second[0]["webhook-id"] == delivery.event.public_id
    assert first[1] == second[1]
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == ("delivered", 2, 200)
    assert delivery.next_attempt_at is None and delivery.delivered_at is not None
    rows = list(WebhookAttempt.objects.filter(delivery=delivery).order_by("at", "pk"))
    assert [row.status_code for row in rows] == [500, 200]
    assert len(rows[0].response_body) == 500 and rows[0].response_body.startswith("boom")
    assert rows[1].response_body == "thanks"
    assert all(row.latency_ms >= 0 for row in rows) and rows[0].error == "HTTP 500"
    assert WebhookSubscription.objects.get().failing_since is None  # the success cleared the failure clock


def test_a_400_fails_without_a_retry(tenant, receiver):
    subscribe(tenant, receiver.url)
    receiver.answer(400)
    delivery = only_delivery(record(tenant))
    assert attempt(delivery) == "failed"
    assert attempt(delivery) == "skipped"
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.next_attempt_at) == ("failed", 1, None)
    assert len(receiver.requests) == 1


@pytest.mark.parametrize("status", [408, 429, 503])
def test_408_429_and_5xx_are_retried(tenant, receiver, status):
    subscribe(tenant, receiver.url)
    receiver.answer(status, 204)
    delivery = only_delivery(record(tenant))
    assert attempt(delivery) == "retry"
    assert attempt(delivery) == "delivered"
    assert len(receiver.requests) == 2


def test_a_429_waits_at_least_its_retry_after(tenant, receiver):
    subscribe(tenant, receiver.url)
    receiver.answer((429, b"", {"Retry-After": "120"}))
    delivery = only_delivery(record(tenant))
    assert attempt(delivery) == "retry"
    delivery.refresh_from_db()
    assert delivery.next_attempt_at >= timezone.now() + timedelta(seconds=110)
    assert attempt(delivery) == "skipped"  # not due yet


def test_a_connection_refused_is_retried_and_the_last_attempt_gives_up(tenant, settings):
    settings.WEBHOOKS_MAX_ATTEMPTS = 2
    closed = Receiver()
    url = closed.url
    closed.server.server_close()  # nothing listens there any more
    subscribe(tenant, url)
    delivery = only_delivery(record(tenant))
    assert attempt(delivery) == "retry"
    assert attempt(delivery) == "given_up"
    rows = WebhookAttempt.objects.filter(delivery=delivery)
    assert [row.status_code for row in rows] == [None, None]
    assert all(row.error.startswith("Connection failed") for row in rows)


def test_a_timeout_is_retried(tenant, settings, receiver):
    settings.WEBHOOKS_TIMEOUT_SECONDS = 0.3
    blocker = threading.Event()
    original = receiver.server.RequestHandlerClass.do_POST

    def slow(handler):
        blocker.wait(2)
        original(handler)

    receiver.server.RequestHandlerClass.do_POST = slow
    try:
        subscribe(tenant, receiver.url)
        delivery = only_delivery(record(tenant))
        assert attempt(delivery) == "retry"
    finally:
        blocker.set()
    row = WebhookAttempt.objects.get(delivery=delivery)
    assert row.status_code is None and row.error.startswith("Timed out")


def test_a_redirect_is_not_followed(tenant, receiver):
    subscribe(tenant, receiver.url)
    receiver.answer((302, b"", {"Location": "http://10.0.0.1/"}))
    delivery = only_delivery(record(tenant))
    assert attempt(delivery) == "failed"
    assert len(receiver.requests) == 1
    assert "redirects are not followed" in WebhookAttempt.objects.get(delivery=delivery).error


def test_an_attempt_in_flight_is_not_claimed_twice(tenant, receiver):
    """The claim holds the row a lease ahead: a second worker finds nothing due, and the holder's outcome stands."""
    subscribe(tenant, receiver.url)
    delivery = only_delivery(record(tenant))
    from contactcenter.services.webhooks_delivery import _claim

    claimed = _claim(tenant.pk, delivery.pk)
    assert claimed is not None
    assert _claim(tenant.pk, delivery.pk) is None
    assert attempt(delivery) == "skipped"
    assert receiver.requests == []


def test_a_delivery_left_by_a_dead_worker_is_sent_again_once_its_lease_ran_out(tenant, receiver):
    subscribe(tenant, receiver.url)
    delivery = only_delivery(record(tenant))
    from contactcenter.services.webhooks_delivery import Outcome, _claim, _record

    stale = _claim(tenant.pk, delivery.pk)  # the worker that died mid-send
    assert stale is not None
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert attempt(delivery) == "delivered"
    # The dead worker's late answer (were it only slow) no longer decides anything.
    assert _record(stale, Outcome(500, "HTTP 500", 1, "", True), at=timezone.now()) == "superseded"
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == ("delivered", 2)


# --- the SSRF guard -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://10.0.0.1/hook",
        "https://127.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://localhost/hook",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://224.0.0.1/hook",
        "https://0.0.0.0/hook",
        "https://192.168.1.20:8443/hook",
    ],
)
def test_internal_addresses_are_refused_when_private_ones_are_not_allowed(settings, url):
    settings.WEBHOOKS_ALLOW_PRIVATE = False
    with pytest.raises(UrlRefused, match="public addresses only"):
        url_check(url)


def test_plain_http_is_refused_when_private_addresses_are_not_allowed(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = False
    with pytest.raises(UrlRefused, match="https://"):
        url_check("http://93.184.215.14/hook")
    assert url_check("https://93.184.215.14/hook") == ["93.184.215.14"]
    settings.WEBHOOKS_ALLOW_PRIVATE = True
    assert url_check("http://127.0.0.1:9/hook") == ["127.0.0.1"]


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x", "https:///nohost", "https://user:pw@93.184.215.14/", "nonsense"]
)
def test_malformed_urls_are_refused(url):
    with pytest.raises(UrlRefused):
        url_check(url)


def test_a_send_to_an_address_that_became_internal_is_refused_without_a_request(tenant, receiver, settings):
    """Checked again at each send (a name may resolve elsewhere by then): the refusal is the attempt's outcome."""
    subscribe(tenant, receiver.url.replace("http://127.0.0.1", "https://localhost"))
    settings.WEBHOOKS_ALLOW_PRIVATE = False
    delivery = only_delivery(record(tenant))
    assert attempt(delivery) == "failed"
    assert receiver.requests == []
    row = WebhookAttempt.objects.get(delivery=delivery)
    assert row.status_code is None and "public addresses only: localhost → 127.0.0.1" in row.error


# --- disabled after a day of failures ---------------------------------------------------------------------------


def test_a_subscription_failing_for_a_day_is_disabled_and_its_admins_told(
    tenant, receiver, django_capture_on_commit_callbacks
):
    admin = MembershipFactory(tenant=tenant, role=Role.ADMIN).user
    MembershipFactory(tenant=tenant, role=Role.AGENT)
    issued = subscribe(tenant, receiver.url)
    receiver.answer(500)
    first = only_delivery(record(tenant))
    assert attempt(first) == "retry"
    subscription = WebhookSubscription.objects.get(pk=issued.subscription.pk)
    assert subscription.enabled and subscription.failing_since is not None  # the clock started, not yet a day

    WebhookSubscription.objects.filter(pk=subscription.pk).update(failing_since=timezone.now() - timedelta(hours=25))
    waiting = only_delivery(record(tenant))
    with django_capture_on_commit_callbacks(execute=True):
        assert attempt(first) == "retry"
    subscription.refresh_from_db()
    assert not subscription.enabled and subscription.disabled_at is not None
    assert "failed since" in subscription.disabled_reason
    waiting.refresh_from_db()
    assert waiting.state == WebhookDeliveryState.GIVEN_UP
    (email,) = mail.outbox
    assert email.to == [admin.email]
    assert receiver.url in email.body
    assert not subscription.admins_notice_pending  # told once: the sweep sends it no more
    assert webhook_deliveries_sweep()["webhook_disabled_notices"] == 0 and len(mail.outbox) == 1
    # No new events for it, and what was left is not sent.
    assert webhook_event_record(tenant_id=tenant.pk, type=CONVERSATION_CREATED, data={}) is None
    assert attempt(waiting) == "skipped"


def test_a_notice_a_dead_worker_left_is_sent_by_the_sweep(tenant, receiver):
    """The disabling committed but its worker died before the email: the flag written with it makes the sweep
    send the notice, once; a subscription enabled again in the meantime is not reported."""
    admin = MembershipFactory(tenant=tenant, role=Role.ADMIN).user
    receiver.answer(500)
    issued = subscribe(tenant, receiver.url)
    WebhookSubscription.objects.filter(pk=issued.subscription.pk).update(
        failing_since=timezone.now() - timedelta(days=2)
    )
    attempt(only_delivery(record(tenant)))  # disables; its on-commit send never runs (no captured callbacks)
    subscription = WebhookSubscription.objects.get(pk=issued.subscription.pk)
    assert not subscription.enabled and subscription.admins_notice_pending and mail.outbox == []

    assert webhook_deliveries_sweep()["webhook_disabled_notices"] == 1
    (email,) = mail.outbox
    assert email.to == [admin.email] and "stopped sending" in email.body
    assert webhook_deliveries_sweep()["webhook_disabled_notices"] == 0 and len(mail.outbox) == 1

    again = subscribe(tenant, "http://127.0.0.1:9/other")
    WebhookSubscription.objects.filter(pk=again.subscription.pk).update(admins_notice_pending=True)  # enabled
    assert webhook_deliveries_sweep()["webhook_disabled_notices"] == 0 and len(mail.outbox) == 1
    assert not WebhookSubscription.objects.get(pk=again.subscription.pk).admins_notice_pending


def test_a_failure_younger_than_a_day_does_not_disable(tenant, receiver):
    issued = subscribe(tenant, receiver.url)
    receiver.answer(500)
    WebhookSubscription.objects.filter(pk=issued.subscription.pk).update(
        failing_since=timezone.now() - timedelta(hours=23)
    )
    attempt(only_delivery(record(tenant)))
    assert WebhookSubscription.objects.get(pk=issued.subscription.pk).enabled
    assert mail.outbox == []


# --- the outbox: in the caller's transaction ---------------------------------------------------------------------


def test_a_rolled_back_change_leaves_no_event(tenant):
    subscribe(tenant, "http://127.0.0.1:9/x")

    class Refused(Exception):
        pass

    with pytest.raises(Refused), transaction.atomic():
        assert webhook_event_record(tenant_id=tenant.pk, type=CONVERSATION_CREATED, data={"id": 1}) is not None
        raise Refused
    assert not WebhookEvent.objects.exists()
    assert not WebhookDelivery.objects.exists()


def test_only_enabled_subscriptions_of_the_tenant_that_want_the_type_get_a_delivery(tenant, other_tenant):
    everything = subscribe(tenant, "http://127.0.0.1:9/all").subscription
    closed_only = subscribe(tenant, "http://127.0.0.1:9/closed", (CONVERSATION_CLOSED,)).subscription
    subscribe(other_tenant, "http://127.0.0.1:9/other")
    off = subscribe(tenant, "http://127.0.0.1:9/off").subscription
    WebhookSubscription.objects.filter(pk=off.pk).update(enabled=False)
    from contactcenter.services.webhooks_out import _subscribed

    _subscribed.clear()
    event = record(tenant)
    assert set(WebhookDelivery.objects.filter(event=event).values_list("subscription_id", flat=True)) == {everything.pk}
    closed = webhook_event_record(tenant_id=tenant.pk, type=CONVERSATION_CLOSED, data={})
    assert closed is not None
    assert set(WebhookDelivery.objects.filter(event=closed).values_list("subscription_id", flat=True)) == {
        everything.pk,
        closed_only.pk,
    }
    assert WebhookEvent.objects.filter(tenant=other_tenant).count() == 0


def test_no_subscription_no_event(tenant):
    assert webhook_event_record(tenant_id=tenant.pk, type=MESSAGE_CREATED, data={}) is None
    assert not WebhookEvent.objects.exists()


def test_an_unknown_event_type_is_a_bug(tenant):
    with pytest.raises(ValueError, match="unknown webhook event type"):
        webhook_event_record(tenant_id=tenant.pk, type="conversation.exploded", data={})


def test_the_services_emit_created_message_and_closed(tenant, agent):
    subscribe(tenant, "http://127.0.0.1:9/x")
    widget = WidgetFactory(tenant=tenant)
    started = conversation_start(
        widget=widget, visitor_id=None, answers={"name": "Jane"}, message="Hello there", client_id="c-1"
    )
    conversation = started.conversation
    types = list(WebhookEvent.objects.filter(tenant=tenant).order_by("pk").values_list("type", flat=True))
    assert types == [CONVERSATION_CREATED, MESSAGE_CREATED]
    created, first = WebhookEvent.objects.filter(tenant=tenant).order_by("pk")
    assert created.payload["id"] == conversation.pk and created.payload["channel"] == "web"
    assert first.payload["body"] == "Hello there" and first.payload["sender_kind"] == "visitor"

    assigned = ConversationFactory(tenant=tenant, status="open", assignee=agent)
    actor = agent_actor_for(agent)
    posted = message_post(actor=actor, conversation_id=assigned.pk, body="Hi, how can I help?", client_id="a-1")
    event = WebhookEvent.objects.filter(tenant=tenant, type=MESSAGE_CREATED).latest("pk")
    assert event.payload["id"] == posted.message.pk
    assert event.payload["sender_user_id"] == agent.pk
    assert json.loads(json.dumps(event.payload)) == event.payload

    visitor = VisitorActor(tenant_id=tenant.pk, widget_id=widget.pk, visitor_id=conversation.visitor_id)
    conversation_close(actor=visitor, conversation_id=conversation.pk)
    closed = WebhookEvent.objects.filter(tenant=tenant, type=CONVERSATION_CLOSED).get()
    assert closed.payload["id"] == conversation.pk and closed.payload["status"] == "closed"
    assert closed.payload["closed_at"] is not None
    # The system notice the close wrote is no message.created of its own.
    assert WebhookEvent.objects.filter(tenant=tenant, type=MESSAGE_CREATED).count() == 2


def test_an_inbound_conversation_and_a_delivery_status_change_are_recorded(tenant):
    from channels_switch.services.relay import message_delivery_set
    from chat.services.starting import conversation_open_on_channel
    from tests.factories import ContactFactory, MessageFactory

    subscribe(tenant, "http://127.0.0.1:9/x")
    conversation = conversation_open_on_channel(contact=ContactFactory(tenant=tenant), channel="sms")
    created = WebhookEvent.objects.get(tenant=tenant, type=CONVERSATION_CREATED)
    assert created.payload["id"] == conversation.pk and created.payload["channel"] == "sms"

    message = MessageFactory(tenant=tenant, conversation=conversation, sender_kind="agent", channel="sms")
    message_delivery_set(tenant_id=tenant.pk, message_id=message.pk, status="failed", error="Unreachable handset")
    event = WebhookEvent.objects.get(tenant=tenant, type="delivery.status_changed")
    assert event.payload == {
        "message_id": message.pk,
        "conversation_id": conversation.pk,
        "channel": "sms",
        "status": "failed",
        "error": "Unreachable handset",
    }
    # The same status again is no change, and no event.
    message_delivery_set(tenant_id=tenant.pk, message_id=message.pk, status="failed", error="Unreachable handset")
    assert WebhookEvent.objects.filter(tenant=tenant, type="delivery.status_changed").count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_tenant_with_a_subscription_leaves_the_one_statement_path_and_gets_its_event(agent, monkeypatch):
    """message_post outside a transaction on PostgreSQL is one statement, which writes no event: a tenant with a
    subscription takes the full path, and the message and its event commit together."""
    from chat.services.message_sql import _post_fast

    tenant = agent.membership.tenant
    conversation = ConversationFactory(tenant=tenant, status="open", assignee=agent)
    actor = agent_actor_for(agent)
    fast_calls = []
    original = _post_fast

    def spy(**kwargs):
        fast_calls.append(kwargs["client_id"])
        return original(**kwargs)

    import chat.services.messages as messages_module

    monkeypatch.setattr(messages_module, "_post_fast", spy)
    message_post(actor=actor, conversation_id=conversation.pk, body="before", client_id="m-1")
    assert fast_calls == ["m-1"] and not WebhookEvent.objects.exists()
    subscribe(tenant, "http://127.0.0.1:9/x")
    posted = message_post(actor=actor, conversation_id=conversation.pk, body="after", client_id="m-2")
    assert fast_calls == ["m-1"]
    event = WebhookEvent.objects.get(tenant=tenant, type=MESSAGE_CREATED)
    assert event.payload["id"] == posted.message.pk and event.payload["body"] == "after"
