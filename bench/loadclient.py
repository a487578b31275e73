"""The asyncio load client: opens visitor/agent socket pairs, drives closed- and open-loop load, counts deliveries."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

from bench.infra import cpu_busy_seconds, cpu_seconds, rss_kib

NS = 1_000_000_000
STORM_GIVE_UP_S = 180.0  # a storm's client stops retrying after this long (and counts the pair as failed)
RETRY_AFTER_JITTER_S = 0.25  # as static/js/protocol.js adds to a busy server's return time


@dataclass(frozen=True)
class Retry:
    """Why an attempt to open a socket failed: `refused` after its handshake went through, `after` the seconds
    a busy server said to wait."""

    refused: bool = False
    after: float | None = None


class Refused(RuntimeError):
    """The server refused a socket with an `error` frame; `retry_after`: when a busy server said to come back."""

    def __init__(self, text: str, retry_after: float | None) -> None:
        super().__init__(text)
        self.retry_after = retry_after


class Driver(Protocol):
    """What differs between the bare relay and the real path: URLs, headers, and the frames' shape."""

    name: str

    def visitor_url(self, base: str, pair: int) -> str: ...
    def agent_url(self, base: str, pair: int) -> str: ...
    def visitor_headers(self, pair: int) -> dict[str, str]: ...
    def agent_headers(self, pair: int) -> dict[str, str]: ...
    def encode(self, pair: int, msg_id: int) -> str: ...

    def decode_delivery(self, pair: int, frame: str) -> int | None:
        """The message id if this agent frame delivers one of the bench's messages, else None."""
        ...

    def on_visitor_frame(self, pair: int, frame: str) -> tuple[int, float] | None:
        """Reads a visitor frame; (message id, delay s) when that message must be resent (rate_limited)."""
        ...

    async def agent_ready(self, pair: int, agent: ClientConnection) -> None:
        """An agent socket just opened: until it is ready to carry messages."""
        ...

    async def visitor_ready(self, pair: int, visitor: ClientConnection) -> None: ...

    def replayed(self, pair: int) -> list[str]:
        """Agent frames `agent_ready` read past (a resume's replay): deliveries the readers never saw."""
        ...

    def notes(self) -> list[str]: ...


@dataclass
class PhaseStats:
    name: str
    sent: int = 0
    delivered: int = 0
    latencies_ns: list[int] = field(default_factory=list)
    elapsed_s: float = 0.0
    window_delivered: int = 0
    window_s: float = 0.0
    max_send_lag_ms: float = 0.0
    overloaded: bool = False
    cpu: dict[str, float] = field(default_factory=dict)

    reopened: int = 0  # reconnect storm: pairs back and resumed
    retries: int = 0  # reconnect storm: failed attempts, each retried after the client's backoff …
    told_when: int = 0  # … or when the busy server said (`retry_after` on its refusal)
    reopen_s: float = 0.0  # reconnect storm: from the drop until every pair is back and resumed

    def percentile_ms(self, q: float) -> float:
        if not self.latencies_ns:
            return float("nan")
        ordered = sorted(self.latencies_ns)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] / 1e6

    @property
    def rate(self) -> float:
        return self.window_delivered / self.window_s if self.window_s else 0.0


@dataclass
class RunResult:
    label: str
    sockets: int = 0
    connect_failures: int = 0
    connect_s: float = 0.0
    rss_before_kib: int = 0
    rss_after_kib: int = 0
    phases: dict[str, PhaseStats] = field(default_factory=dict)
    sent: int = 0
    lost: int = 0
    duplicated: int = 0
    unexpected: int = 0
    stalls: int = 0
    resends: int = 0
    closed_early: int = 0
    crashed: bool = False
    log_offset: int | None = None
    background_busy: float = 0.0
    first_errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    profile: list[str] = field(default_factory=list)

    @property
    def connections_per_s(self) -> float:
        return self.sockets / self.connect_s if self.connect_s else 0.0

    @property
    def kib_per_socket(self) -> float:
        return (self.rss_after_kib - self.rss_before_kib) / self.sockets if self.sockets else float("nan")


@dataclass
class Pair:
    index: int
    visitor: ClientConnection
    agent: ClientConnection


