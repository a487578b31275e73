"""Periodic work: one idempotent sweep over every deadline column, run by Celery beat."""

from __future__ import annotations

from celery import shared_task

from channels_switch.services import (
    dead_connections_sweep,
    deliveries_sweep,
    inbound_inbox_sweep,
    inbound_media_sweep,
)
from contactcenter.services.idempotency import idempotency_keys_sweep
from contactcenter.services.webhooks_delivery import webhook_deliveries_sweep
from queueing.services import agents_offline_sweep, routing_sweep


def sweep_once() -> dict[str, int]:
    """One pass over every deadline; the beat task and the embedded mode's loop (wiring/sweeper.py) run this."""
    offline = agents_offline_sweep()
    return {
        "sockets_cleared": offline.sockets_cleared,
        "agents_offline": len(offline.user_ids),
        "offers_withdrawn": offline.offers_withdrawn,
        **routing_sweep(),
        **deliveries_sweep(),
        **inbound_media_sweep(),
        **inbound_inbox_sweep(),
        "chats_moved_after_lost_connection": dead_connections_sweep(),
        **webhook_deliveries_sweep(),
        **idempotency_keys_sweep(),
    }


# The name it had before it moved into wiring/: beat schedules and queued messages name it.
@shared_task(name="contactcenter.tasks.sweep", ignore_result=True)
def sweep() -> dict[str, int]:
    return sweep_once()
