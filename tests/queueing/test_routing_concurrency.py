"""The routing engine under real concurrency on PostgreSQL: several OS processes at once start visitors' chats
into one queue while agents (random caps) accept their offers, reject some, end chats, go offline and come back,
and the sweep runs meanwhile. Afterwards the database must show the invariants of live-chat routing:

- no chat assigned twice (one accepted offer at most, one `agent.joined` notice, its assignee the acceptor);
- no agent ever over their cap (each process checks the agent it plays right after every accept) and, at the
  end, no agent holding more offers than their room, and no offer pending on a chat that no longer waits;
- no chat left waiting while an eligible agent had room (after one sweep pass);
- every chat assigned (open or closed), waiting in the queue, or kept as an offline message.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from agents.models import AgentProfile, Presence
from chat.models import Conversation, ConversationStatus, Message
from contactcenter.wiring.tasks import sweep_once
from queueing.models import Offer, OfferStatus, Queue
from tests.factories import DispositionFactory
from tests.queueing.test_accept_race import child_env
from tests.realtime.test_protocol import make_setup

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 4
AGENTS_PER_PROCESS = 5
CHATS_PER_PROCESS = 50
TIMEOUT = 240.0

# One process: starts its share of visitors' chats and plays its agents, in a random interleaving, all
# processes released at once. Each step's outcome is recorded; an unexpected exception fails the test.
CHILD = r"""
import json, random, sys

import django

django.setup()

from django.contrib.auth import get_user_model
from django.db import connection

from chat.models import Conversation, ConversationStatus
from chat.selectors import agent_actor_for
from contactcenter.errors import ApplicationError
from contactcenter.wiring.tasks import sweep_once
from queueing.models import Offer, OfferStatus
from queueing.services import (
    agent_presence_change, conversation_accept, conversation_end, conversation_request, offer_reject,
)
from chat.models import Widget
from agents.models import Disposition

spec = json.loads(sys.argv[1])
rng = random.Random(spec["seed"])
User = get_user_model()
agents = [agent_actor_for(User.objects.get(pk=pk)) for pk in spec["agents"]]
caps = {a.user.pk: spec["caps"][str(a.user.pk)] for a in agents}
widget = Widget.objects.get(pk=spec["widget"])
status = Disposition.objects.filter(tenant_id=widget.tenant_id, is_active=True).values_list("pk", flat=True).first()
connection.ensure_connection()
print("ready", flush=True)
sys.stdin.readline()
to_start = spec["chats"]
log = {"over_cap": [], "crashes": [], "accepted": [], "started": 0, "offline_starts": 0}
steps = 0
while to_start > 0 or steps < spec["min_steps"]:
    steps += 1
    try:
        roll = rng.random()
        if to_start > 0 and roll < 0.35:
            to_start -= 1
            request = conversation_request(
                widget=widget, visitor_id=f"p{spec['seed']}-{to_start}", answers={"name": "V"}, message="hello"
            )
            log["started"] += 1
            log["offline_starts"] += int(request.offline)

            continue
        actor = rng.choice(agents)
        offer = (
            Offer.objects.filter(agent=actor.user, status=OfferStatus.PENDING).order_by("pk").first()
        )
        if offer is not None and roll < 0.85:
            if rng.random() < 0.15:
                offer_reject(actor=actor, conversation_id=offer.conversation_id)
            else:
                conversation_accept(actor=actor, conversation_id=offer.conversation_id)
                log["accepted"].append(offer.conversation_id)
                open_now = Conversation.objects.filter(
                    assignee=actor.user, status=ConversationStatus.OPEN
                ).count()
                if open_now > caps[actor.user.pk]:
                    log["over_cap"].append([actor.user.pk, open_now])
            continue
        if roll < 0.93:
            mine = Conversation.objects.filter(assignee=actor.user, status=ConversationStatus.OPEN).first()
            if mine is not None:
                conversation_end(actor=actor, conversation_id=mine.pk, disposition_id=status)
            continue
        if roll < 0.97:
            presence = rng.choice(["offline", "online", "online", "online"])
            agent_presence_change(actor=actor, presence=presence)
            continue
        sweep_once()
    except ApplicationError as error:
        if error.code not in {"already_taken", "at_capacity", "not_waiting"}:
            log["crashes"].append(f"{error.code}: {error.message}")
    except Exception as error:
        log["crashes"].append(f"{type(error).__name__}: {error}")
# Everyone ends online, so the end state can be judged against a team that is there.
for actor in agents:
    agent_presence_change(actor=actor, presence="online")
with open(spec["out"], "w") as out:
    json.dump(log, out)