class CpuMeter:
    """CPU seconds of the server, Redis, PostgreSQL (postmaster and backends) and this client between two marks."""

    def __init__(self, pids: dict[str, Callable[[], list[int]]]) -> None:
        self.pids = pids

    def sample(self) -> dict[str, Any]:
        sample: dict[str, Any] = {name: {pid: cpu_seconds(pid) for pid in get()} for name, get in self.pids.items()}
        sample["client"] = {0: time.process_time()}
        sample["cores"] = cpu_busy_seconds()
        sample["wall"] = time.monotonic()
        return sample

    @staticmethod
    def percent(start: dict[str, Any], end: dict[str, Any]) -> dict[str, float]:
        """Percent of one core per process group; `other` is what the rest of the machine (not this bench) used.

        A process that exits between the marks (a PostgreSQL backend) is left out: its time is unknown.
        """
        wall = end["wall"] - start["wall"]
        if wall <= 0:
            return {}
        used: dict[str, float] = {}
        for name, pids in end.items():
            if name in ("wall", "cores"):
                continue
            before = start.get(name, {})
            used[name] = 100.0 * sum(t - before.get(pid, 0.0) for pid, t in pids.items()) / wall
        cores = 100.0 * sum(t - start["cores"].get(cpu, t) for cpu, t in end["cores"].items()) / wall
        used["other"] = max(0.0, cores - sum(used.values()))
        return used


