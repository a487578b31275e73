"""Outbound webhooks through a real Celery worker on Redis: the commit's trigger reaches the receiver, and a delivery
a dead worker left claimed is sent again by the sweep once its lease ran out."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from contactcenter.models import WebhookAttempt, WebhookDelivery, WebhookDeliveryState
from contactcenter.services.webhooks_delivery import _claim, webhook_deliveries_sweep
from contactcenter.services.webhooks_out import MESSAGE_CREATED, webhook_event_record, webhook_subscription_create
from tests.contactcenter.test_webhooks_out_delivery import Receiver
from tests.factories import TenantFactory
from tests.support.servers import CeleryWorker

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.celery, pytest.mark.django_db(transaction=True)]

WAIT_SECONDS = 60.0  # a bound for a loaded machine, never a speed check


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


def wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_committed_event_reaches_the_receiver_through_the_worker(celery_worker: CeleryWorker, receiver, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = True  # the worker has it from DEBUG=1
    tenant = TenantFactory()
    issued = webhook_subscription_create(tenant=tenant, url=receiver.url)
    with transaction.atomic():
        event = webhook_event_record(tenant_id=tenant.pk, type=MESSAGE_CREATED, data={"id": 5})
    assert event is not None
    wait_for(lambda: len(receiver.requests) == 1, "the delivery")
    headers, body = receiver.requests[0]
    assert Webhook(issued.secret).verify(body, headers)["data"] == {"id": 5}
    wait_for(lambda: WebhookDelivery.objects.get(event=event).state == WebhookDeliveryState.DELIVERED, "the record")
    assert WebhookAttempt.objects.get(delivery__event=event).status_code == 200


def test_a_delivery_a_dead_worker_left_claimed_is_sent_by_the_sweep(celery_worker: CeleryWorker, receiver, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = True
    tenant = TenantFactory()
    webhook_subscription_create(tenant=tenant, url=receiver.url)
    # Recorded without its trigger reaching a worker (as if the task was lost), then claimed by a worker that
    # died before sending: pending, one attempt counted, its lease over.
    from unittest import mock

    with mock.patch("contactcenter.services.webhooks_out._trigger_all"), transaction.atomic():
        event = webhook_event_record(tenant_id=tenant.pk, type=MESSAGE_CREATED, data={"id": 6})
    assert event is not None
    delivery = WebhookDelivery.objects.get(event=event)
    assert _claim(tenant.pk, delivery.pk) is not None
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - timedelta(minutes=2))
    time.sleep(0.5)
    assert receiver.requests == []

    assert webhook_deliveries_sweep()["webhooks_retriggered"] >= 1
    wait_for(lambda: len(receiver.requests) == 1, "the re-driven delivery")
    assert receiver.requests[0][0]["webhook-id"] == event.public_id
    wait_for(lambda: WebhookDelivery.objects.get(pk=delivery.pk).state == WebhookDeliveryState.DELIVERED, "delivered")
    assert WebhookDelivery.objects.get(pk=delivery.pk).attempts == 2
