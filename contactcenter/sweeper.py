"""Embedded mode's stand-in for Celery beat: the same sweep, in a loop on a thread of the server process."""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import close_old_connections, connections

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_started: threading.Thread | None = None
_stop = threading.Event()


def interval_seconds() -> float:
    schedule = getattr(settings, "CELERY_BEAT_SCHEDULE", {}).get("sweep", {}).get("schedule", 5.0)
    return max(1.0, float(schedule))


def run_once() -> dict[str, int]:
    """One pass of exactly what beat runs: the function behind contactcenter.tasks.sweep."""
    from contactcenter.tasks import sweep_once

    return sweep_once()


def _loop() -> None:
    interval = interval_seconds()
    while not _stop.wait(interval):
        # This thread's own connection: dropped when broken or past CONN_MAX_AGE, like a request's.
        close_old_connections()
        try:
            run_once()
        except Exception:
            # A failed pass (database restarting, a lock timeout) must not end the loop: the next one retries.
            logger.exception("in-process sweep failed")
        finally:
            close_old_connections()
    connections.close_all()


def ensure_started() -> bool:
    """Starts the loop once per process when settings.SWEEP_IN_PROCESS; True when it runs (or already ran)."""
    global _started
    if not getattr(settings, "SWEEP_IN_PROCESS", False):
        return False
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
