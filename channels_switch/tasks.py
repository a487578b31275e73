"""Celery's part in the relay and the inbox: only the trigger. What makes them hold is the row and the sweep."""

from __future__ import annotations

from celery import shared_task

from channels_switch.services import deliveries_drain, inbound_drain, inbound_media_fetch, inbound_process


@shared_task(name="channels_switch.deliver", ignore_result=True)
def deliver(delivery_id: int, slot: int | None = None) -> str:
    return deliveries_drain(delivery_id=delivery_id, slot=slot)


@shared_task(name="channels_switch.fetch_media", ignore_result=True)
def fetch_media(media_id: int) -> str:
    return inbound_media_fetch(media_id=media_id)


@shared_task(name="channels_switch.process_inbound", ignore_result=True)
def process_inbound(receipt_id: int) -> str:
    return "done" if inbound_process(receipt_id=receipt_id) is not None else "skipped"


@shared_task(name="channels_switch.drain_inbound", ignore_result=True)
def drain_inbound(connector_id: int) -> int:
    return inbound_drain(connector_id=connector_id)
