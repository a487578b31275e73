"""Channel-layer group names (always carrying the tenant) and the one way services publish events."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
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


# --- publishing ---------------------------------------------------------------------------------------
#
# In a server process, events committed on a worker thread (a consumer's database call, a view) are handed
# to the server's event loop and the thread goes on at once: it never waits for Redis, so the one thread
# Channels runs database calls on is not held a round trip per event. On the loop, each group has one FIFO
# drained by one task, so the events of a group leave in the order they were committed in this process
# (a message before the conversation.updated that follows it, an offer before its withdrawal); different
# groups go out concurrently. Without a bound loop (Celery, commands, tests without a server), the
# committing thread sends itself and waits, as before.

_loop: asyncio.AbstractEventLoop | None = None
_queues: dict[str, deque[dict[str, Any]]] = {}  # touched on the bound loop only
_drains: set[asyncio.Task[None]] = set()


def bind_event_loop() -> None:
    """Called on the server's loop (by the ASGI application): where committed events are sent from."""
    global _loop
    loop = asyncio.get_running_loop()
    if _loop is not loop:
        _loop = loop
        _queues.clear()  # a previous loop's (closed: tests) queues can never drain


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _dispatch(group: str, event: dict[str, Any]) -> None:
    """Runs at commit, on whatever thread committed; every committed event goes through here."""
    loop = _loop
    if loop is not None and loop.is_running():
        if _running_loop() is loop:
            _enqueue(group, event)
            return
        try:
            loop.call_soon_threadsafe(_enqueue, group, event)
            return
        except RuntimeError:  # the loop closed in between: send from here instead
            pass
    _send(group, event)


def _enqueue(group: str, event: dict[str, Any]) -> None:
    queue = _queues.get(group)
    if queue is not None:
        queue.append(event)  # its drain is running and will reach it, in order
        return
    _queues[group] = deque([event])
    task = asyncio.get_running_loop().create_task(_drain(group))
    _drains.add(task)
    task.add_done_callback(_drains.discard)


async def _drain(group: str) -> None:
    queue = _queues[group]
    layer = get_channel_layer()
    try:
        while queue:
            event = queue[0]
            if layer is not None:
                try:
                    await layer.group_send(group, event)
                except Exception:
                    # The database is the truth and clients resume by seq: a lost hint must not stop the
                    # events queued behind it.
                    logger.exception("group_send to %s failed (type %s)", group, event.get("type"))
            queue.popleft()
    finally:
        if _queues.get(group) is queue:
            del _queues[group]


async def drained() -> None:
    """Waits until every event handed to this loop has been sent (tests; a graceful stop)."""
    while _drains:
        await asyncio.gather(*list(_drains), return_exceptions=True)


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
    transaction.on_commit(lambda: _dispatch(group, payload))


async def publish_ephemeral(*, group: str, event: Mapping[str, Any]) -> None:
    """For consumers relaying state that is never stored (typing): nothing to wait for, nothing to roll back."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        await layer.group_send(group, dict(event))
    except Exception:
        logger.exception("group_send to %s failed (type %s)", group, event.get("type"))
