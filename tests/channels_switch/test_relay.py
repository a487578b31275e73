"""The relay: an agent's message on an SMS, WhatsApp or email conversation becomes one delivery row, written
with the message, and goes out once: retried on timeouts and 5xx, failed for good on a refusal, and settled
by the sweep when a worker died mid-send (looked up at the provider before any resend). Twilio and the ESP
are mocked at their HTTP edge only."""

from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import parse_qs

import pytest
from django.utils import timezone

from channels_switch.models import Delivery, DeliveryState, SandboxMessage
from channels_switch.services import connector_save, deliveries_sweep, delivery_attempt
from channels_switch.services.relay import MAX_ATTEMPTS, SENDING_LEASE, backoff_seconds
from chat.models import ConversationStatus, DeliveryStatus, Message
from chat.selectors import agent_actor_for
from chat.services import message_post
from tests.channels_switch.twilio_support import ACCOUNT_SID, CUSTOMER, twilio_connector
from tests.factories import ContactIdentityFactory, ConversationFactory

pytestmark = pytest.mark.django_db

MESSAGES_URL = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"


@pytest.fixture
def twilio(tenant):
    return twilio_connector(tenant)


def conversation_on(tenant, agent, channel="sms", address=CUSTOMER, kind="phone"):
    conversation = ConversationFactory(tenant=tenant, channel=channel, status=ConversationStatus.OPEN, assignee=agent)
    if address:
        ContactIdentityFactory(tenant=tenant, contact=conversation.contact, kind=kind, value=address)
    return conversation


def post(agent, conversation, body="Your order shipped today.", private=False):
    actor = agent_actor_for(agent)
    return message_post(
        actor=actor, conversation_id=conversation.pk, body=body, client_id=f"c-{body[:8]}-{private}", private=private
    ).message


def created(sid="SM" + "a" * 32, status="queued") -> dict:
    return {"sid": sid, "status": status, "num_segments": "1", "account_sid": ACCOUNT_SID}


def due_now(delivery: Delivery) -> None:
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())


def form(call) -> dict:
    return parse_qs(call.request.body)


# --- the outbox row, written with the message ------------------------------------------------------------


def test_an_agents_sms_message_is_stored_with_its_delivery(tenant, agent, twilio, django_capture_on_commit_callbacks):
    conversation = conversation_on(tenant, agent)
    with django_capture_on_commit_callbacks(execute=False) as triggers:
        message = post(agent, conversation)
    delivery = Delivery.objects.get(message=message)
    assert (delivery.state, delivery.to_address, delivery.connector_id) == ("pending", CUSTOMER, twilio.pk)
    assert (message.channel, message.delivery_status) == ("sms", DeliveryStatus.PENDING)
    assert len(triggers) >= 1  # the attempt is triggered only once the message is committed


def test_web_messages_and_private_notes_have_no_delivery(tenant, agent, twilio):
    web = ConversationFactory(tenant=tenant, status=ConversationStatus.OPEN, assignee=agent)
    post(agent, web)
    post(agent, conversation_on(tenant, agent), body="internal: refund approved", private=True)
    assert not Delivery.objects.exists()


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ("no_connector", "not set up or is turned off"),
        ("connector_off", "not set up or is turned off"),
        ("no_phone", "no phone number"),
    ],
)
def test_a_message_that_cannot_go_out_is_kept_and_marked_failed_with_why(tenant, agent, setup, reason):
    if setup != "no_connector":
        connector_save(tenant=tenant, kind="sms", provider="sandbox", from_address="+14155550100")
    if setup == "connector_off":
        connector_save(tenant=tenant, instance=tenant.channelconnector_set.get(), enabled=False)
    conversation = conversation_on(tenant, agent, address=None if setup == "no_phone" else CUSTOMER)
    message = post(agent, conversation)
    delivery = Delivery.objects.get(message=message)
    assert delivery.state == DeliveryState.FAILED and reason in delivery.error_message
    assert Message.objects.get(pk=message.pk).delivery_status == DeliveryStatus.FAILED


# --- attempts ---------------------------------------------------------------------------------------------


