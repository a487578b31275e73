"""Channel-layer group names (always carrying the tenant) and the one way services publish events."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

# Group names are built here only, from integer ids read from the database: never from user input.


def conversation_group(tenant_id: int, conversation_id: int) -> str:
    """Everyone in a conversation: the visitor's sockets and the subscribed agents' sockets."""
    return f"t{int(tenant_id)}.conv.{int(conversation_id)}"


def conversation_agents_group(tenant_id: int, conversation_id: int) -> str:
    """The agents of a conversation only: private notes and agent-only state never reach a visitor."""
    return f"t{int(tenant_id)}.conv.{int(conversation_id)}.agents"


def agent_group(tenant_id: int, user_id: int) -> str:
    """Every console socket of one agent: offers, assignments, presence of their other tabs."""
    return f"t{int(tenant_id)}.agent.{int(user_id)}"


def tenant_agents_group(tenant_id: int) -> str:
    """Every console socket of a tenant: colleagues' presence and waiting-list changes."""
    return f"t{int(tenant_id)}.agents"


def _send(group: str, event: Mapping[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, dict(event))
    except Exception:
        # The database is the truth and clients resume by seq: a lost hint must not turn a committed
        # change into an error for the caller.
        logger.exception("group_send to %s failed (type %s)", group, event.get("type"))


def publish_on_commit(*, group: str, event: Mapping[str, Any]) -> None:
    """Sends `event` to `group` once the current transaction commits (at once outside a transaction).

    The only way services publish, so an event never announces a row that was rolled back.
    """
    if "type" not in event:
        raise ValueError("an event needs a type")
    payload = dict(event)
    transaction.on_commit(lambda: _send(group, payload))


async def publish_ephemeral(*, group: str, event: Mapping[str, Any]) -> None:
    """For consumers relaying state that is never stored (typing): nothing to wait for, nothing to roll back."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        await layer.group_send(group, dict(event))
    except Exception:
        logger.exception("group_send to %s failed (type %s)", group, event.get("type"))
