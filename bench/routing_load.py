"""`make bench`, third part: the routing engine (offer → accept → end) against a bare floor in the same run.

Seeds one tenant, one queue with a web widget routed to it, `--agents` member agents (online, max_chats 1..5 from a
fixed seed) and, per round, `--chats` waiting web chats routed to the queue (bulk rows: contact, conversation with
the visitor's first message, its route; no offers). Then `--processes` worker processes (each `django.setup()` on
the throwaway database, released together behind a barrier) play their share of the agents in a loop: an agent
with room gets the oldest waiting chats through `agent_offers_refresh`, an agent at its cap ends its oldest chat
(`conversation_end`, which offers it the next one), and every offer it got is accepted (`conversation_accept`),
until no chat is left waiting. Paired with each such window, the same processes run a bare floor: as many single
conditional UPDATEs (`... SET status='open', assignee_id=… WHERE id=… AND status='waiting' AND assignee_id IS
NULL`, autocommit) on a second tenant's waiting rows. Prints assignments/s, offer-to-accept latency p50/p99, the
bare floor's updates/s, real/bare, and the violations found in the database afterwards (chats assigned twice,
agents over their cap, chats left waiting, offers left pending on chats no longer waiting).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# Run as a script, bench/ is first on the path, and bench/profile.py would shadow the standard library's profile
# (which cProfile imports): the repository takes its place.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]
sys.path.insert(0, str(REPO))

from bench.infra import children_of, cpu_busy_seconds, cpu_seconds, stop_pid  # noqa: E402
from scripts.testservices import ServiceUnavailable, ThrowawayServices, die_with_parent  # noqa: E402

TARGET_RATE = 1000.0  # assignments per second
TARGET_RATIO = 0.50  # of the bare floor
MAX_CHATS = (1, 5)
SEED = 20261203
IDLE_LIMIT = 5.0  # seconds a worker goes on finding nothing to do while chats still wait, before it gives up
REFUSED = {"already_taken"}  # what an accept that lost a race is told; anything else is a crash
BARE_SQL = (
    "UPDATE chat_conversation SET status = 'open', assignee_id = %s "
    "WHERE id = %s AND status = 'waiting' AND assignee_id IS NULL"
)


# --- what a worker reports, and what the bench computes from it (pure: tests/test_routing_bench.py) ----------


@dataclass
class Accepted:
    """One won accept as a worker saw it: the offer and the accept each committed (CLOCK_MONOTONIC, shared by
    every process), and the agent's open chats counted in the database right after the accept."""

    conversation_id: int
    agent_id: int
    offered: float
    accepted: float
    open_after: int
    cap: int
    process: int = 0


@dataclass
class WorkerReport:
    process: int
    started: float = 0.0  # when it passed the barrier
    ended: float = 0.0
    accepted: list[Accepted] = field(default_factory=list)
    updated: int = 0  # bare floor: rows its UPDATEs changed
    lost_races: int = 0  # accepts of its own offers refused with already_taken
    crashes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # time in each kind of call
    calls: dict[str, int] = field(default_factory=dict)
    cpu: float = 0.0  # process CPU seconds in the window (every thread)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WorkerReport:
        report = cls(**{k: v for k, v in data.items() if k != "accepted"})
        report.accepted = [Accepted(**row) for row in data.get("accepted", [])]
        return report


@dataclass
class Window:
    label: str
    kind: str  # "bare" or "real"
    reports: list[WorkerReport]
    wall_cpu: dict[str, float] = field(default_factory=dict)  # machine, postgres: CPU seconds in the window

    @property
    def started(self) -> float:
        return min(r.started for r in self.reports)

    @property
    def done(self) -> int:
        if self.kind == "bare":
            return sum(r.updated for r in self.reports)
        return sum(len(r.accepted) for r in self.reports)

    @property
    def seconds(self) -> float:
        """From the barrier to the last assignment (bare: the last UPDATE; real: the last accept committed)."""
        if self.kind == "bare":
            ended = max(r.ended for r in self.reports)
        else:
            ended = max((a.accepted for r in self.reports for a in r.accepted), default=self.started)
        return max(0.0, ended - self.started)

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds else 0.0

    @property
    def latencies(self) -> list[float]:
        return [a.accepted - a.offered for r in self.reports for a in r.accepted]


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


