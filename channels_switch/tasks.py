"""Celery's part in the relay: only the trigger. What makes delivery hold is the outbox row and the sweep."""

from __future__ import annotations

from celery import shared_task

from channels_switch.services import deliveries_drain, inbound_media_fetch


@shared_task(name="channels_switch.deliver", ignore_result=True)
def deliver(delivery_id: int, slot: int | None = None) -> str:
    return deliveries_drain(delivery_id=delivery_id, slot=slot)


@shared_task(name="channels_switch.fetch_media", ignore_result=True)
def fetch_media(media_id: int) -> str:
    return inbound_media_fetch(media_id=media_id)
