"""Embedded mode's stand-in for Celery beat: the same sweep, in a loop on a thread of the server process."""

from __future__ import annotations

import asyncio
import logging
import threading

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import close_old_connections, connections

from contactcenter.wiring.tasks import sweep_once

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_started: threading.Thread | None = None
_stop = threading.Event()
# The server's event loop, seen by the first connection that started the sweeper (routing.ServerLoop; see _pass).
_server_loop: asyncio.AbstractEventLoop | None = None


def interval_seconds() -> float:
    schedule = getattr(settings, "CELERY_BEAT_SCHEDULE", {}).get("sweep", {}).get("schedule", 5.0)
    return max(1.0, float(schedule))


def run_once() -> dict[str, int]:
    """One pass of exactly what beat runs (the function behind the sweep task of tasks.py)."""
    return sweep_once()


def _pass(interval: float) -> None:
    loop = _server_loop
    if loop is None or not loop.is_running():
        run_once()
        return
    # On the server's loop, like a consumer's database work: the events a pass publishes (agents going
    # offline) then reach the in-memory channel layer from the loop that owns its queues, which are not
    # thread-safe, instead of from this thread.
    asyncio.run_coroutine_threadsafe(database_sync_to_async(run_once)(), loop).result(timeout=max(30.0, interval))


def _loop() -> None:
    interval = interval_seconds()
    while not _stop.wait(interval):
        # This thread's own connection: dropped when broken or past CONN_MAX_AGE, like a request's.
        close_old_connections()
        try:
            _pass(interval)
        except Exception:
            # A failed pass (database restarting, a lock timeout) must not end the loop: the next one retries.
            logger.exception("in-process sweep failed")
        finally:
            close_old_connections()
    connections.close_all()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None  # outside the server's loop (a test, a command): passes then run on the sweeper's thread


def ensure_started() -> bool:
    """Starts the loop once per process when settings.SWEEP_IN_PROCESS; True when it runs (or already ran)."""
    global _started, _server_loop
    if not getattr(settings, "SWEEP_IN_PROCESS", False):
        return False
    _server_loop = _running_loop() or _server_loop
    with _lock:
        if _started is not None and _started.is_alive():
            return True
        _stop.clear()
        # A daemon thread: it never keeps the server from exiting, and it owns its own DB connection.
        _started = threading.Thread(target=_loop, name="switchboard-sweeper", daemon=True)
        _started.start()
        logger.info("in-process sweeper started (every %.0f s)", interval_seconds())
    return True


def stop(timeout: float = 5.0) -> None:
    """Stops the loop (tests, orderly shutdown)."""
    global _started
    with _lock:
        thread, _started = _started, None
    _stop.set()
    if thread is not None:
        thread.join(timeout)