@dataclass
class Violations:
    assigned_twice: int = 0  # chats with more than one accepted offer, accept or joined notice, or another assignee
    over_cap: int = 0  # accepts after which the agent had more open chats than max_chats
    left_waiting: int = 0  # chats of the window still waiting at its end
    stale_offers: int = 0  # offers still pending on chats that are open or closed
    crashes: int = 0  # exceptions other than a lost race, in any worker
    # Not among the four, reported beside them: the engine's own "one agent at a time" (routing.py).
    offered_twice_at_once: int = 0  # chats whose offers to two agents were pending at the same time

    @property
    def total(self) -> int:
        return self.assigned_twice + self.over_cap + self.left_waiting + self.stale_offers + self.crashes

    def add(self, other: Violations) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)


@dataclass(frozen=True)
class OfferRow:
    conversation_id: int
    agent_id: int
    status: str
    created_at: datetime
    decided_at: datetime | None


def check_violations(
    accepted: Iterable[Accepted],
    conversations: Mapping[int, tuple[str, int | None]],
    offers: Iterable[OfferRow],
    joined: Mapping[int, int],
    crashes: int = 0,
) -> Violations:
    """The window's invariants, from what the workers recorded and what the database holds afterwards.

    `conversations`: the window's chats, id → (status, assignee id); `offers`: every offer made on them;
    `joined`: id → how many "agent.joined" notices it has (one per accept)."""
    found = Violations(crashes=crashes)
    accepts_of: dict[int, list[Accepted]] = defaultdict(list)
    for record in accepted:
        accepts_of[record.conversation_id].append(record)
        if record.open_after > record.cap:
            found.over_cap += 1
    offers_of: dict[int, list[OfferRow]] = defaultdict(list)
    for offer in offers:
        offers_of[offer.conversation_id].append(offer)
    for conversation_id, (status, assignee_id) in conversations.items():
        records = accepts_of.get(conversation_id, [])
        accepted_offers = [o for o in offers_of.get(conversation_id, []) if o.status == "accepted"]
        twice = len(records) > 1 or len(accepted_offers) > 1 or joined.get(conversation_id, 0) > 1
        if len(records) == 1 and assignee_id != records[0].agent_id:
            twice = True  # the database gave it to someone else than the accept that won
        if len(accepted_offers) == 1 and assignee_id != accepted_offers[0].agent_id:
            twice = True
        found.assigned_twice += int(twice)
        if status == "waiting":
            found.left_waiting += 1
        mine = offers_of.get(conversation_id, [])
        if status != "waiting":
            found.stale_offers += sum(1 for o in mine if o.status == "pending")
        found.offered_twice_at_once += int(_overlapping(mine))
    return found


def _overlapping(offers: list[OfferRow]) -> bool:
    """Whether two of a chat's offers were pending at once (each from created_at to decided_at, or still)."""
    reach: datetime | None = None  # the latest end among the offers made so far
    for start, end in sorted(
        (o.created_at, o.decided_at or datetime.max.replace(tzinfo=o.created_at.tzinfo)) for o in offers
    ):
        if reach is not None and start < reach:
            return True
        reach = end if reach is None else max(reach, end)
    return False


# --- the workers (each one OS process, `--worker`) -------------------------------------------------------------


class PlayedAgent:
    def __init__(self, actor: Any, cap: int) -> None:
        self.actor = actor
        self.cap = cap
        self.open: list[int] = []  # its open chats, oldest first (only this process changes them)


