"""The relay through a real Celery worker on Redis to a loopback fake Twilio: retries, and a worker SIGKILLed at
each point of an attempt. After a restart and the sweep the customer has exactly one copy every time."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from django.utils import timezone

from channels_switch.models import Delivery, DeliveryState
from channels_switch.services import deliveries_sweep
from channels_switch.services.relay import _claim
from chat.models import ConversationStatus
from chat.selectors import agent_actor_for
from chat.services import message_post
from tests.channels_switch.twilio_support import ACCOUNT_SID, AUTH_TOKEN, CUSTOMER, twilio_connector
from tests.factories import ContactIdentityFactory, ConversationFactory, MembershipFactory, TenantFactory
from tests.support.fake_twilio import FakeTwilio
from tests.support.servers import CeleryWorker

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.celery, pytest.mark.django_db(transaction=True)]

WAIT_SECONDS = 60.0  # a bound for a loaded machine, never a speed check


@pytest.fixture
def fake(settings) -> Iterator[FakeTwilio]:
    twilio = FakeTwilio(ACCOUNT_SID, AUTH_TOKEN).start()
    settings.TWILIO_API_BASE_URL = twilio.url  # this process's sweep looks messages up there too
    yield twilio
    twilio.stop()


@pytest.fixture
def alone(celery_worker: CeleryWorker) -> Iterator[None]:
    """No other worker on the queue while these tests run and kill their own: the session's shared worker
    (pointed at the real Twilio, with the default backoff) is stopped meanwhile and started again after."""
    celery_worker.stop()
    yield
    celery_worker.launch()
    celery_worker.wait_ready()


@pytest.fixture
def workers(fake, alone) -> Iterator[Callable[[], CeleryWorker]]:
    started: list[CeleryWorker] = []

    def start() -> CeleryWorker:
        # Short retry waits: the test is about how many copies arrive, not how long the backoff is.
        worker = CeleryWorker(env_overrides={"TWILIO_API_BASE_URL": fake.url, "RELAY_BACKOFF_SECONDS": "0.2"})
        worker.launch()
        worker.wait_ready()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def sms(db):
    tenant = TenantFactory()
    agent = MembershipFactory(tenant=tenant).user
    twilio_connector(tenant)
    conversation = ConversationFactory(tenant=tenant, channel="sms", status=ConversationStatus.OPEN, assignee=agent)
    ContactIdentityFactory(tenant=tenant, contact=conversation.contact, kind="phone", value=CUSTOMER)

    def send(body: str) -> Delivery:
        actor = agent_actor_for(agent)
        message = message_post(actor=actor, conversation_id=conversation.pk, body=body, client_id=body[:60]).message
        return Delivery.objects.get(message=message)

    return send


def wait_for(check: Callable[[], bool], what: str, worker: CeleryWorker | None = None) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not check():
        if time.monotonic() > deadline:
            log = worker.log_tail(60) if worker else ""
            raise AssertionError(f"timed out waiting for {what}\n{log}")
        time.sleep(0.05)


def state_of(delivery: Delivery) -> str:
    return Delivery.objects.get(pk=delivery.pk).state


def kill(worker: CeleryWorker) -> None:
    os.kill(worker.pid, signal.SIGKILL)
    worker.process.wait(timeout=10)


def lease_over(delivery: Delivery) -> None:
    """The time a dead worker's attempt is given before the sweep settles it (SENDING_LEASE), as if passed."""
    Delivery.objects.filter(pk=delivery.pk).update(sending_since=timezone.now() - timedelta(minutes=5))


def test_two_500s_then_201_deliver_exactly_one_message(workers, fake, sms):
    worker = workers()
    fake.script([500, 500, "accept"])
    delivery = sms("Two failures first, then it goes.")
    wait_for(lambda: state_of(delivery) == DeliveryState.SENT, "the third attempt", worker)
    assert fake.posts == 3 and len(fake.copies_to(CUSTOMER)) == 1
    assert Delivery.objects.get(pk=delivery.pk).attempts == 3


def test_killed_after_claiming_before_the_call(workers, fake, sms):
    delivery = sms("Killed before the call.")
    # The state a worker leaves when it dies right after claiming the row, before any request.
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    assert _claim(delivery.pk) is not None and fake.posts == 0
    worker = workers()
    lease_over(delivery)
    deliveries_sweep()  # Twilio has nothing: sent again, by the worker
    wait_for(lambda: state_of(delivery) == DeliveryState.SENT, "the resend", worker)
    assert len(fake.copies_to(CUSTOMER)) == 1


def test_killed_during_the_call_before_twilio_took_it(workers, fake, sms):
    worker = workers()
    fake.script(["hang"])
    delivery = sms("Killed while Twilio was still reading.")
    assert fake.arrived.wait(WAIT_SECONDS), worker.log_tail()
    kill(worker)
    assert state_of(delivery) == DeliveryState.SENDING and fake.copies_to(CUSTOMER) == []
    worker = workers()
    lease_over(delivery)
    deliveries_sweep()
    wait_for(lambda: state_of(delivery) == DeliveryState.SENT, "the resend", worker)
    assert len(fake.copies_to(CUSTOMER)) == 1


def test_killed_after_twilio_took_it_before_the_commit(workers, fake, sms):
    worker = workers()
    fake.script(["accept-hang"])
    delivery = sms("Killed after Twilio took it.")
    assert fake.arrived.wait(WAIT_SECONDS), worker.log_tail()
    kill(worker)
    assert state_of(delivery) == DeliveryState.SENDING and len(fake.copies_to(CUSTOMER)) == 1
    workers()
    lease_over(delivery)
    deliveries_sweep()  # found at Twilio: recorded as sent, never sent again
    stored = Delivery.objects.get(pk=delivery.pk)
    assert stored.state == DeliveryState.SENT and stored.provider_id == fake.copies_to(CUSTOMER)[0].sid
    time.sleep(1.0)  # a resend, were there one, would have reached the fake by now
    assert len(fake.copies_to(CUSTOMER)) == 1 and fake.posts == 1