def test_an_attempt_sends_once_and_records_the_providers_id(tenant, agent, twilio, mocked, settings):
    message = post(agent, conversation_on(tenant, agent))
    mocked.post(MESSAGES_URL, json=created(), status=201)
    delivery = message.delivery
    assert delivery_attempt(delivery_id=delivery.pk) == "sent"
    assert delivery_attempt(delivery_id=delivery.pk) == "skipped"  # done: a repeated trigger sends nothing
    (call,) = mocked.calls
    callback = f"{settings.SITE_URL}/hooks/twilio/{twilio.webhook_key}/status/"
    expected = {"To": [CUSTOMER], "From": ["+14155550100"], "Body": ["Your order shipped today."]}
    assert form(call) == {**expected, "StatusCallback": [callback]}
    delivery.refresh_from_db()
    assert (delivery.state, delivery.provider_id, delivery.provider_status) == ("sent", "SM" + "a" * 32, "queued")
    assert Message.objects.get(pk=message.pk).delivery_status == DeliveryStatus.SENDING  # queued at Twilio


def test_two_5xx_then_201_is_one_message(tenant, agent, twilio, mocked):
    message = post(agent, conversation_on(tenant, agent))
    mocked.post(MESSAGES_URL, json={"code": 20500, "message": "Internal", "status": 500}, status=500)
    mocked.post(MESSAGES_URL, json={"code": 20500, "message": "Internal", "status": 500}, status=500)
    mocked.post(MESSAGES_URL, json=created(), status=201)
    delivery = message.delivery
    outcomes = []
    for _ in range(3):
        outcomes.append(delivery_attempt(delivery_id=delivery.pk))
        due_now(delivery)
    assert outcomes == ["retry", "retry", "sent"]
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == ("sent", 3) and len(mocked.calls) == 3


def test_a_retry_waits_its_backoff(tenant, agent, twilio, mocked):
    message = post(agent, conversation_on(tenant, agent))
    mocked.post(MESSAGES_URL, json={"message": "Service Unavailable", "status": 503}, status=503)
    assert delivery_attempt(delivery_id=message.delivery.pk) == "retry"
    assert delivery_attempt(delivery_id=message.delivery.pk) == "skipped"  # not due yet
    assert len(mocked.calls) == 1


def test_a_refusal_fails_for_good_with_the_providers_reason(tenant, agent, twilio, mocked):
    message = post(agent, conversation_on(tenant, agent))
    body = {"code": 21610, "message": "Attempt to send to unsubscribed recipient", "status": 400}
    mocked.post(MESSAGES_URL, json=body, status=400)
    assert delivery_attempt(delivery_id=message.delivery.pk) == "failed"
    delivery = Delivery.objects.get(pk=message.delivery.pk)
    assert (delivery.state, delivery.error_code) == ("failed", "21610") and "opted out" in delivery.error_message
    assert Message.objects.get(pk=message.pk).delivery_status == DeliveryStatus.FAILED


def test_an_outage_gives_up_after_the_last_attempt(tenant, agent, twilio, mocked):
    message = post(agent, conversation_on(tenant, agent))
    mocked.post(MESSAGES_URL, json={"message": "Service Unavailable", "status": 503}, status=503)
    delivery = message.delivery
    for _ in range(MAX_ATTEMPTS):
        delivery_attempt(delivery_id=delivery.pk)
        due_now(delivery)
    delivery.refresh_from_db()
    assert delivery.state == "failed" and delivery.error_message.startswith(f"Gave up after {MAX_ATTEMPTS} attempts")
    assert len(mocked.calls) == MAX_ATTEMPTS


@pytest.mark.parametrize("attempts", [1, 2, 5, 20])
def test_backoff_grows_with_jitter_and_a_ceiling(attempts, settings):
    settings.RELAY_BACKOFF_SECONDS = 2.0
    waits = [backoff_seconds(attempts) for _ in range(50)]
    base = min(300.0, 2.0 * 2 ** (attempts - 1))
    assert all(0.5 * base <= wait <= 1.5 * base for wait in waits) and len(set(waits)) > 1


def test_the_sandbox_keeps_what_it_sends_in_its_outbox(tenant, agent):
    connector_save(tenant=tenant, kind="sms", provider="sandbox", from_address="+14155550100")
    message = post(agent, conversation_on(tenant, agent))
    assert delivery_attempt(delivery_id=message.delivery.pk) == "sent"
    stored = SandboxMessage.objects.get()
    assert (stored.to_address, stored.body, stored.delivery_id) == (CUSTOMER, message.body, message.delivery.pk)