class Worker:
    """One process: its agents, its connection, and the windows the bench asks of it (stdin: one JSON line to
    prepare, "ready" on stdout, then "go" on stdin releases it; it writes its report and says "done")."""

    def __init__(self, spec: dict[str, Any]) -> None:
        from django.contrib.auth import get_user_model
        from django.db import connection

        from chat.selectors import agent_actor_for

        self.index: int = spec["index"]
        self.tenant_id: int = spec["tenant_id"]
        self.queue_id: int = spec["queue_id"]
        self.disposition_id: int = spec["disposition_id"]
        users = get_user_model().objects.in_bulk([user_id for user_id, _ in spec["agents"]])
        self.agents = [PlayedAgent(agent_actor_for(users[user_id]), cap) for user_id, cap in spec["agents"]]
        self.profile_path: str | None = spec.get("profile")
        connection.ensure_connection()

    def serve(self) -> None:
        for line in sys.stdin:
            command = json.loads(line)
            if command["op"] == "quit":
                return
            if command["op"] == "real":
                for agent in self.agents:
                    agent.open = []  # the bench closed the last window's chats
            print("ready", flush=True)
            if sys.stdin.readline().strip() != "go":
                return
            report = self.bare(command["ids"]) if command["op"] == "bare" else self.real(command)
            Path(command["out"]).write_text(json.dumps(asdict(report)))
            print("done", flush=True)

    def bare(self, ids: list[int]) -> WorkerReport:
        from django.db import connection

        report = WorkerReport(process=self.index)
        agent_ids = [agent.actor.user.pk for agent in self.agents]
        cpu = time.process_time()
        report.started = time.monotonic()
        with connection.cursor() as cursor:
            for i, conversation_id in enumerate(ids):
                cursor.execute(BARE_SQL, [agent_ids[i % len(agent_ids)], conversation_id])
                report.updated += cursor.rowcount
        report.ended = time.monotonic()
        report.cpu = time.process_time() - cpu
        return report

    def real(self, command: dict[str, Any]) -> WorkerReport:
        report = WorkerReport(process=self.index)
        profiler = None
        if self.profile_path and command.get("profile"):
            import cProfile

            profiler = cProfile.Profile(time.thread_time)  # CPU of this thread: waits for the CPU are not in it
        cpu = time.process_time()
        report.started = time.monotonic()
        if profiler is not None:
            profiler.enable()
        try:
            self.play(report)
        finally:
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(f"{self.profile_path}.{command['label']}")
        report.ended = time.monotonic()
        report.cpu = time.process_time() - cpu
        return report

    def play(self, report: WorkerReport) -> None:
        idle_since: float | None = None
        while True:
            accepted = sum(self.turn(agent, report) for agent in self.agents)
            if accepted:
                idle_since = None
                continue
            if not self.free_chats_left(report):
                return  # every chat is assigned, or held by an offer another process is accepting
            now = time.monotonic()
            idle_since = idle_since or now
            if now - idle_since > IDLE_LIMIT:
                report.crashes.append(f"gave up after {IDLE_LIMIT:.0f} s with free chats still waiting")
                return
            time.sleep(0.005)

    def timed(self, report: WorkerReport, name: str, started: float) -> float:
        now = time.monotonic()
        report.seconds[name] = report.seconds.get(name, 0.0) + now - started
        report.calls[name] = report.calls.get(name, 0) + 1
        return now

    def turn(self, agent: PlayedAgent, report: WorkerReport) -> int:
        """One agent's move: take offers while it has room, else end its oldest chat (the product then offers it
        the next one); accept whatever it was offered. Returns how many chats it won."""
        from contactcenter.errors import ApplicationError
        from queueing.selectors import pending_offer_ids
        from queueing.services import agent_offers_refresh, conversation_end

        offered: list[tuple[int, float]] = []
        try:
            if len(agent.open) < agent.cap:
                started = time.monotonic()
                offers = agent_offers_refresh(actor=agent.actor)
                committed = self.timed(report, "offers_refresh", started)
                offered = [(offer.conversation_id, committed) for offer in offers]
            if not offered and agent.open:
                # At its cap (or its room is held by offers): it ends a chat, as agents do, and the end's own
                # refresh offers it the next waiting one; the console learns of that offer by its event, the
                # bench by the console's read of pending offers.
                started = time.monotonic()
                conversation_end(
                    actor=agent.actor, conversation_id=agent.open.pop(0), disposition_id=self.disposition_id
                )
                committed = self.timed(report, "conversation_end", started)
                ids = sorted(pending_offer_ids(actor=agent.actor))
                self.timed(report, "harness_reads", committed)
                offered = [(conversation_id, committed) for conversation_id in ids]
        except ApplicationError as error:
            report.crashes.append(f"{error.code}: {error.message}")
        except Exception as error:
            report.crashes.append(f"{type(error).__name__}: {error}")
        won = 0
        for conversation_id, offered_at in offered:
            won += self.accept(agent, conversation_id, offered_at, report)
        return won

    def accept(self, agent: PlayedAgent, conversation_id: int, offered_at: float, report: WorkerReport) -> int:
        from chat.models import Conversation, ConversationStatus
        from contactcenter.errors import ApplicationError
        from queueing.services import conversation_accept

        started = time.monotonic()
        try:
            conversation_accept(actor=agent.actor, conversation_id=conversation_id)
        except ApplicationError as error:
            self.timed(report, "conversation_accept (lost)", started)
            if error.code in REFUSED:
                report.lost_races += 1
            else:
                report.crashes.append(f"accept: {error.code}: {error.message}")
            return 0
        except Exception as error:
            report.crashes.append(f"accept: {type(error).__name__}: {error}")
            return 0
        committed = self.timed(report, "conversation_accept", started)
        open_now = Conversation.objects.filter(
            tenant_id=self.tenant_id, assignee_id=agent.actor.user.pk, status=ConversationStatus.OPEN
        ).count()
        self.timed(report, "harness_reads", committed)
        agent.open.append(conversation_id)
        report.accepted.append(
            Accepted(conversation_id, agent.actor.user.pk, offered_at, committed, open_now, agent.cap, self.index)
        )
        return 1

    def free_chats_left(self, report: WorkerReport) -> bool:
        from chat.models import Conversation, ConversationStatus
        from queueing.models import OfferStatus

        started = time.monotonic()
        left = (
            Conversation.objects.filter(
                tenant_id=self.tenant_id,
                status=ConversationStatus.WAITING,
                assignee__isnull=True,
                queue_route__queue_id=self.queue_id,
            )
            .exclude(offers__status=OfferStatus.PENDING)
            .exists()
        )
        self.timed(report, "harness_reads", started)
        return left


