"""`realtime.coalesced`: a read that publishes what it finds runs once per key per moment in a process with a
bound loop (a queue's line re-announced once for many answers), and at once where none is bound."""

from __future__ import annotations

import asyncio
import threading
import time

from contactcenter import realtime


def test_without_a_bound_loop_it_runs_at_once_every_time(monkeypatch):
    monkeypatch.setattr(realtime, "_loop", None)
    runs: list[int] = []
    for n in range(3):
        realtime.coalesced(("line", 1), 0.25, lambda n=n: runs.append(n))
    assert runs == [0, 1, 2]


def test_with_a_bound_loop_calls_within_the_delay_run_once_off_the_loop_and_later_calls_run_again(monkeypatch):
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(realtime, "_loop", loop)
    monkeypatch.setattr(realtime, "_loop_pid", __import__("os").getpid())
    monkeypatch.setattr(realtime, "_coalescing", set())
    runs: list[tuple[str, int]] = []
    ran = threading.Event()
    monkeypatch.setattr(realtime, "close_old_connections", lambda: None)  # no database in this test

    def announce(key: str) -> None:
        runs.append((key, threading.get_ident()))
        ran.set()

    try:
        for _ in range(5):
            realtime.coalesced(("line", 1), 0.2, lambda: announce("a"))
        realtime.coalesced(("line", 2), 0.2, lambda: announce("b"))
        deadline = time.monotonic() + 5
        while len(runs) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)  # nothing more comes of the first five calls
        assert sorted(key for key, _ in runs) == ["a", "b"]
        loop_thread = thread.ident
        assert all(ident != loop_thread for _, ident in runs)  # never on the loop itself
        realtime.coalesced(("line", 1), 0.05, lambda: announce("a"))
        deadline = time.monotonic() + 5
        while len(runs) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [key for key, _ in runs].count("a") == 2
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_a_failing_run_is_logged_and_the_key_can_run_again(monkeypatch, caplog):
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(realtime, "_loop", loop)
    monkeypatch.setattr(realtime, "_loop_pid", __import__("os").getpid())
    monkeypatch.setattr(realtime, "_coalescing", set())
    monkeypatch.setattr(realtime, "close_old_connections", lambda: None)
    runs: list[str] = []

    def broken() -> None:
        raise RuntimeError("the database went away")

    try:
        realtime.coalesced(("line", 1), 0.01, broken)
        deadline = time.monotonic() + 5
        while "coalesced run" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "coalesced run ('line', 1) failed" in caplog.text
        realtime.coalesced(("line", 1), 0.01, lambda: runs.append("ok"))
        deadline = time.monotonic() + 5
        while not runs and time.monotonic() < deadline:
            time.sleep(0.02)
        assert runs == ["ok"]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