def test_an_email_keeps_its_message_id_on_every_attempt(tenant, agent, mocked):
    connector_save(
        tenant=tenant, kind="email", provider="anymail", esp="postmark", from_address="help@shop.example", secret="t"
    )
    message = post(agent, conversation_on(tenant, agent, channel="email", address="ada@example.org", kind="email"))
    mocked.post("https://api.postmarkapp.com/email", json={"ErrorCode": 500, "Message": "Down"}, status=500)
    ok = {"To": "ada@example.org", "MessageID": "pm-1", "ErrorCode": 0, "Message": "OK"}
    mocked.post("https://api.postmarkapp.com/email", json=ok, status=200)
    delivery = message.delivery
    assert delivery_attempt(delivery_id=delivery.pk) == "retry"
    due_now(delivery)
    assert delivery_attempt(delivery_id=delivery.pk) == "sent"
    ids = {header["Value"] for call in mocked.calls for header in json.loads(call.request.body)["Headers"]}
    assert ids == {f"<d{delivery.pk}.t{tenant.pk}@shop.example>"}


# --- the sweep: lost triggers and dead workers ----------------------------------------------------------------


def left_sending(delivery: Delivery, ago: timedelta = SENDING_LEASE + timedelta(seconds=5)) -> None:
    """As a worker killed mid-attempt leaves it."""
    since = timezone.now() - ago
    Delivery.objects.filter(pk=delivery.pk).update(state=DeliveryState.SENDING, sending_since=since, attempts=1)


def listing(*messages: dict) -> dict:
    return {"messages": list(messages), "next_page_uri": None, "page": 0, "page_size": 50}


def test_a_send_twilio_took_before_the_worker_died_is_not_sent_again(tenant, agent, twilio, mocked):
    message = post(agent, conversation_on(tenant, agent))
    left_sending(message.delivery)
    held = {**created(sid="SM" + "b" * 32, status="sent"), "body": message.body, "to": CUSTOMER}
    held["date_created"] = timezone.now().strftime("%a, %d %b %Y %H:%M:%S +0000")
    mocked.get(MESSAGES_URL, json=listing(held), status=200)
    assert deliveries_sweep()["deliveries_reconciled"] == 1
    delivery = Delivery.objects.get(pk=message.delivery.pk)
    assert (delivery.state, delivery.provider_id) == ("sent", "SM" + "b" * 32)
    (lookup,) = mocked.calls
    assert lookup.request.method == "GET"
    assert parse_qs(lookup.request.url.split("?", 1)[1])["To"] == [CUSTOMER]


def test_a_send_twilio_never_got_is_sent_again(tenant, agent, twilio, mocked, django_capture_on_commit_callbacks):
    message = post(agent, conversation_on(tenant, agent))
    left_sending(message.delivery)
    mocked.get(MESSAGES_URL, json=listing(), status=200)
    with django_capture_on_commit_callbacks(execute=False) as triggers:
        deliveries_sweep()
    delivery = Delivery.objects.get(pk=message.delivery.pk)
    assert delivery.state == "pending" and len(triggers) == 1
    mocked.post(MESSAGES_URL, json=created(), status=201)
    assert delivery_attempt(delivery_id=delivery.pk) == "sent"
    assert [call.request.method for call in mocked.calls] == ["GET", "POST"]


def test_when_twilio_cannot_be_asked_the_row_waits_for_the_next_sweep(tenant, agent, twilio, mocked):
    message = post(agent, conversation_on(tenant, agent))
    left_sending(message.delivery)
    mocked.get(MESSAGES_URL, json={"message": "Unavailable", "status": 503}, status=503)
    deliveries_sweep()
    assert Delivery.objects.get(pk=message.delivery.pk).state == "sending"


def test_an_attempt_still_within_its_lease_is_left_alone(tenant, agent, twilio, mocked):
    message = post(agent, conversation_on(tenant, agent))
    left_sending(message.delivery, ago=timedelta(seconds=5))
    assert deliveries_sweep()["deliveries_reconciled"] == 0 and not mocked.calls


