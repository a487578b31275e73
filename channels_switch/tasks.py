"""Celery's part in the relay: only the trigger. What makes delivery hold is the outbox row and the sweep."""

from __future__ import annotations

from celery import shared_task

from channels_switch.services import deliveries_drain


@shared_task(name="channels_switch.deliver", ignore_result=True)
def deliver(delivery_id: int, slot: int | None = None) -> str:
    return deliveries_drain(delivery_id=delivery_id, slot=slot)
