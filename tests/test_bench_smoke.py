"""The load bench's harness counts deliveries, losses and duplicates right (tiny run; never a speed assertion)."""

from __future__ import annotations

import asyncio
import math
import os
import secrets
from pathlib import Path

import pytest

from bench.chat_load import Daphne, PairedResult, RelayDriver, RunSpec, start_daphne
from bench.infra import stop_pid
from bench.loadclient import CpuMeter, Driver, LoadClient, RunResult

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(120)]

PAIRS = 10
MESSAGES = 20  # ids 1..20, sent round-robin over the pairs
DROPPED = {3, 7}
DOUBLED = {5, 11, 13}


class FaultyRelayDriver(RelayDriver):
    """The bare relay's frames, through the bench-only relay that loses and doubles the planted ids."""

    def visitor_url(self, base: str, pair: int) -> str:
        return f"{base}/bench/faulty/{pair}/visitor/"

    def agent_url(self, base: str, pair: int) -> str:
        return f"{base}/bench/faulty/{pair}/agent/"

    def encode(self, pair: int, msg_id: int) -> str:
        if msg_id in DROPPED:
            return f"drop:{msg_id}"
        if msg_id in DOUBLED:
            return f"dup:{msg_id}"
        return str(msg_id)


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
    }


def _client(driver: Driver, server: Daphne) -> LoadClient:
    return LoadClient(
        driver=driver,
        base_url=server.base_url,
        origin=server.origin,
        server_pid=server.proc.pid,
        cpu=CpuMeter({}),
        label="smoke",
    )


def _run(driver: Driver, log_dir: Path) -> RunResult:
    server = start_daphne(_env(), RunSpec("smoke", "pubsub", lambda: driver, real=False), log_dir)

    async def scenario() -> RunResult:
        client = _client(driver, server)
        await client.open_all(PAIRS, concurrency=5)
        await client.open_loop(rate=100, duration_s=MESSAGES / 100, drain_s=1.0)
        await client.final_grace(1.0)
        await client.close_all()
        return client.result

    try:
        return asyncio.run(scenario())
    finally:
        stop_pid(server.proc)


def test_clean_relay_delivers_every_message_once(tmp_path):
    result = _run(RelayDriver(), tmp_path)

    assert result.sockets == 2 * PAIRS and result.connect_failures == 0
    assert result.sent == MESSAGES
    assert (result.lost, result.duplicated, result.unexpected) == (0, 0, 0)
    assert len(result.phases["100/s"].latencies_ns) == MESSAGES


def test_planted_losses_and_duplicates_are_counted_exactly(tmp_path):
    result = _run(FaultyRelayDriver(), tmp_path)

    assert result.sent == MESSAGES
    assert result.lost == len(DROPPED)
    assert result.duplicated == len(DOUBLED)
    assert result.phases["100/s"].delivered == MESSAGES - len(DROPPED)


def test_paired_ratio_takes_medians_and_sets_each_real_window_beside_its_bare_neighbours():
    paired = PairedResult()
    # Windows in the order run, drifting down, with a bare outlier and a batched window in between.
    run = [("bare", 1000.0), ("real", 600.0), ("batched", 700.0), ("real", 500.0), ("bare", 800.0)]
    run += [("bare", 5000.0), ("real", 450.0)]
    for name, rate in run:
        paired.rates.setdefault(name, []).append(rate)
        paired.timeline.append((name, rate))

    assert paired.ratio() == 500.0 / 1000.0  # medians: the outlier bare window does not move it
    assert paired.ratio("real", "batched") == 500.0 / 700.0
    # 600 between 1000 and 800; 500 between 1000 (nearest before) and 800; 450 after 5000 only.
    assert paired.window_ratios() == [600.0 / 900.0, 500.0 / 900.0, 450.0 / 5000.0]
    assert paired.window_ratios("real", "batched") == [600.0 / 700.0, 500.0 / 700.0, 450.0 / 700.0]


def test_paired_ratio_is_unknown_without_both_paths():
    paired = PairedResult(rates={"bare": [1000.0]})

    assert math.isnan(paired.ratio())
    assert paired.window_ratios() == []


def test_the_reconnect_storm_brings_every_relay_socket_back_to_the_replacement_server(tmp_path):
    driver = RelayDriver()
    spec = RunSpec("storm", "pubsub", lambda: driver, real=False)
    server = start_daphne(_env(), spec, tmp_path)
    replacement = start_daphne(_env(), spec, tmp_path, "-replacement")

    def restart() -> tuple[str, str]:
        server.proc.kill()
        server.proc.wait(10)
        return replacement.base_url, replacement.origin

    async def scenario() -> tuple[RunResult, int]:
        client = _client(driver, server)
        await client.open_all(PAIRS, concurrency=5)
        storm = await client.reconnect_storm(concurrency=4, with_messages=False, restart=restart)
        # The relay carries messages over the new sockets, to the new server.
        await client.open_loop(rate=100, duration_s=MESSAGES / 100, drain_s=1.0)
        await client.final_grace(1.0)
        await client.close_all()
        return client.result, storm.reopened

    try:
        result, reopened = asyncio.run(scenario())
    finally:
        stop_pid(server.proc)
        stop_pid(replacement.proc)
    assert server.proc.returncode == -9  # the first server was killed, as a crashed or replaced replica is
    assert reopened == PAIRS
    assert result.phases["storm"].reopen_s > 0
    assert (result.sent, result.lost, result.duplicated, result.closed_early) == (MESSAGES, 0, 0, 0)


def test_the_socket_verdicts_compare_with_the_relay_of_the_same_run():
    import argparse

    from bench.chat_load import connect_and_storm_verdicts
    from bench.loadclient import PhaseStats

    bare = RunResult(label="bare", sockets=2000, connect_s=4.0)  # 500/s
    real = RunResult(label="real", sockets=2000, connect_s=10.0)  # 200/s
    for run, p99_ms in ((bare, 10.0), (real, 14.0)):
        for load in ("200/s", "400/s"):
            run.phases[load] = PhaseStats(load, latencies_ns=[int(p99_ms * 1e6)] * 10)
    real.phases["400/s"].latencies_ns = [int(16e6)] * 10
    real.phases["storm"] = PhaseStats("storm", sent=1000, delivered=1000, reopened=1000, reopen_s=6.0, elapsed_s=7.5)

    lines = connect_and_storm_verdicts(real, bare, argparse.Namespace())

    assert [(figure, ok) for _, figure, ok in lines] == [
        ("200 / 500 per s = 40%", False),
        ("14.0 / 10.0 ms = 1.40x", True),
        ("16.0 / 10.0 ms = 1.60x", False),
        ("2000 back in 6.0 s (0 retried, 0 when told), 1000/1000 in-flight messages delivered in 7.5 s", True),
    ]