def worker_main(spec_json: str) -> int:
    import django

    django.setup()
    from contactcenter.realtime import start_background_publisher

    # A console's accept runs on a server process whose event loop sends what commits publish; here one
    # background loop per process does that (what a Celery worker's process uses), never the accepting thread.
    start_background_publisher()
    Worker(json.loads(spec_json)).serve()
    return 0


# --- seeding and the windows (the bench process) ---------------------------------------------------------------


@dataclass
class Seeded:
    tenant_id: int
    widget_id: int
    queue_id: int
    queue_name: str
    disposition_id: int
    agents: list[tuple[int, int]]  # (user id, max_chats)
    bare_tenant_id: int
    bare_ids: list[int]


def seed(agents: int, chats: int, rng: random.Random) -> Seeded:
    from agents.models import Presence
    from agents.services import agent_create, disposition_save, tenant_setup
    from chat.selectors import agent_actor_for
    from chat.services import widget_save
    from contactcenter.models import Role
    from queueing.services import agent_presence_change, queue_member_add, queue_save, queue_widgets_set

    tenant = tenant_setup(name="Routing bench", admin_email="admin@routing.example", slug="routing").tenant
    widget = widget_save(tenant=tenant, name="Routing widget", allowed_origins=["http://127.0.0.1"])
    queue = queue_save(tenant=tenant, name="Routing queue")
    queue_widgets_set(queue=queue, widgets=[widget])
    # Agents must pick an outcome before they close a chat (chat.services.state.conversation_close).
    disposition = disposition_save(tenant=tenant, name="Resolved")
    seeded_agents = []
    for i in range(agents):
        cap = rng.randint(*MAX_CHATS)
        user = agent_create(
            tenant=tenant, email=f"agent{i}@routing.example", role=Role.AGENT, first_name=f"Agent{i}", max_chats=cap
        ).user
        queue_member_add(queue=queue, user=user)
        actor = agent_actor_for(user)
        assert actor is not None
        agent_presence_change(actor=actor, presence=Presence.ONLINE)  # nothing waits yet: no offers
        seeded_agents.append((user.pk, cap))
    bare = tenant_setup(name="Routing bare floor", admin_email="admin@bare.example", slug="routing-bare").tenant
    bare_ids = waiting_chats(bare.pk, None, None, "", chats, "bare")
    return Seeded(tenant.pk, widget.pk, queue.pk, queue.name, disposition.pk, seeded_agents, bare.pk, bare_ids)


