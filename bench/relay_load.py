"""`make bench`, second part: the relay and inbound webhooks, each against a bare floor in the same run.

Relay: an agent's message on an SMS conversation takes the product's whole path (`message_post` stores it and
its outbox row in one transaction, the commit triggers the Celery task, one real worker (prefork, 2 processes)
claims the row, calls Twilio with the `twilio` client and records the outcome) to a loopback fake Twilio. In
the same run, windows of it alternate with windows of a bare Celery task on the same worker that makes only
the same HTTP POST (requests.Session): sends/s, end-to-end latency (agent post → provider received) p50/p99,
duplicates and losses, and real/bare.

Inbound: signed Twilio webhooks (Twilio's algorithm, `RequestValidator`) into one daphne process, in windows
alternating with a bare view on the same process that answers 200. The webhook keeps each message in the inbox
and answers; the worker, running all along, processes them into conversations: after the last window the bench
waits until it has processed every one, and prints when that was and how many messages were stored.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.chat_load import django_env  # noqa: E402
from bench.infra import free_port, stop_pid, wait_for_port  # noqa: E402
from scripts.testservices import ServiceUnavailable, ThrowawayServices  # noqa: E402
from tests.support.fake_twilio import FakeTwilio, Held  # noqa: E402

ACCOUNT_SID = "AC" + "b" * 32
AUTH_TOKEN = secrets.token_hex(16)  # a Twilio auth token: 32 hex characters
SENDER = "+14155550100"
TARGET_RELAY_RATIO = 0.80
TARGET_INBOUND_RATIO = 0.50
WORKER_NAME = "bench-relay@localhost"


@dataclass
class Window:
    label: str
    sent: int
    submitted: dict[str, float] = field(default_factory=dict)  # body → when it was handed over (unix time)
    started: float = 0.0
    received: int = 0
    duplicates: int = 0
    lost: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    posting: float = 0.0  # seconds the producer took to hand every message over

    @property
    def rate(self) -> float:
        return self.received / self.seconds if self.seconds else 0.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def settle(window: Window, fake: FakeTwilio, grace: float) -> None:
    """Waits until every message of the window reached the fake (or nothing arrived for `grace` seconds).

    Reads only what arrived since its last look: the fake's request threads share this process (and its lock),
    so a rescan of everything every few milliseconds would slow the very sends it waits for."""
    prefix = window.label + "-"
    held: list[Held] = []
    offset, last_change = 0, time.monotonic()
    while True:
        with fake._lock:
            fresh = fake.held[offset:]
            offset += len(fresh)
        mine = [h for h in fresh if h.body.startswith(prefix)]
        if mine:
            held.extend(mine)
            last_change = time.monotonic()
        if mine and len({h.body for h in held}) >= window.sent:
            break
        if time.monotonic() - last_change > grace:
            break
        time.sleep(0.05)
    counts = Counter(h.body for h in held)
    window.received = len(counts)
    window.duplicates = sum(n - 1 for n in counts.values())
    window.lost = window.sent - len(counts)
    first_copy: dict[str, float] = {}
    for h in held:
        first_copy.setdefault(h.body, h.created.timestamp())
    window.latencies = [first_copy[b] - t for b, t in window.submitted.items() if b in first_copy]
    window.seconds = max(first_copy.values()) - window.started if first_copy else 0.0


# --- seeding (this process, on the throwaway database) --------------------------------------------------------


@dataclass
class Seeded:
    conversation_ids: list[int]
    phones: list[str]
    agent_id: int
    tenant_id: int
    webhook_key: str


def seed(conversations: int) -> Seeded:
    from agents.models import Presence
    from agents.services import agent_create, tenant_setup
    from channels_switch.services import connector_save, inbound_receive
    from chat.selectors import agent_actor_for
    from contactcenter.models import Role
    from queueing.services import agent_presence_change, conversation_accept, queue_member_add, queue_save

    tenant = tenant_setup(name="Relay bench", admin_email="admin@relay.example", slug="relay").tenant
    queue = queue_save(tenant=tenant, name="SMS")
    agent = agent_create(
        tenant=tenant, email="agent@relay.example", role=Role.AGENT, first_name="Ann", max_chats=conversations
    ).user
    queue_member_add(queue=queue, user=agent)
    connector = connector_save(
        tenant=tenant,
        kind="sms",
        provider="twilio",
        from_address=SENDER,
        account_sid=ACCOUNT_SID,
        secret=AUTH_TOKEN,
        queue=queue,
    )
    actor = agent_actor_for(agent)
    assert actor is not None
    phones = [f"+1415555{2000 + i:04d}" for i in range(conversations)]
    ids = []
    for i, phone in enumerate(phones):
        # Each customer texts first (the real inbound path), and the agent takes the conversation.
        inbound = inbound_receive(connector=connector, provider_id=f"SMseed{i:030d}", sender=phone, body="Hello")
        conversation_accept(actor=actor, conversation_id=inbound.conversation_id)
        ids.append(inbound.conversation_id)
    agent_presence_change(actor=actor, presence=Presence.ONLINE)
    return Seeded(ids, phones, agent.pk, tenant.pk, connector.webhook_key)


# --- the relay: real path and bare floor ----------------------------------------------------------------------


def real_window(label: str, count: int, seeded: Seeded, posters: int) -> Window:
    """`count` agent messages posted through `message_post` by `posters` threads (the console's path, minus the
    socket), round-robin over the conversations."""
    from django.contrib.auth import get_user_model
    from django.db import connections

    from chat.selectors import agent_actor_for
    from chat.services import message_post

    window = Window(label=label, sent=count)
    lock = threading.Lock()
    agent = get_user_model().objects.get(pk=seeded.agent_id)

    def post(indices: range) -> None:
        actor = agent_actor_for(agent)
        assert actor is not None
        try:
            for i in indices:
                body = f"{label}-{i}"
                message_post(
                    actor=actor,
                    conversation_id=seeded.conversation_ids[i % len(seeded.conversation_ids)],
                    body=body,
                    client_id=body,
                )
                done = time.time()
                with lock:
                    window.submitted[body] = done
        finally:
            connections.close_all()

    window.started = time.time()
    threads = [threading.Thread(target=post, args=(range(t, count, posters),)) for t in range(posters)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    window.posting = time.time() - window.started
    return window


def bare_window(label: str, count: int, seeded: Seeded, fake_url: str) -> Window:
    from bench.relay_tasks import bare_post

    url = f"{fake_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    window = Window(label=label, sent=count)
    window.started = time.time()
    for i in range(count):
        body = f"{label}-{i}"
        bare_post.delay(url, ACCOUNT_SID, AUTH_TOKEN, seeded.phones[i % len(seeded.phones)], SENDER, body)
        window.submitted[body] = time.time()
    window.posting = time.time() - window.started
    return window


def consuming(on: bool) -> None:
    """Stops or restarts the worker's taking of tasks (Celery's remote control), waiting for its answer."""
    from contactcenter.celery import app

    if on:
        app.control.add_consumer("switchboard", destination=[WORKER_NAME], reply=True, timeout=10)
    else:
        app.control.cancel_consumer("switchboard", destination=[WORKER_NAME], reply=True, timeout=10)


def drained(make: Any, *args: Any) -> Window:
    """A throughput window: everything is handed over while the worker takes nothing, then the worker is let
    go; sends/s runs from then to the last copy the fake received (the producer's cost is not in it)."""
    consuming(False)
    try:
        window = make(*args)
    finally:
        consuming(True)
    window.started = time.time()
    return window


def until_idle(window: Window, redis_url: str) -> None:
    """A drained window ends when the worker has nothing left (the tasks whose rows a drain already sent still
    run, and cost): its queue is empty and it runs or holds no task. Its sends/s counts to then."""
    import redis

    from contactcenter.celery import app

    broker = redis.Redis.from_url(redis_url)
    inspect = app.control.inspect(destination=[WORKER_NAME], timeout=1.0, limit=1)  # answers on its reply
    while True:
        if broker.llen("switchboard") == 0:
            busy = [*(inspect.active() or {}).values(), *(inspect.reserved() or {}).values()]
            if not any(busy):
                break
        time.sleep(0.05)
    window.seconds = max(window.seconds, time.time() - window.started)


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "celery", "-A", "contactcenter", "worker", "-l", "warning", "-n", WORKER_NAME]
    command += ["--pool", "prefork", "--concurrency", "2", "-Q", "switchboard", "--include", "bench.relay_tasks"]
    command += ["--without-mingle", "--without-gossip"]
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    from contactcenter.celery import app

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the Celery worker exited with {proc.returncode}: see {log}")
        if any(WORKER_NAME in reply for reply in app.control.ping(destination=[WORKER_NAME], timeout=1.0)):
            return proc
    stop_pid(proc)
    raise RuntimeError(f"the Celery worker did not answer a ping in 60 s: see {log}")


