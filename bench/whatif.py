"""What-if patches for `--what-if` runs: measures a suggested change to the real path without editing it.

Never active in a normal run; each name is a change the bench report suggests to the realtime code.
- `db-pool`: the consumers' database calls run on a small thread pool (each thread its own connection)
  instead of asgiref's one shared thread, so PostgreSQL round trips of different sockets overlap.
- `switch-interval`: `sys.setswitchinterval(0.0005)`: the database thread, which gives up the GIL at
  every PostgreSQL round trip, waits at most 0.5 ms (not 5 ms) to get it back from the busy event loop.
"""

from __future__ import annotations

import functools
import sys

KNOWN = ("db-pool", "switch-interval")


def apply_what_if(spec: str) -> list[str]:
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in KNOWN]
    if unknown:
        raise ValueError(f"unknown what-if {unknown}: choose from {KNOWN}")
    if "db-pool" in names:
        _db_pool()
    if "switch-interval" in names:
        sys.setswitchinterval(0.0005)
    return names


def _db_pool() -> None:
    from channels.db import DatabaseSyncToAsync

    import agents.consumers
    import chat.consumers
    import chat.conversation_stream

    pooled = functools.partial(DatabaseSyncToAsync, thread_sensitive=False)
    chat.consumers.database_sync_to_async = pooled  # type: ignore[assignment]
    chat.conversation_stream.database_sync_to_async = pooled  # type: ignore[assignment]
    agents.consumers.database_sync_to_async = pooled  # type: ignore[assignment]