class LoadClient:
    """One run against one server: every counter lives here, every socket is read by its own task."""

    def __init__(
        self, *, driver: Driver, base_url: str, origin: str, server_pid: int, cpu: CpuMeter, label: str
    ) -> None:
        self.driver = driver
        self.base_url = base_url
        self.origin = Origin(origin)
        self.server_pid = server_pid
        self.cpu = cpu
        self.result = RunResult(label=label)
        self.pairs: list[Pair] = []
        self.ids = itertools.count(1)
        # id -> (send time ns, phase); what stays here after the final grace period was lost.
        self.pending: dict[int, tuple[int, PhaseStats]] = {}
        self.delivered: set[int] = set()
        self.waiters: dict[int, asyncio.Future[None]] = {}
        self.readers: list[asyncio.Task[None]] = []
        self.closing = False
        self.window = (0, 0)

    # --- sockets ------------------------------------------------------------------------------------

    async def _connect(self, url: str, headers: dict[str, str]) -> ClientConnection:
        return await connect(
            url,
            origin=self.origin,
            additional_headers=headers,
            compression=None,  # keeps both ends lean; the widget would negotiate it only if the server offered it
            proxy=None,
            ping_interval=None,  # daphne pings idle sockets itself
            open_timeout=60,
            close_timeout=5,
            user_agent_header=None,
            max_queue=None,
        )

    async def _open_pair(self, index: int, gate: asyncio.Semaphore) -> Pair | None:
        opened: list[ClientConnection] = []
        async with gate:
            try:
                agent = await self._connect(
                    self.driver.agent_url(self.base_url, index), self.driver.agent_headers(index)
                )
                opened.append(agent)
                visitor = await self._connect(
                    self.driver.visitor_url(self.base_url, index), self.driver.visitor_headers(index)
                )
                opened.append(visitor)
                pair = Pair(index, visitor, agent)
                await self.driver.agent_ready(index, agent)
                await self.driver.visitor_ready(index, visitor)
                now = time.perf_counter_ns()
                for frame in self.driver.replayed(index):
                    msg_id = self.driver.decode_delivery(index, frame)
                    if msg_id is not None:
                        self._delivered(msg_id, now)
            except Exception as exc:
                self.result.connect_failures += 1
                self._error(f"connect pair {index}: {exc!r}")
                for ws in opened:
                    ws.transport.abort()
                return None
        self._read(pair)
        return pair

    def _read(self, pair: Pair) -> None:
        self.readers.append(asyncio.create_task(self._read_agent(pair)))
        self.readers.append(asyncio.create_task(self._read_visitor(pair)))

    async def _reopen(self, index: int, side: str, gate: asyncio.Semaphore) -> tuple[ClientConnection | None, Retry]:
        """One attempt to open one socket of a pair again (a storm: each side comes back on its own, as the
        console and the widget are separate browsers): the socket once ready, else None and when to retry."""
        if side == "agent":
            url, headers = self.driver.agent_url(self.base_url, index), self.driver.agent_headers(index)
        else:
            url, headers = self.driver.visitor_url(self.base_url, index), self.driver.visitor_headers(index)
        ws = None
        async with gate:
            try:
                ws = await self._connect(url, headers)
                if side == "agent":
                    await self.driver.agent_ready(index, ws)
                else:
                    await self.driver.visitor_ready(index, ws)
                return ws, Retry()
            except Exception as exc:
                if ws is not None:
                    ws.transport.abort()
                if isinstance(exc, Refused):  # the handshake went through: the server said no
                    return None, Retry(refused=True, after=exc.retry_after)
                return None, Retry()

    async def open_all(self, count: int, concurrency: int) -> None:
        gate = asyncio.Semaphore(concurrency)
        started = time.perf_counter()
        opened = await asyncio.gather(*(self._open_pair(i, gate) for i in range(count)))
        self.result.connect_s = time.perf_counter() - started
        self.pairs = [p for p in opened if p is not None]
        self.result.sockets = 2 * len(self.pairs)

    async def close_all(self) -> None:
        self.closing = True
        gate = asyncio.Semaphore(200)

        async def close(ws: ClientConnection) -> None:
            async with gate:
                try:
                    await asyncio.wait_for(ws.close(), 5)
                except Exception:
                    ws.transport.abort()

        await asyncio.gather(*(close(ws) for p in self.pairs for ws in (p.visitor, p.agent)))
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)

    def _error(self, text: str) -> None:
        if len(self.result.first_errors) < 5:
            self.result.first_errors.append(text)

    async def _read_agent(self, pair: Pair) -> None:
        decode = self.driver.decode_delivery
        try:
            async for frame in pair.agent:
                now = time.perf_counter_ns()
                msg_id = decode(pair.index, frame if isinstance(frame, str) else frame.decode())
                if msg_id is not None:
                    self._delivered(msg_id, now)
        except ConnectionClosed as exc:
            if not self.closing:
                self._error(f"agent socket {pair.index} closed: {exc!r}")
        if not self.closing:
            self.result.closed_early += 1

    async def _read_visitor(self, pair: Pair) -> None:
        on_frame = self.driver.on_visitor_frame
        loop = asyncio.get_running_loop()
        try:
            async for frame in pair.visitor:
                resend = on_frame(pair.index, frame if isinstance(frame, str) else frame.decode())
                if resend is not None:
                    self.result.resends += 1
                    msg_id, delay = resend
                    loop.call_later(delay, self._resend, pair, msg_id)
        except ConnectionClosed as exc:
            if not self.closing:
                self._error(f"visitor socket {pair.index} closed: {exc!r}")
        if not self.closing:
            self.result.closed_early += 1

    def _resend(self, pair: Pair, msg_id: int) -> None:
        if msg_id in self.pending and not self.closing:
            task = asyncio.create_task(pair.visitor.send(self.driver.encode(pair.index, msg_id)))
            self.readers.append(task)

    def _delivered(self, msg_id: int, now: int) -> None:
        entry = self.pending.pop(msg_id, None)
        if entry is None:
            if msg_id in self.delivered:
                self.result.duplicated += 1
            else:
                self.result.unexpected += 1
            return
        self.delivered.add(msg_id)
        sent_at, phase = entry
        phase.delivered += 1
        phase.latencies_ns.append(now - sent_at)
        if self.window[0] <= now <= self.window[1]:
            phase.window_delivered += 1
        waiter = self.waiters.pop(msg_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _send(self, pair: Pair, phase: PhaseStats, sent_at: int | None = None) -> int:
        msg_id = next(self.ids)
        self.pending[msg_id] = (sent_at if sent_at is not None else time.perf_counter_ns(), phase)
        phase.sent += 1
        self.result.sent += 1
        await pair.visitor.send(self.driver.encode(pair.index, msg_id))
        return msg_id

    # --- measurements ---------------------------------------------------------------------------------

    async def warm_up(self, messages: int = 10) -> None:
        """One pair, a few messages: the server imports and caches what it needs before RSS is read."""
        phase = PhaseStats("warm-up")
        gate = asyncio.Semaphore(1)
        pair = await self._open_pair(0, gate)
        if pair is None:
            raise RuntimeError("could not open the warm-up pair: " + "; ".join(self.result.first_errors))
        self.pairs = [pair]
        await self._closed_loop_pair(pair, phase, time.perf_counter_ns() + 5 * NS, max_messages=messages)
        await self.close_all()
        self.closing = False
        self.readers.clear()
        self.pairs = []
        self.result.connect_failures = 0

    async def measure_connections(self, count: int, concurrency: int) -> None:
        await asyncio.sleep(1.0)
        self.result.rss_before_kib = rss_kib(self.server_pid)
        await self.open_all(count, concurrency)
        await asyncio.sleep(2.0)  # let the server finish its post-accept work before reading RSS
        self.result.rss_after_kib = rss_kib(self.server_pid)

    async def _closed_loop_pair(
        self, pair: Pair, phase: PhaseStats, stop_at: int, max_messages: int | None = None, stall_s: float = 10.0
    ) -> None:
        loop = asyncio.get_running_loop()
        sent = 0
        while time.perf_counter_ns() < stop_at and (max_messages is None or sent < max_messages):
            if pair.visitor.state.name != "OPEN":
                return
            future: asyncio.Future[None] = loop.create_future()
            msg_id = next(self.ids)
            self.waiters[msg_id] = future
            self.pending[msg_id] = (time.perf_counter_ns(), phase)
            phase.sent += 1
            self.result.sent += 1
            sent += 1
            try:
                await pair.visitor.send(self.driver.encode(pair.index, msg_id))
                async with asyncio.timeout(stall_s):
                    await future
            except TimeoutError:
                self.result.stalls += 1
                self.waiters.pop(msg_id, None)
            except ConnectionClosed:
                return

    async def saturation(self, duration_s: float, warmup_s: float = 2.0) -> PhaseStats:
        """Closed loop: every visitor sends, waits for its agent to get it, sends again."""
        phase = PhaseStats("saturation")
        start = time.perf_counter_ns()
        stop_at = start + int((warmup_s + duration_s) * NS)
        self.window = (start + int(warmup_s * NS), stop_at)
        tasks = [asyncio.create_task(self._closed_loop_pair(p, phase, stop_at)) for p in self.pairs]
        await asyncio.sleep(warmup_s)
        mark = self.cpu.sample()
        await asyncio.sleep(max(0.0, (stop_at - time.perf_counter_ns()) / NS))
        phase.cpu = CpuMeter.percent(mark, self.cpu.sample())
        await asyncio.gather(*tasks)
        phase.elapsed_s = (time.perf_counter_ns() - start) / NS
        phase.window_s = duration_s
        self.window = (0, 0)
        self.result.phases[phase.name] = phase
        return phase

    async def open_loop(self, rate: float, duration_s: float, drain_s: float) -> PhaseStats:
        """Open loop at `rate` msg/s over every pair in turn; latency counts from the scheduled send time."""
        phase = PhaseStats(f"{rate:g}/s")
        count = max(1, int(rate * duration_s))
        interval = NS / rate
        mark = self.cpu.sample()
        start = time.perf_counter_ns() + NS // 20
        pairs = self.pairs
        for i in range(count):
            target = start + int(i * interval)
            delay = target - time.perf_counter_ns()
            if delay > 0:
                await asyncio.sleep(delay / NS)
            else:
                phase.max_send_lag_ms = max(phase.max_send_lag_ms, -delay / 1e6)
            if phase.sent - phase.delivered > max(200.0, 2 * rate):
                # Over two seconds of backlog: the server cannot take this load, and going on would only
                # spill the backlog into the next phase. Recorded as overloaded.
                phase.overloaded = True
                break
            pair = pairs[i % len(pairs)]
            try:
                await self._send(pair, phase, sent_at=target)
            except ConnectionClosed:
                continue
        phase.cpu = CpuMeter.percent(mark, self.cpu.sample())
        # An overloaded server may pause deliveries for seconds while it works through its backlog: wait
        # longer for it, so this phase's backlog does not eat the next phase's measurements.
        await self._drain(phase, max(drain_s, 20.0) if phase.overloaded else drain_s)
        phase.elapsed_s = (time.perf_counter_ns() - start) / NS
        phase.window_delivered = phase.delivered
        phase.window_s = duration_s
        self.result.phases[phase.name] = phase
        return phase

    async def _drain(self, phase: PhaseStats, quiet_s: float, cap_s: float = 120.0) -> None:
        """Waits for the phase's messages while they keep arriving: a backlog drains, a loss ends it after quiet_s."""
        await self._wait_progress(lambda: phase.sent - phase.delivered, quiet_s, cap_s)

    async def _wait_progress(self, remaining: Callable[[], int], quiet_s: float, cap_s: float) -> None:
        cap = time.monotonic() + cap_s
        last, last_change = remaining(), time.monotonic()
        while last > 0 and time.monotonic() < cap and time.monotonic() - last_change < quiet_s:
            await asyncio.sleep(0.05)
            now_remaining = remaining()
            if now_remaining != last:
                last, last_change = now_remaining, time.monotonic()

    async def reconnect_storm(
        self,
        concurrency: int,
        with_messages: bool,
        restart: Callable[[], tuple[str, str]] | None = None,
    ) -> PhaseStats:
        """Every socket dropped at once, then all back: reopened and resumed.

        `restart` (a replica restarting): kills the server and returns the base URL and origin of the one
        that takes over, already up, as a load balancer would send the clients there; without it the
        client drops its sockets and the same server takes them back (a network blip).

        With messages (paths that store them): each visitor first sends one message, then every socket is
        dropped with it possibly in flight; back, the agent resumes from the last seq it saw (its replay
        delivers what it missed) and the visitor resends what was never delivered with the same client_id,
        as the widget does after `resume.done`. Nothing may be lost or delivered twice.
        """
        phase = PhaseStats("storm")
        unanswered: dict[int, list[int]] = {}
        if with_messages:
            for pair in self.pairs:
                unanswered[pair.index] = [await self._send(pair, phase)]
        self.closing = True
        if restart is not None:
            self.base_url, origin = restart()
            self.origin = Origin(origin)
        for pair in self.pairs:
            pair.visitor.transport.abort()
            pair.agent.transport.abort()
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)
        self.readers.clear()
        self.closing = False
        started = time.perf_counter_ns()
        gate = asyncio.Semaphore(concurrency or 2 * len(self.pairs))  # 0: no limit, as independent browsers

        async def side_back(index: int, side: str) -> ClientConnection | None:
            # As static/js/protocol.js reconnects, until it works: when a busy server said when (`retry_after`
            # on its refusal), then; else after a jittered backoff (1 s, 2 s, 4 s … 30 s) that starts again
            # at its first step whenever the handshake went through (the browser's socket fired `open`: a
            # refusal is an accept, an `error` frame and a close), and grows only when it did not.
            backoff = 1.0
            delay = backoff / 2 + random.random() * backoff / 2
            while time.perf_counter_ns() - started < STORM_GIVE_UP_S * NS:
                await asyncio.sleep(delay)
                ws, retry = await self._reopen(index, side, gate)
                if ws is not None:
                    return ws
                phase.retries += 1
                if retry.after is not None:
                    phase.told_when += 1
                    delay = retry.after + random.random() * RETRY_AFTER_JITTER_S
                    continue
                backoff = 1.0 if retry.refused else min(backoff * 2, 30.0)
                delay = backoff / 2 + random.random() * backoff / 2
            return None

        async def back(index: int) -> Pair | None:
            agent, visitor = await asyncio.gather(side_back(index, "agent"), side_back(index, "visitor"))
            if agent is None or visitor is None:
                for ws in (agent, visitor):
                    if ws is not None:
                        ws.transport.abort()
                self.result.connect_failures += 1
                self._error(f"storm: pair {index} not back after {STORM_GIVE_UP_S:.0f} s")
                return None
            pair = Pair(index, visitor, agent)
            now = time.perf_counter_ns()
            for frame in self.driver.replayed(index):
                msg_id = self.driver.decode_delivery(index, frame)
                if msg_id is not None:
                    self._delivered(msg_id, now)
            self._read(pair)
            for msg_id in unanswered.get(index, []):
                if msg_id in self.pending:
                    await pair.visitor.send(self.driver.encode(index, msg_id))
            return pair

        reopened = await asyncio.gather(*(back(pair.index) for pair in self.pairs))
        phase.reopen_s = (time.perf_counter_ns() - started) / NS
        self.pairs = [pair for pair in reopened if pair is not None]
        phase.reopened = len(self.pairs)
        await self._drain(phase, 5.0)
        phase.elapsed_s = (time.perf_counter_ns() - started) / NS
        self.result.phases[phase.name] = phase
        return phase

    async def settle(self, grace_s: float) -> None:
        """Until every message sent so far has arrived, or none has for `grace_s`."""
        await self._wait_progress(lambda: len(self.pending), grace_s, 120.0)

    async def final_grace(self, grace_s: float) -> None:
        await self.settle(grace_s)
        await asyncio.sleep(0.5)  # a late duplicate still counts
        self.result.lost = len(self.pending)
        for msg_id in itertools.islice(self.pending, 3):
            self._error(f"message {msg_id} never reached its agent")
        self.result.notes.extend(self.driver.notes())