def waiting_chats(
    tenant_id: int, widget_id: int | None, queue_id: int | None, queue_name: str, count: int, label: str
) -> list[int]:
    """`count` waiting web chats as a visitor's start leaves them (contact, conversation, first message; the
    route when a queue is given), in bulk: the seed is not timed, and nothing is offered."""
    from django.db import transaction
    from django.utils import timezone

    from chat.models import Channel, Conversation, ConversationStatus, Message, SenderKind
    from contactcenter.models import Contact
    from queueing.models import ConversationRoute

    now = timezone.now()
    with transaction.atomic():
        contacts = Contact.objects.bulk_create(
            [Contact(tenant_id=tenant_id, name=f"Visitor {label}-{i}") for i in range(count)], batch_size=1000
        )
        conversations = Conversation.objects.bulk_create(
            [
                Conversation(
                    tenant_id=tenant_id,
                    contact=contact,
                    widget_id=widget_id,
                    visitor_id=f"{label}-{i}",
                    channel=Channel.WEB,
                    status=ConversationStatus.WAITING,
                    survey=[{"key": "name", "label": "Your name", "value": contact.name}],
                    last_seq=1,
                    last_message_at=now,
                )
                for i, contact in enumerate(contacts)
            ],
            batch_size=1000,
        )
        Message.objects.bulk_create(
            [
                Message(
                    tenant_id=tenant_id,
                    conversation=conversation,
                    seq=1,
                    sender_kind=SenderKind.VISITOR,
                    body="Hello, I have a question about my order.",
                    channel=Channel.WEB,
                )
                for conversation in conversations
            ],
            batch_size=1000,
        )
        if queue_id is not None:
            ConversationRoute.objects.bulk_create(
                [
                    ConversationRoute(
                        tenant_id=tenant_id, conversation=conversation, queue_id=queue_id, queue_name=queue_name
                    )
                    for conversation in conversations
                ],
                batch_size=1000,
            )
    return [conversation.pk for conversation in conversations]


def bare_reset(seeded: Seeded) -> None:
    """The bare floor's rows back to waiting and unassigned (not timed)."""
    from chat.models import Conversation, ConversationStatus

    Conversation.objects.filter(tenant_id=seeded.bare_tenant_id).update(
        status=ConversationStatus.WAITING, assignee=None
    )


def round_close(seeded: Seeded) -> None:
    """What a window left open ends (not timed, not through the services): the next window starts from agents
    with no chats and no offers, as the first did."""
    from django.utils import timezone

    from chat.models import Conversation, ConversationStatus
    from queueing.models import Offer, OfferStatus

    now = timezone.now()
    Conversation.objects.filter(tenant_id=seeded.tenant_id, status=ConversationStatus.OPEN).update(
        status=ConversationStatus.CLOSED, closed_at=now, disposition_id=seeded.disposition_id
    )
    Offer.objects.filter(tenant_id=seeded.tenant_id, status=OfferStatus.PENDING).update(
        status=OfferStatus.WITHDRAWN, decided_at=now
    )


