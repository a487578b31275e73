"""bench/relay_load.py's harness counts what reached the fake provider right (no services, never a speed check)."""

from __future__ import annotations

import time as clock

from bench.relay_load import Window, settle
from tests.support.fake_twilio import FakeTwilio, Held


def test_the_relay_bench_counts_losses_and_duplicates_right():
    """bench/relay_load.py's count of what reached the fake provider: planted copies and gaps, no services."""
    fake = FakeTwilio("AC" + "0" * 32, "0" * 32)  # never started: the held list is filled by hand
    try:
        window = Window(label="real0", sent=5, started=clock.time())
        window.submitted = {f"real0-{i}": window.started for i in range(5)}
        fake.held = [Held(sid=f"SM{i}", to="+1", from_="+2", body=f"real0-{i}") for i in (0, 1, 1, 3, 4, 4, 4)]
        fake.held.append(Held(sid="SMx", to="+1", from_="+2", body="bare0-2"))  # another window's: not counted
        settle(window, fake, grace=0.2)
    finally:
        fake._server.server_close()
    assert (window.received, window.duplicates, window.lost) == (4, 3, 1)
    assert len(window.latencies) == 4 and all(latency >= 0 for latency in window.latencies)
