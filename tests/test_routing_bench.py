"""bench/routing_load.py's harness counts violations and rates right (hand-made data, no services, never a speed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bench.routing_load import (
    Accepted,
    OfferRow,
    Window,
    WorkerReport,
    check_violations,
    percentile,
    postgres_ceiling,
)

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def accepted(conversation_id: int, agent_id: int, *, open_after: int = 1, cap: int = 2, process: int = 0) -> Accepted:
    return Accepted(conversation_id, agent_id, 10.0, 10.1, open_after, cap, process)


def offer(conversation_id: int, agent_id: int, status: str, start: float, end: float | None) -> OfferRow:
    return OfferRow(conversation_id, agent_id, status, at(start), None if end is None else at(end))


def test_the_routing_bench_finds_every_planted_violation():
    conversations = {
        1: ("open", 100),  # clean: one offer, one accept
        2: ("open", 100),  # accepted by two processes
        3: ("open", 101),  # two accepted offers in the database
        4: ("closed", 102),  # two "agent.joined" notices
        5: ("open", 104),  # the worker saw 103 win, the database says 104 has it
        6: ("waiting", None),  # left waiting
        7: ("closed", 105),  # an offer to someone else still pending on it
        8: ("open", 106),  # accept after which 106 had 3 open chats, cap 2
        9: ("open", 107),  # offered to 107 and 108 at once (the engine's one-at-a-time rule), 108 withdrawn
        10: ("open", 110),  # offered to 109, missed, then to 110 who took it: one after the other, clean
    }
    records = [
        accepted(1, 100),
        accepted(2, 100, process=0),
        accepted(2, 200, process=1),
        accepted(3, 101),
        accepted(4, 102),
        accepted(5, 103),
        accepted(7, 105),
        accepted(8, 106, open_after=3, cap=2),
        accepted(9, 107),
        accepted(10, 110),
    ]
    offers = [
        offer(1, 100, "accepted", 0, 1),
        offer(3, 101, "accepted", 0, 1),
        offer(3, 111, "accepted", 0.5, 1),
        offer(7, 105, "accepted", 0, 1),
        offer(7, 112, "pending", 2, None),
        offer(9, 107, "accepted", 0, 2),
        offer(9, 108, "withdrawn", 1, 2),
        offer(10, 109, "missed", 0, 30),
        offer(10, 110, "accepted", 30, 31),
    ]
    joined = {1: 1, 2: 2, 3: 2, 4: 2, 5: 1, 7: 1, 8: 1, 9: 1, 10: 1}
    found = check_violations(records, conversations, offers, joined, crashes=1)
    assert found.assigned_twice == 4  # 2, 3, 4 and 5
    assert found.over_cap == 1
    assert found.left_waiting == 1
    assert found.stale_offers == 1
    assert found.crashes == 1
    assert found.offered_twice_at_once == 2  # 3 (two pending together before both were accepted) and 9
    assert found.total == 4 + 1 + 1 + 1 + 1


def test_a_clean_window_has_no_violations():
    conversations = {1: ("closed", 100), 2: ("open", 101)}
    records = [accepted(1, 100), accepted(2, 101)]
    offers = [offer(1, 100, "accepted", 0, 1), offer(2, 101, "accepted", 1, 2)]
    found = check_violations(records, conversations, offers, {1: 1, 2: 1})
    assert found.total == 0 and found.offered_twice_at_once == 0


def test_the_routing_bench_rates_run_from_the_barrier_to_the_last_assignment():
    """Real: from the first process past the barrier to the last accept committed (a worker's idle tail after the
    last assignment is not in it); bare: to the last UPDATE; latency: offer committed to accept committed."""
    first = WorkerReport(process=0, started=100.0, ended=103.0)
    first.accepted = [Accepted(1, 7, 100.5, 100.6, 1, 2), Accepted(2, 7, 101.0, 101.4, 2, 2)]
    second = WorkerReport(process=1, started=100.2, ended=109.0)
    second.accepted = [Accepted(3, 8, 101.5, 102.0, 1, 1)]
    real = Window("real-1", "real", [first, second])
    assert real.done == 3
    assert real.seconds == 2.0
    assert real.rate == 1.5
    assert [round(x, 3) for x in sorted(real.latencies)] == [0.1, 0.4, 0.5]
    bare = Window(
        "bare-1",
        "bare",
        [WorkerReport(process=0, started=5.0, ended=5.5, updated=100), WorkerReport(1, 5.1, 6.0, updated=100)],
    )
    assert (bare.done, bare.seconds, bare.rate) == (200, 1.0, 200.0)
    assert percentile([0.1, 0.4, 0.5, 0.2], 0.5) in (0.2, 0.4)
    assert percentile([float(x) for x in range(1, 101)], 0.99) == 99.0


def test_the_postgres_ceiling_is_every_cpu_at_postgres_cost_per_assignment():
    """500 assignments that cost PostgreSQL 2.5 CPU-seconds (5 ms each): 2 CPUs could do at most 400 a second
    even if the workers cost nothing."""
    report = WorkerReport(process=0, started=0.0, ended=10.0)
    report.accepted = [Accepted(n, 7, 0.0, 1.0, 1, 5) for n in range(500)]
    real = Window("real-1", "real", [report], wall_cpu={"postgres": 2.5, "machine": 20.0})
    assert postgres_ceiling([real], cpus=2) == 400.0
    assert postgres_ceiling([Window("real-2", "real", [WorkerReport(process=0)])], cpus=2) == 0.0
