"""Sets Django up in the bench process, migrates the throwaway database and creates the real path's data."""

from __future__ import annotations

import time
from collections.abc import Callable

import django

from bench.loadclient import Driver


def prepare(*, pairs: int, real: bool) -> Callable[[], Driver]:
    django.setup()
    from django.core.management import call_command
    from django.db import connections

    started = time.monotonic()
    call_command("migrate", verbosity=0, interactive=False)
    print(f"migrated in {time.monotonic() - started:.1f} s", flush=True)
    factory: Callable[[], Driver] = _unavailable
    if real:
        from bench.realpath import seed_real

        factory = seed_real(pairs=pairs)
    connections.close_all()  # the server owns the database during the runs
    return factory


def _unavailable() -> Driver:
    raise RuntimeError("the real path is not available")
