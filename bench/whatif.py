"""What-if patches for `--what-if` runs: measures a suggested change to the real path without editing it.

Never active in a normal run; each name is a change the bench report suggests to the realtime code.
- `db-pool`: the consumers' database calls run on a small thread pool (each thread its own connection)
  instead of asgiref's one shared thread, so PostgreSQL round trips of different sockets overlap.
- `async-publish`: `publish_on_commit` hands the group_send to the event loop and returns, instead of
  holding the database thread until the loop has run it and Redis has answered.
- `switch-interval`: `sys.setswitchinterval(0.0005)`: the database thread, which gives up the GIL at
  every PostgreSQL round trip, waits at most 0.5 ms (not 5 ms) to get it back from the busy event loop.
"""

from __future__ import annotations

import asyncio
import functools
import sys
import threading
from typing import Any

KNOWN = ("db-pool", "async-publish", "switch-interval")


def apply_what_if(spec: str) -> list[str]:
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in KNOWN]
    if unknown:
        raise ValueError(f"unknown what-if {unknown}: choose from {KNOWN}")
    if "db-pool" in names:
        _db_pool()
    if "async-publish" in names:
        _async_publish()
    if "switch-interval" in names:
        sys.setswitchinterval(0.0005)
    return names


def _db_pool() -> None:
    from channels.db import DatabaseSyncToAsync

    import agents.consumers
    import chat.consumers

    pooled = functools.partial(DatabaseSyncToAsync, thread_sensitive=False)
    chat.consumers.database_sync_to_async = pooled  # type: ignore[assignment]
    agents.consumers.database_sync_to_async = pooled  # type: ignore[assignment]


_main_loop: asyncio.AbstractEventLoop | None = None
_in_flight: set[asyncio.Task[Any]] = set()


def _async_publish() -> None:
    from channels.layers import get_channel_layer

    import contactcenter.realtime as realtime

    original = realtime._send

    def send_soon(group: str, event: Any) -> None:
        loop = _main_loop
        if loop is None or threading.current_thread() is threading.main_thread():
            original(group, event)
            return
        layer = get_channel_layer()

        def start() -> None:
            task = loop.create_task(layer.group_send(group, dict(event)))
            _in_flight.add(task)
            task.add_done_callback(_in_flight.discard)

        loop.call_soon_threadsafe(start)

    realtime._send = send_soon  # type: ignore[assignment]


def remember_loop() -> None:
    """Called from the ASGI application on the server's loop: where `async-publish` schedules its sends."""
    global _main_loop
    if _main_loop is None:
        _main_loop = asyncio.get_running_loop()
