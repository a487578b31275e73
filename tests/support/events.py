"""Losing events on purpose: what a failed publish does, so tests can check that clients repair it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from contactcenter import realtime


@contextmanager
def events_lost() -> Iterator[None]:
    """Every event committed meanwhile in this process is dropped on its way to the channel layer."""
    dispatch = realtime._dispatch
    realtime._dispatch = lambda group, event: None
    try:
        yield
    finally:
        realtime._dispatch = dispatch