def delivery_states() -> dict[str, int]:
    from django.db import connections
    from django.db.models import Count

    from channels_switch.models import Delivery

    try:
        return dict(Delivery.objects.values_list("state").annotate(n=Count("id")).values_list("state", "n"))
    finally:
        connections.close_all()


# --- inbound webhooks -----------------------------------------------------------------------------------------


def signed_form(url: str, index: int, label: str, phones: list[str]) -> tuple[dict[str, str], str]:
    from twilio.request_validator import RequestValidator

    form = {
        "MessageSid": f"SM{label}{index:026d}"[:34],
        "AccountSid": ACCOUNT_SID,
        "From": phones[index % len(phones)],
        "To": SENDER,
        "Body": f"{label} inbound {index}",
        "NumMedia": "0",
        "NumSegments": "1",
        "SmsStatus": "received",
        "ApiVersion": "2010-04-01",
    }
    return form, RequestValidator(AUTH_TOKEN).compute_signature(url, form)


async def webhook_window(
    base: str, path: str, count: int, label: str, phones: list[str], concurrency: int
) -> tuple[float, Counter[int]]:
    import aiohttp

    url = f"{base}{path}"
    requests = [signed_form(url, i, label, phones) for i in range(count)]
    statuses: Counter[int] = Counter()
    queue: asyncio.Queue[tuple[dict[str, str], str]] = asyncio.Queue()
    for item in requests:
        queue.put_nowait(item)

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            form, signature = queue.get_nowait()
            async with session.post(url, data=form, headers={"X-Twilio-Signature": signature}) as response:
                await response.read()
                statuses[response.status] += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.monotonic()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        seconds = time.monotonic() - started
    return count / seconds, statuses