def test_a_sandbox_send_the_worker_did_not_record_is_found_in_the_outbox(tenant, agent):
    connector = connector_save(tenant=tenant, kind="sms", provider="sandbox", from_address="+14155550100")
    message = post(agent, conversation_on(tenant, agent))
    from channels_switch.providers import sandbox_send

    sandbox_send(connector, to=CUSTOMER, body=message.body, delivery=message.delivery)  # then the worker died
    left_sending(message.delivery)
    deliveries_sweep()
    assert Delivery.objects.get(pk=message.delivery.pk).state == "sent"
    assert SandboxMessage.objects.count() == 1


def test_the_sweep_retriggers_a_pending_row_whose_task_was_lost(
    tenant, agent, twilio, django_capture_on_commit_callbacks, settings, monkeypatch
):
    message = post(agent, conversation_on(tenant, agent))
    Delivery.objects.filter(pk=message.delivery.pk).update(next_attempt_at=timezone.now() - timedelta(minutes=5))
    triggered = []
    monkeypatch.setattr("channels_switch.services.relay._trigger", lambda pk, countdown=None: triggered.append(pk))
    assert deliveries_sweep()["deliveries_retriggered"] == 1
    assert triggered == [message.delivery.pk]


def test_an_outcome_recorded_after_the_sweep_took_the_row_back_changes_nothing(tenant, agent, twilio, mocked):
    from channels_switch.services import relay

    message = post(agent, conversation_on(tenant, agent))
    claimed = relay._claim(message.delivery.pk)
    assert claimed is not None
    Delivery.objects.filter(pk=claimed.pk).update(sending_since=timezone.now() + timedelta(seconds=1))
    assert relay._record_sent(claimed, relay.Sent(provider_id="SMlate", status="queued")) == "superseded"
    assert Delivery.objects.get(pk=claimed.pk).provider_id == ""


# --- the task drains what queued behind its row --------------------------------------------------------------


def test_one_drain_sends_its_row_and_the_due_ones_behind_it_each_once(tenant, agent, twilio, mocked):
    from channels_switch.services import deliveries_drain

    mocked.post(MESSAGES_URL, json=created(), status=201)
    conversation = conversation_on(tenant, agent)
    messages = [post(agent, conversation, body=f"{i}: an update") for i in range(3)]
    later = Delivery.objects.get(message=messages[2])
    Delivery.objects.filter(pk=later.pk).update(next_attempt_at=timezone.now() + timedelta(minutes=5))  # not due
    assert deliveries_drain(delivery_id=messages[1].delivery.pk) == "sent"
    states = dict(Delivery.objects.values_list("message_id", "state"))
    assert states == {messages[0].pk: "sent", messages[1].pk: "sent", messages[2].pk: "pending"}
    assert [form(call)["Body"] for call in mocked.calls] == [["1: an update"], ["0: an update"]]  # its own first
    assert deliveries_drain(delivery_id=messages[0].delivery.pk) == "skipped"  # a later task finds it done
    assert len(mocked.calls) == 2
    assert Delivery.objects.get(message=messages[0]).attempts == 1


@pytest.mark.redis
def test_triggers_coalesce_while_drains_hold_their_slots_and_none_is_left_behind(
    tenant, agent, twilio, monkeypatch, settings, django_capture_on_commit_callbacks
):
    """Two drains at most are scheduled; a row stored while both slots are held gets no task of its own, and the
    drain that lets its slot go looks once more and triggers it."""
    from channels_switch.services import relay
    from channels_switch.tasks import deliver

    settings.CELERY_TASK_ALWAYS_EAGER = False
    relay._slots_client = None
    for slot in range(relay.DRAIN_SLOTS):
        relay._slots().delete(relay._slot_key(slot))
    queued: list[tuple] = []
    monkeypatch.setattr(deliver, "delay", lambda *args: queued.append(args))
    relay._trigger_new(101)
    relay._trigger_new(102)
    relay._trigger_new(103)  # both slots held: the running drains will take it
    assert queued == [(101, 0), (102, 1)]
    conversation = conversation_on(tenant, agent)
    with django_capture_on_commit_callbacks(execute=True):
        message = post(agent, conversation, body="left behind?")  # stored while both slots are held: no task
    assert len(queued) == 2
    relay._slot_release(0)  # the drain in slot 0 ends and looks again
    assert queued[-1] == (message.delivery.pk, 0)
    for slot in range(relay.DRAIN_SLOTS):
        relay._slots().delete(relay._slot_key(slot))
