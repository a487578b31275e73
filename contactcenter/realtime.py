"""Channel-layer group names (always carrying the tenant) and the one way services publish events."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import close_old_connections, transaction

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


def tenant_inbox_group(tenant_id: int) -> str:
    """The console sockets of a tenant whose inbox is on screen (they join and leave it): which conversations
    changed, by id only. A group of its own so that every message does not reach every console."""
    return f"t{int(tenant_id)}.inbox"


# --- publishing ---------------------------------------------------------------------------------------
#
# In a server process, events committed on a worker thread (a consumer's database call, a view) are handed
# to the server's event loop and the thread goes on at once: it never waits for Redis, so the one thread
# Channels runs database calls on is not held a round trip per event. On the loop, one outbox keeps every
# event in the order it was committed in this process (a message before the conversation.updated that
# follows it, an offer before its withdrawal), and one task sends it: whatever has gathered goes out as one
# batch, on the PubSub layer as one Redis pipeline (contactcenter/channel_layer.py), so under load a round
# trip carries many events instead of one. Layers without `group_send_many` get each group's events in
# order, groups concurrently. Without a bound loop (Celery, commands, tests without a server), the
# committing thread sends itself and waits, as before.

MAX_PUBLISH_BATCH = 256  # events per round trip

_loop: asyncio.AbstractEventLoop | None = None
_loop_pid = 0  # the process the bound loop runs in: a forked child (Celery's prefork pool) has no such thread
_outbox: deque[tuple[str, dict[str, Any]]] = deque()  # touched on the bound loop only
_sender: asyncio.Task[None] | None = None
_drains: set[asyncio.Task[None]] = set()


def bind_event_loop() -> None:
    """Called on the server's loop (by the ASGI application): where committed events are sent from."""
    global _loop, _sender, _loop_pid
    loop = asyncio.get_running_loop()
    _loop_pid = os.getpid()
    if _loop is not loop:
        _loop = loop
        _outbox.clear()  # a previous loop's (closed: tests) events can never be sent
        _sender = None


def start_background_publisher() -> None:
    """For a process without a server loop (a Celery worker's process, the bench): one daemon thread runs an
    event loop bound as above, so a committing thread hands its events over and goes on, instead of paying for
    an event loop of its own per event (async_to_sync). Events still leave in commit order, batched. Idempotent;
    call it in the process that publishes (after a fork, not before)."""
    if _loop is not None and _loop_pid == os.getpid() and _loop.is_running():
        return
    ready = threading.Event()

    def bound() -> None:
        bind_event_loop()
        ready.set()

    def run() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        loop.call_soon(bound)
        loop.run_forever()

    threading.Thread(target=run, name="realtime-publisher", daemon=True).start()
    ready.wait(10)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _dispatch(group: str, event: dict[str, Any]) -> None:
    """Runs at commit, on whatever thread committed; every committed event goes through here."""
    loop = _loop
    if loop is not None and _loop_pid == os.getpid() and loop.is_running():
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
    global _sender
    _outbox.append((group, event))
    if _sender is None:  # else the running sender reaches it, in order
        _sender = asyncio.get_running_loop().create_task(_send_outbox())
        _drains.add(_sender)
        _sender.add_done_callback(_drains.discard)


async def _send_outbox() -> None:
    global _sender
    layer = get_channel_layer()
    try:
        while _outbox:
            batch = [_outbox.popleft() for _ in range(min(len(_outbox), MAX_PUBLISH_BATCH))]
            if layer is not None:
                await _send_batch(layer, batch)
    finally:
        if _sender is asyncio.current_task():  # not a previous (closed) loop's sender: tests rebind loops
            _sender = None


@dataclass
class PublishStats:
    """This process's publishing since start: what needed the per-event fallback, and what was lost anyway."""

    batches: int = 0
    fallbacks: int = 0  # batches (or events of one) that `group_send_many` could not send, sent one by one
    events_failed: int = 0  # events not sent even on their own: a hint lost, repaired from the database


publish_stats = PublishStats()


async def _send_batch(layer: Any, batch: list[tuple[str, dict[str, Any]]]) -> None:
    """Sends a batch in order; whatever the pipeline could not send goes again event by event.

    A failed pipeline (a dropped connection, a Redis restart between two batches) falls back to one
    `group_send` per event, in order per group, so one bad round trip does not drop a batch of offers or
    presence changes. Redis may have run part of a failed pipeline, so an event can arrive twice: every
    event is idempotent for its clients (messages by seq, conversations by version, offers and waiting
    items keyed by conversation). An event that fails on its own too is counted and logged, and never
    stops the events behind it: the database is the truth and clients resume by seq.
    """
    publish_stats.batches += 1
    many = getattr(layer, "group_send_many", None)
    if many is not None:
        try:
            errors = await many(batch)
        except Exception as exc:
            logger.warning("group_send_many of %d events failed (%r): sending them one by one", len(batch), exc)
        else:
            failed = [item for item, error in zip(batch, errors, strict=True) if error is not None]
            for (group, event), error in zip(batch, errors, strict=True):
                if error is not None:
                    logger.warning("group_send to %s failed in a batch (type %s): %r", group, event.get("type"), error)
            if not failed:
                return
            batch = failed
        publish_stats.fallbacks += 1
    by_group: dict[str, list[dict[str, Any]]] = {}
    for group, event in batch:
        by_group.setdefault(group, []).append(event)
    await asyncio.gather(*(_send_group(layer, group, events) for group, events in by_group.items()))


async def _send_group(layer: Any, group: str, events: list[dict[str, Any]]) -> None:
    for event in events:
        try:
            await layer.group_send(group, event)
        except Exception:
            publish_stats.events_failed += 1
            logger.exception("group_send to %s failed (type %s)", group, event.get("type"))


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


# --- coalescing ---------------------------------------------------------------------------------------------
#
# Some announcements are a state read fresh from the database, not a change (a queue line's places): ten changes
# within a moment need one read and one round of events, not ten. In a process with a bound loop, `coalesced`
# runs the read once per key per `delay`, on a thread of the loop's executor (never on the loop); without one
# (Celery's forked children, commands, tests without a server) it runs at once on the calling thread.

_coalescing: set[Hashable] = set()  # keys with a run pending; touched on the bound loop only


def coalesced(key: Hashable, delay: float, fn: Callable[[], None]) -> None:
    """Runs `fn` (a read of the database that publishes what it finds) once within `delay` seconds for every
    call with the same key in this process; at once where no loop is bound. Call it after commit."""
    loop = _loop
    if delay <= 0 or loop is None or _loop_pid != os.getpid() or not loop.is_running():
        fn()
        return

    def schedule() -> None:
        if key in _coalescing:
            return  # the pending run reads after this change committed: it covers it
        _coalescing.add(key)
        loop.call_later(delay, start)

    def start() -> None:
        _coalescing.discard(key)  # a change from now on needs a read of its own
        loop.run_in_executor(None, run)

    def run() -> None:
        close_old_connections()
        try:
            fn()
        except Exception:
            logger.exception("coalesced run %r failed", key)
        finally:
            close_old_connections()

    try:
        loop.call_soon_threadsafe(schedule)
    except RuntimeError:  # the loop closed in between
        fn()


async def publish_ephemeral(*, group: str, event: Mapping[str, Any]) -> None:
    """For consumers relaying state that is never stored (typing): nothing to wait for, nothing to roll back."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        await layer.group_send(group, dict(event))
    except Exception:
        logger.exception("group_send to %s failed (type %s)", group, event.get("type"))
