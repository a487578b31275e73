"""Celery's part in outbound webhooks: only the trigger. What makes them hold is the outbox row and the sweep."""

from __future__ import annotations

from celery import shared_task

from contactcenter.services.webhooks_delivery import webhook_delivery_attempt


@shared_task(name="contactcenter.webhook_deliver", ignore_result=True)
def webhook_deliver(tenant_id: int, delivery_id: int) -> str:
    return webhook_delivery_attempt(tenant_id=tenant_id, delivery_id=delivery_id)