def statistics_refresh() -> None:
    """ANALYZE (not timed). Rows loaded in bulk a moment ago have no statistics yet (autovacuum analyzes a table
    a minute or so later): the planner takes the 5,000 waiting chats for one row, and the routing's oldest-waiting
    read joins them all before keeping the first few (50-120 ms a call instead of 0.3 ms). A running system has
    statistics; so does each window here."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def window_facts(ids: list[int]) -> tuple[Mapping[int, tuple[str, int | None]], list[OfferRow], Mapping[int, int]]:
    from django.db.models import Count

    from chat.models import Conversation, Message
    from queueing.models import Offer

    conversations = {
        pk: (status, assignee_id)
        for pk, status, assignee_id in Conversation.objects.filter(pk__in=ids).values_list(
            "pk", "status", "assignee_id"
        )
    }
    offers = [
        OfferRow(*row)
        for row in Offer.objects.filter(conversation_id__in=ids).values_list(
            "conversation_id", "agent_id", "status", "created_at", "decided_at"
        )
    ]
    joined = dict(
        Message.objects.filter(conversation_id__in=ids, event="agent.joined")
        .values("conversation_id")
        .annotate(n=Count("id"))
        .values_list("conversation_id", "n")
    )
    return conversations, offers, joined


class Workers:
    def __init__(self, env: dict[str, str], specs: list[dict[str, Any]], logs: Path) -> None:
        self.logs = logs
        self.procs: list[subprocess.Popen[str]] = []
        for spec in specs:
            log = (logs / f"worker{spec['index']}.log").open("w")
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)],
                    cwd=REPO,
                    env=env,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    text=True,
                    preexec_fn=die_with_parent(15),
                )
            )

    def expect(self, word: str) -> None:
        for n, proc in enumerate(self.procs):
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if line.strip() != word:
                raise RuntimeError(f"worker {n} said {line!r} instead of {word!r}: see {self.logs}/worker{n}.log")

    def run(self, label: str, kind: str, commands: list[dict[str, Any]], postgres_pid: int) -> Window:
        outs = [self.logs / f"{label}-{n}.json" for n in range(len(self.procs))]
        for proc, command, out in zip(self.procs, commands, outs, strict=True):
            assert proc.stdin is not None
            proc.stdin.write(json.dumps({**command, "op": kind, "label": label, "out": str(out)}) + "\n")
            proc.stdin.flush()
        self.expect("ready")
        machine, postgres = sum(cpu_busy_seconds().values()), postgres_cpu(postgres_pid)
        for proc in self.procs:  # the barrier: every worker is waiting for this line
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        self.expect("done")
        window = Window(label, kind, [WorkerReport.from_json(json.loads(out.read_text())) for out in outs])
        window.wall_cpu = {
            "machine": sum(cpu_busy_seconds().values()) - machine,
            "postgres": postgres_cpu(postgres_pid) - postgres,
        }
        return window

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None and proc.stdin is not None:
                try:
                    proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                    proc.stdin.flush()
                except OSError:
                    pass
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                stop_pid(proc)  # type: ignore[arg-type]


def postgres_cpu(postmaster: int) -> float:
    return cpu_seconds(postmaster) + sum(cpu_seconds(pid) for pid in children_of(postmaster))


def worker_env(services: ThrowawayServices, layer: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DATABASE_URL": services.database_url,
        "REDIS_URL": services.redis_url,
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("CHANNEL_LAYER_BACKEND", "CELERY_BROKER_URL", "BENCH_SEEDING"):
        env.pop(name, None)
    if layer == "memory":
        # Nobody listens to what the services publish: without REDIS_URL the settings pick the in-memory
        # channel layer (and the local-memory cache; routing uses neither Celery nor the cache), which keeps
        # Redis out of the timing, as tests/queueing/test_accept_race.py does.
        env.pop("REDIS_URL")
    return env


# --- the run ---------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chats", type=int, default=5000, help="waiting chats per window (default 5000)")
    parser.add_argument("--agents", type=int, default=200, help="agents, max_chats 1..5 each (default 200)")
    parser.add_argument("--processes", type=int, default=4, help="worker processes sharing the agents (default 4)")
    parser.add_argument("--rounds", type=int, default=2, help="paired windows (bare, then real) (default 2)")
    parser.add_argument("--warmup", type=int, default=200, help="chats of an untimed first pair (default 200)")
    parser.add_argument(
        "--layer",
        choices=["memory", "redis"],
        default="memory",
        help="channel layer the workers publish to: in-memory (default) or the product's PubSub on Redis",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile worker 0 in the real windows")
    parser.add_argument(
        "--no-analyze",
        action="store_true",
        help="leave the bulk-loaded chats without planner statistics: the oldest-waiting read then takes 50-120 ms, "
        "which widens the race between concurrent offers (README)",
    )
    parser.add_argument("--quick", action="store_true", help="500 chats, 40 agents, one round: checks the harness")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.chats, args.agents, args.rounds, args.warmup = 500, 40, 1, 50
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker_main(args.worker)
    started = time.monotonic()
    services = ThrowawayServices()
    logs = Path(tempfile.mkdtemp(prefix="sb-routing-bench-"))
    workers: Workers | None = None
    windows: list[tuple[Window, Window]] = []
    violations = Violations()
    per_round: list[Violations] = []
    try:
        print("starting throwaway PostgreSQL and Redis on 127.0.0.1 (scripts/testservices.py)", flush=True)
        try:
            services.start()
        except ServiceUnavailable as exc:
            print(f"cannot bench: {exc} (apt-get install postgresql redis-server)", file=sys.stderr)
            return 2
        assert services.postgres is not None
        postgres_pid = services.postgres.pid
        env = worker_env(services, args.layer)
        os.environ.update(env)
        if args.layer == "memory":
            os.environ.pop("REDIS_URL", None)
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connections

        call_command("migrate", verbosity=0, interactive=False)
        seeded = seed(args.agents, args.chats, random.Random(SEED))
        caps = Counter(cap for _, cap in seeded.agents)
        print(
            f"seeded {args.agents} agents (max_chats {dict(sorted(caps.items()))}, {sum(c for _, c in seeded.agents)} "
            f"places) and {args.chats} bare-floor rows in {time.monotonic() - started:.1f} s",
            flush=True,
        )
        connections.close_all()
        share = [seeded.agents[n :: args.processes] for n in range(args.processes)]
        specs = [
            {
                "index": n,
                "tenant_id": seeded.tenant_id,
                "queue_id": seeded.queue_id,
                "disposition_id": seeded.disposition_id,
                "agents": share[n],
                "profile": str(logs / "worker0.prof") if args.profile and n == 0 else None,
            }
            for n in range(args.processes)
        ]
        pool = workers = Workers(env, specs, logs)

        def pair(label: str, chats: int) -> tuple[Window, Window, Violations]:
            bare_reset(seeded)
            real_ids = waiting_chats(
                seeded.tenant_id, seeded.widget_id, seeded.queue_id, seeded.queue_name, chats, f"r{label}"
            )
            if not args.no_analyze:
                statistics_refresh()
            connections.close_all()
            ids = seeded.bare_ids[:chats]
            bare = pool.run(
                f"bare-{label}",
                "bare",
                [{"ids": ids[n :: args.processes]} for n in range(args.processes)],
                postgres_pid,
            )
            real = pool.run(f"real-{label}", "real", [{"profile": label != "warm"}] * args.processes, postgres_pid)
            found = check_violations(
                [a for r in real.reports for a in r.accepted],
                *window_facts(real_ids),
                crashes=sum(len(r.crashes) for r in real.reports),
            )
            if bare.done != len(ids):
                found.crashes += 1
            round_close(seeded)
            connections.close_all()
            return bare, real, found

        warm_bare, warm_real, warm_found = pair("warm", min(args.warmup, args.chats))
        violations.add(warm_found)
        print(
            f"warm-up: {args.warmup} chats, bare {warm_bare.rate:.0f}/s, real {warm_real.rate:.0f}/s "
            f"(not counted; violations {warm_found.total})",
            flush=True,
        )
        for n in range(args.rounds):
            bare, real, found = pair(str(n + 1), args.chats)
            windows.append((bare, real))
            per_round.append(found)
            violations.add(found)
            print(
                f"round {n + 1}: bare {bare.rate:,.0f} updates/s ({bare.seconds:.2f} s), real {real.rate:,.0f} "
                f"assignments/s ({real.done} in {real.seconds:.2f} s): {real.rate / bare.rate:.1%}; "
                f"lost races {sum(r.lost_races for r in real.reports)}, violations {found.total}",
                flush=True,
            )
        crash_lines = [c for _, real in windows for r in real.reports for c in r.crashes]
        crash_lines += [c for r in warm_real.reports for c in r.crashes]
    finally:
        if workers is not None:
            workers.stop()
        services.stop()
    report(args, windows, violations, crash_lines, logs, time.monotonic() - started)
    if args.profile and windows:
        profile_summary(logs / f"worker0.prof.{windows[-1][1].label}")
    return 1 if violations.total else 0


def report(
    args: argparse.Namespace,
    windows: list[tuple[Window, Window]],
    violations: Violations,
    crash_lines: list[str],
    logs: Path,
    wall: float,
) -> None:
    reals = [real for _, real in windows]
    bares = [bare for bare, _ in windows]
    ratios = [real.rate / bare.rate for bare, real in windows if bare.rate]
    ratio = statistics.median(ratios) if ratios else 0.0
    real_rate = statistics.median(r.rate for r in reals)
    bare_rate = statistics.median(b.rate for b in bares)
    latencies = [x for r in reals for x in r.latencies]
    layer = "the in-memory channel layer" if args.layer == "memory" else "the PubSub channel layer on Redis"
    planner = "; no ANALYZE after the bulk seeds" if args.no_analyze else ""
    print()
    print(
        f"Switchboard routing bench: {args.chats:,} waiting web chats per window, {args.agents} agents (max_chats "
        f"{MAX_CHATS[0]}..{MAX_CHATS[1]}, seed {SEED}), {args.processes} worker processes; {args.rounds} paired "
        f"windows (bare, then real). Throwaway PostgreSQL (fsync off{planner}) on 127.0.0.1, events published "
        f"through a background loop per process to {layer}; this machine's {os.cpu_count()} CPUs; wall time "
        f"{wall:.0f} s."
    )
    print(f"{'path':<52}{'per s':>9}{'p50 ms':>9}{'p99 ms':>9}")
    print(f"{'bare floor (one conditional UPDATE, autocommit)':<52}{bare_rate:>9,.0f}{'':>9}{'':>9}")
    print(
        f"{'real routing (offers_refresh/end → accept)':<52}{real_rate:>9,.0f}"
        f"{percentile(latencies, 0.50) * 1000:>9.1f}{percentile(latencies, 0.99) * 1000:>9.1f}"
    )
    print(
        "per s: median window; latency: offer committed → accept committed, over every accept of the real windows "
        f"({len(latencies):,})"
    )
    print(
        f"real/bare, median of {len(ratios)} paired windows: {ratio:.1%}; per window: "
        + ", ".join(f"{x:.1%}" for x in ratios)
    )
    verdict = {True: "PASS", False: "MISS"}
    print(f"target ≥ {TARGET_RATE:,.0f} assignments/s: {real_rate:,.0f} {verdict[real_rate >= TARGET_RATE]}")
    print(f"target ≥ {TARGET_RATIO:.0%} of the bare floor: {ratio:.1%} {verdict[ratio >= TARGET_RATIO]}")
    print(
        f"violations (every window, warm-up included; each must be 0): chats assigned twice "
        f"{violations.assigned_twice}, "
        f"agents over their cap after an accept {violations.over_cap}, chats left waiting {violations.left_waiting}, "
        f"offers pending on chats no longer waiting {violations.stale_offers}, crashes {violations.crashes}"
    )
    print(
        f"also: chats offered to two agents at once {violations.offered_twice_at_once} (routing.py's \"one agent at a "
        f'time"); accepts of an own offer lost to another agent {sum(r.lost_races for w in reals for r in w.reports)}'
    )
    for line in Counter(crash_lines).most_common(5):
        print(f"  crash x{line[1]}: {line[0]}")
    where_time_goes(reals)
    print(f"logs: {logs}")


def postgres_ceiling(reals: list[Window], cpus: int) -> float:
    """Assignments per second this machine could make if the workers' Python cost nothing: every CPU given to
    PostgreSQL, at the CPU it spent per assignment in the real windows (0: nothing measured)."""
    done = sum(w.done for w in reals)
    postgres = sum(w.wall_cpu.get("postgres", 0.0) for w in reals)
    return cpus * done / postgres if done and postgres else 0.0


def where_time_goes(reals: list[Window]) -> None:
    seconds: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    done = sum(w.done for w in reals)
    for window in reals:
        for r in window.reports:
            seconds.update(r.seconds)
            calls.update(r.calls)
    if not done:
        return
    parts = ", ".join(
        f"{name} {seconds[name] / done * 1000:.2f} ms ({calls[name] / done:.2f} calls)"
        for name, _ in seconds.most_common()
    )
    print(f"worker time per assignment (summed over processes): {parts}")
    wall = sum(w.seconds for w in reals)
    workers = sum(r.cpu for w in reals for r in w.reports)
    postgres = sum(w.wall_cpu.get("postgres", 0.0) for w in reals)
    machine = sum(w.wall_cpu.get("machine", 0.0) for w in reals)
    capacity = wall * (os.cpu_count() or 1)
    print(
        f"CPU in the real windows ({wall:.1f} s x {os.cpu_count()} CPUs = {capacity:.1f} CPU-s): workers "
        f"{workers:.1f} s ({workers / done * 1000:.2f} ms per assignment), PostgreSQL {postgres:.1f} s "
        f"({postgres / done * 1000:.2f} ms), anything else {max(0.0, machine - workers - postgres):.1f} s, idle "
        f"{max(0.0, capacity - machine):.1f} s"
    )
    ceiling = postgres_ceiling(reals, os.cpu_count() or 1)
    if ceiling:
        print(
            f"PostgreSQL alone caps this path at {ceiling:,.0f} assignments/s: its CPU per assignment on all "
            f"{os.cpu_count()} CPUs, with the workers' Python costing nothing"
        )


def profile_summary(path: Path, lines: int = 25) -> None:
    """Worker 0's last real window under cProfile (its main thread: the publisher's loop thread is not in it)."""
    import io
    import pstats

    if not path.exists():
        return
    for key in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(str(path), stream=out).strip_dirs().sort_stats(key).print_stats(lines)
        print(f"\nworker 0, last real window, by {key} ({path}):")
        print("\n".join(line for line in out.getvalue().splitlines()[6:] if line.strip()))


if __name__ == "__main__":
    sys.exit(main())