"""


def run_processes(specs: list[dict], workdir: Path) -> list[dict]:
    env = child_env()
    children = []
    try:
        for n, spec in enumerate(specs):
            spec = {**spec, "out": str(workdir / f"p{n}.json")}
            children.append(
                (
                    spec,
                    subprocess.Popen(
                        [sys.executable, "-c", CHILD, json.dumps(spec)],
                        cwd=ROOT,
                        env=env,
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        text=True,
                    ),
                )
            )
        for _, child in children:
            assert child.stdout is not None
            lines: list[str] = []
            while not lines or lines[-1] not in {"ready\n", ""}:
                lines.append(child.stdout.readline())
            assert lines[-1] == "ready\n", f"a process did not start: {''.join(lines)!r}"
        for _, child in children:  # the barrier
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        for _, child in children:
            assert child.wait(timeout=TIMEOUT) == 0, "a process failed"
    finally:
        for _, child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    return [json.loads(Path(spec["out"]).read_text()) for spec, _ in children]


def test_routing_keeps_its_invariants_under_concurrent_processes(tmp_path):
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    setup = make_setup(agents=PROCESSES * AGENTS_PER_PROCESS, max_chats=1)
    DispositionFactory(tenant=setup.tenant, name="Solved")  # what agents close their chats with
    # Chats wait (a full queue is tested elsewhere); offers expire fast, so expiry races accepts and rejects.
    Queue.objects.filter(pk=setup.queue.pk).update(capacity=1000, answer_seconds=1)
    caps = {user.pk: rng.randint(1, 3) for user in setup.agents}
    for user_id, cap in caps.items():
        AgentProfile.objects.filter(user_id=user_id).update(max_chats=cap)
    agent_ids = [user.pk for user in setup.agents]
    specs = [
        {
            "seed": rng.randrange(2**32),
            "agents": agent_ids[n * AGENTS_PER_PROCESS : (n + 1) * AGENTS_PER_PROCESS],
            "caps": {str(user_id): caps[user_id] for user_id in agent_ids},
            "widget": setup.widget.pk,
            "chats": CHATS_PER_PROCESS,
            "min_steps": 600,
        }
        for n in range(PROCESSES)
    ]
    logs = run_processes(specs, tmp_path)
    context = f"(seed {seed})"
    assert [crash for log in logs for crash in log["crashes"]] == [], context
    assert [entry for log in logs for entry in log["over_cap"]] == [], context
    assert sum(log["started"] for log in logs) == PROCESSES * CHATS_PER_PROCESS

    sweep_once()  # one pass, as the beat would run it
    conversations = list(Conversation.objects.filter(tenant=setup.tenant))
    assert len(conversations) == PROCESSES * CHATS_PER_PROCESS, context

    # No chat assigned twice.
    accepted = Counter(
        Offer.objects.filter(tenant=setup.tenant, status=OfferStatus.ACCEPTED).values_list("conversation_id", flat=True)
    )
    assert [c for c, n in accepted.items() if n > 1] == [], context
    reported = Counter(c for log in logs for c in log["accepted"])
    assert [c for c, n in reported.items() if n > 1] == [], context
    joined = Counter(
        Message.objects.filter(tenant=setup.tenant, event="agent.joined").values_list("conversation_id", flat=True)
    )
    assert [c for c, n in joined.items() if n > 1] == [], context
    for conversation in conversations:
        if conversation.pk in reported:
            assert conversation.assignee_id is not None, context

    # Every chat assigned, waiting in the queue, or kept as an offline message.
    states = Counter(
        "assigned"
        if c.assignee_id is not None
        else "offline"
        if c.started_offline
        else "waiting"
        if c.status == ConversationStatus.WAITING
        else f"other:{c.status}"
        for c in conversations
    )
    assert set(states) <= {"assigned", "offline", "waiting"}, (states, context)
    # The run did what it is for: many chats were assigned, by processes racing each other.
    assert states["assigned"] >= 20 and len(reported) == states["assigned"], (states, len(reported), context)
    print(f"routing under concurrency {context}: {dict(states)}")

    # No offer left pending on a chat that no longer waits.
    dangling = Offer.objects.filter(tenant=setup.tenant, status=OfferStatus.PENDING).exclude(
        conversation__status=ConversationStatus.WAITING
    )
    assert list(dangling.values_list("pk", "conversation_id")) == [], context

    # No agent over their cap, counting the offers they hold.
    profiles = {p.user_id: p for p in AgentProfile.objects.filter(user_id__in=agent_ids)}
    open_chats = Counter(
        Conversation.objects.filter(assignee_id__in=agent_ids, status=ConversationStatus.OPEN).values_list(
            "assignee_id", flat=True
        )
    )
    held = Counter(
        Offer.objects.filter(agent_id__in=agent_ids, status=OfferStatus.PENDING).values_list("agent_id", flat=True)
    )
    over = {
        a: (open_chats[a], held[a], p.max_chats) for a, p in profiles.items() if open_chats[a] + held[a] > p.max_chats
    }
    assert over == {}, context

    # No chat left waiting while an eligible agent had room: each waiting chat holds an offer, or every online
    # agent with room was offered it already (rejected or missed it).
    pending = {o.conversation_id for o in Offer.objects.filter(tenant=setup.tenant, status=OfferStatus.PENDING)}
    for conversation in conversations:
        if conversation.status != ConversationStatus.WAITING or conversation.started_offline:
            continue
        if conversation.pk in pending:
            continue
        offered_before = set(Offer.objects.filter(conversation=conversation).values_list("agent_id", flat=True))
        free = [
            a
            for a, p in profiles.items()
            if p.presence == Presence.ONLINE and open_chats[a] + held[a] < p.max_chats and a not in offered_before
        ]
        assert free == [], f"conversation {conversation.pk} waits while {free} have room {context}"