# --- the run --------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000, help="agent messages on the real path (default 2000)")
    parser.add_argument("--windows", type=int, default=4, help="paired windows each path is split into")
    parser.add_argument("--conversations", type=int, default=50, help="SMS conversations they go to (one agent: ≤ 50)")
    parser.add_argument("--posters", type=int, default=4, help="threads posting the agents' messages")
    parser.add_argument("--live", type=int, default=100, help="messages per window handed over live, for latency")
    parser.add_argument("--webhooks", type=int, default=2000, help="signed inbound webhooks (default 2000)")
    parser.add_argument("--concurrency", type=int, default=16, help="webhook requests in flight at once")
    parser.add_argument("--grace", type=float, default=20.0, help="seconds without progress before counting losses")
    parser.add_argument("--quick", action="store_true", help="a fast run that checks the harness, not the figures")
    args = parser.parse_args(argv)
    if args.quick:
        args.messages, args.windows, args.conversations, args.webhooks, args.live = 200, 2, 20, 200, 20
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    services = ThrowawayServices()
    fake = FakeTwilio(ACCOUNT_SID, AUTH_TOKEN).start()
    worker: subprocess.Popen[bytes] | None = None
    server: subprocess.Popen[bytes] | None = None
    import tempfile

    logs = Path(tempfile.mkdtemp(prefix="sb-relay-bench-"))
    try:
        print("starting throwaway PostgreSQL and Redis on 127.0.0.1 (scripts/testservices.py)", flush=True)
        try:
            services.start()
        except ServiceUnavailable as exc:
            print(f"cannot bench: {exc} (apt-get install postgresql redis-server)", file=sys.stderr)
            return 2
        port = free_port()
        env = django_env(services, args)  # the chat bench's: throwaway services, bench settings
        env.update(
            {
                "SITE_URL": f"http://127.0.0.1:{port}",
                "TWILIO_API_BASE_URL": fake.url,
                "MESSAGE_RATE_COUNT": "1000000",
                "LOG_LEVEL": "WARNING",
            }
        )
        os.environ.update(env)
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connections

        call_command("migrate", verbosity=0, interactive=False)
        seeded = seed(args.conversations)
        connections.close_all()
        # Agents post from a server process, whose loop sends the events their commits publish: the same here.
        from contactcenter.realtime import start_background_publisher

        start_background_publisher()
        print(f"seeded {args.conversations} SMS conversations in {time.monotonic() - started:.1f} s", flush=True)
        worker = start_worker(env, logs / "worker.log")

        # Warm-up: the worker's processes import, connect and keep their connections from here on.
        settle(bare_window("warmbare", 20, seeded, fake.url), fake, args.grace)
        settle(real_window("warmreal", 20, seeded, args.posters), fake, args.grace)
        per_window = max(1, args.messages // args.windows)
        bare: list[Window] = []
        real: list[Window] = []
        live: dict[str, list[Window]] = {"bare": [], "real": []}
        for w in range(args.windows):
            # Throughput: the worker drains what was handed over while it waited.
            bare.append(drained(bare_window, f"bare{w}", per_window, seeded, fake.url))
            settle(bare[-1], fake, args.grace)
            until_idle(bare[-1], services.redis_url)
            real.append(drained(real_window, f"real{w}", per_window, seeded, args.posters))
            settle(real[-1], fake, args.grace)
            until_idle(real[-1], services.redis_url)
            # Latency: handed over live, the way agents write (one poster, its own pace).
            live["bare"].append(bare_window(f"livebare{w}", args.live, seeded, fake.url))
            settle(live["bare"][-1], fake, args.grace)
            live["real"].append(real_window(f"livereal{w}", args.live, seeded, 1))
            settle(live["real"][-1], fake, args.grace)
            until_idle(live["real"][-1], services.redis_url)
            print(
                f"window {w + 1}: bare {bare[-1].rate:.0f} sends/s, real {real[-1].rate:.0f} sends/s "
                f"(posting took {real[-1].posting:.1f} s before the worker was let go)",
                flush=True,
            )
        states = delivery_states()

        # Inbound webhooks into one daphne process.
        server_log = (logs / "daphne.log").open("wb")
        server = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "bench.asgi:application"],
            cwd=REPO,
            env={**env, "BENCH_BARE_HOOK": "1"},
            stdout=server_log,
            stderr=subprocess.STDOUT,
        )
        wait_for_port(port, 60, server)
        base = f"http://127.0.0.1:{port}"
        real_path = f"/hooks/twilio/{seeded.webhook_key}/inbound/"
        per_hook_window = max(1, args.webhooks // args.windows)
        hook_rates: dict[str, list[float]] = {"bare": [], "real": []}
        hook_statuses: dict[str, Counter[int]] = {"bare": Counter(), "real": Counter()}
        asyncio.run(webhook_window(base, "/bench/hook/", 50, "warm", seeded.phones, args.concurrency))
        asyncio.run(webhook_window(base, real_path, 50, "warm", seeded.phones, args.concurrency))
        for w in range(args.windows):
            for name, path in (("bare", "/bench/hook/"), ("real", real_path)):
                rate, statuses = asyncio.run(
                    webhook_window(base, path, per_hook_window, f"{name}{w}", seeded.phones, args.concurrency)
                )
                hook_rates[name].append(rate)
                hook_statuses[name].update(statuses)
        answered = time.monotonic()
        processed_after = inbox_drained(timeout=300.0)
        drained_seconds = time.monotonic() - answered
        stored = inbound_stored()
    finally:
        for proc in (server, worker):
            if proc is not None:
                stop_pid(proc)
        fake.stop()
        services.stop()

    def summary(windows: list[Window], timed: list[Window]) -> tuple[float, float, float, int, int]:
        received = sum(w.received for w in windows)
        seconds = sum(w.seconds for w in windows)
        latencies = [x for w in timed for x in w.latencies]
        return (
            received / seconds if seconds else 0.0,
            percentile(latencies, 0.50) * 1000,
            percentile(latencies, 0.99) * 1000,
            sum(w.duplicates for w in windows + timed),
            sum(w.lost for w in windows + timed),
        )

    bare_rate, bare_p50, bare_p99, bare_dup, bare_lost = summary(bare, live["bare"])
    real_rate, real_p50, real_p99, real_dup, real_lost = summary(real, live["real"])
    pair_ratios = [r.rate / b.rate for r, b in zip(real, bare, strict=True) if b.rate]
    ratio = statistics.median(pair_ratios) if pair_ratios else 0.0
    hook_bare = statistics.median(hook_rates["bare"])
    hook_real = statistics.median(hook_rates["real"])
    hook_ratio = hook_real / hook_bare if hook_bare else 0.0
    print()
    print(
        f"Switchboard relay bench: {per_window * args.windows} agent messages on {args.conversations} SMS "
        f"conversations, one Celery worker (prefork, 2 processes) on Redis, a loopback fake Twilio; "
        f"{args.windows} paired windows (bare, then real). Throwaway PostgreSQL (fsync off) and Redis on "
        f"127.0.0.1, all on this machine's {os.cpu_count()} CPUs; wall time {time.monotonic() - started:.0f} s."
    )
    print(
        "sends/s: each path's messages handed over while the worker waited, then drained (from letting it go "
        "until it has nothing left to run, every copy at the fake).\n"
        f"latency: {args.live} more per window handed over live by one poster, from the agent's post committed "
        "(real) or the task queued (bare) to the fake provider receiving the POST."
    )
    print(f"{'path':<38}{'sends/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'dup':>6}{'lost':>6}")
    for name, (rate, p50, p99, dup, lost) in (
        ("bare Celery task (requests POST)", (bare_rate, bare_p50, bare_p99, bare_dup, bare_lost)),
        ("real relay (outbox → twilio client)", (real_rate, real_p50, real_p99, real_dup, real_lost)),
    ):
        print(f"{name:<38}{rate:>9.0f}{p50:>9.1f}{p99:>9.1f}{dup:>6}{lost:>6}")
    print(
        f"real/bare, median of paired windows: {ratio:.2f} (target ≥ {TARGET_RELAY_RATIO:.2f}); per window: "
        + ", ".join(f"{x:.2f}" for x in pair_ratios)
    )
    print(f"outbox rows by state after the run: {states}")
    print(
        f"inbound webhooks into one daphne process, {args.concurrency} in flight, {args.windows} paired windows of "
        f"{per_hook_window}: bare view {hook_bare:.0f} req/s (answers {dict(hook_statuses['bare'])}), signed Twilio "
        f"webhook stored as a message {hook_real:.0f} req/s (answers {dict(hook_statuses['real'])}); "
        f"real/bare {hook_ratio:.2f} (target ≥ {TARGET_INBOUND_RATIO:.2f}); the worker had processed every kept "
        f"webhook {drained_seconds:.1f} s after the last was answered ({processed_after} still pending); inbound "
        f"messages stored: {stored}"
    )
    print(f"logs: {logs}")
    clean = real_dup == 0 and real_lost == 0 and bare_dup == 0 and bare_lost == 0
    clean = clean and set(hook_statuses["real"]) == {200} and processed_after == 0
    return 0 if clean else 1


def inbox_drained(timeout: float) -> int:
    """Waits until the worker has processed every webhook the inbox kept; returns how many are still pending."""
    from django.db import connections

    from channels_switch.models import InboundReceipt, InboundState

    deadline = time.monotonic() + timeout
    try:
        while True:
            pending = InboundReceipt.objects.filter(state=InboundState.PENDING).count()
            if pending == 0 or time.monotonic() > deadline:
                return pending
            time.sleep(0.1)
    finally:
        connections.close_all()


def inbound_stored() -> int:
    from django.db import connections

    from chat.models import Message, SenderKind

    try:
        return Message.objects.filter(sender_kind=SenderKind.VISITOR, body__contains=" inbound ").count()
    finally:
        connections.close_all()


if __name__ == "__main__":
    sys.exit(main())
