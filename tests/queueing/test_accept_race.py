"""Several real processes accepting the same waiting chats at once on PostgreSQL: exactly one winner each.

`conversation_accept` decides the race with one conditional UPDATE (`... WHERE status = 'waiting' AND
assignee_id IS NULL`); the sequential accept tests show that a second accept is refused, this one shows
that it is refused when the two really overlap, in separate OS processes with their own connections.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from django.db import connection

from agents.models import AgentProfile
from chat.models import Conversation, ConversationStatus
from queueing.models import Offer, OfferStatus
from queueing.services import conversation_request
from tests.realtime.test_protocol import make_setup
from tests.support.servers import database_url

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
AGENTS = 4  # one process each
CONVERSATIONS = 40
MAX_CHATS = CONVERSATIONS  # room for every chat: only the race decides who gets what
REFUSALS = {"already_taken"}  # what a loser is told (contactcenter.errors.Conflict, HTTP 409)
TIMEOUT = 60.0

# One agent, in its own interpreter: set up and connect, say "ready", wait for the go line on stdin (the start
# barrier), then accept every conversation in the given order as fast as it can, recording each outcome with
# its start and end on the system-wide monotonic clock.
CHILD = r"""
import json, sys, time

import django

django.setup()

from django.contrib.auth import get_user_model
from django.db import connection

from chat.selectors import agent_actor_for
from contactcenter.errors import ApplicationError
from queueing.services import conversation_accept

spec = json.loads(sys.argv[1])
actor = agent_actor_for(get_user_model().objects.get(pk=spec["agent_id"]))
connection.ensure_connection()
print("ready", flush=True)
sys.stdin.readline()
results = []
for conversation_id in spec["order"]:
    started = time.monotonic()
    try:
        conversation_accept(actor=actor, conversation_id=conversation_id)
        outcome = "won"
    except ApplicationError as error:
        outcome = error.code
    except Exception as error:  # a 500 in production: reported, and the test fails on it
        outcome = f"crash: {type(error).__name__}: {error}"
    results.append([conversation_id, outcome, started, time.monotonic()])
with open(spec["out"], "w") as out:
    json.dump(results, out)
"""


def child_env() -> dict[str, str]:
    """This process's environment, with DATABASE_URL naming the *test* database pytest-django created."""
    env = dict(os.environ)
    env.update(DATABASE_URL=database_url(connection.settings_dict), DJANGO_SETTINGS_MODULE="contactcenter.settings")
    # Nobody listens to what the accepts publish: the in-memory layer keeps Redis out of the timing.
    for name in ("REDIS_URL", "CELERY_BROKER_URL", "REQUIRE_SERVICES", "PYTEST_CURRENT_TEST"):
        env.pop(name, None)
    return env


def race(agent_ids: list[int], orders: list[list[int]], workdir: Path) -> dict[int, list[list]]:
    """Runs one accepting process per agent, all released at once; returns each agent's recorded attempts."""
    env = child_env()
    children: dict[int, subprocess.Popen[str]] = {}
    outputs = {agent_id: workdir / f"agent-{agent_id}.json" for agent_id in agent_ids}
    try:
        for agent_id, order in zip(agent_ids, orders, strict=True):
            spec = json.dumps({"agent_id": agent_id, "order": order, "out": str(outputs[agent_id])})
            children[agent_id] = subprocess.Popen(
                [sys.executable, "-c", CHILD, spec],
                cwd=ROOT,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        for agent_id, child in children.items():
            assert child.stdout is not None
            lines = []  # blocks until the child is connected, or has died (EOF)
            while not lines or lines[-1] not in {"ready\n", ""}:
                lines.append(child.stdout.readline())
            assert lines[-1] == "ready\n", f"the process of agent {agent_id} did not start: {''.join(lines)!r}"
        for child in children.values():  # the barrier: every process is waiting on this line
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        deadline = time.monotonic() + TIMEOUT
        for agent_id, child in children.items():
            code = child.wait(timeout=max(0.1, deadline - time.monotonic()))
            assert code == 0, f"the process of agent {agent_id} exited with {code}"
    finally:
        for child in children.values():
            if child.poll() is None:
                child.kill()
                child.wait()
    return {agent_id: json.loads(path.read_text()) for agent_id, path in outputs.items()}


def test_processes_accepting_the_same_chats_at_once_get_exactly_one_winner_each(tmp_path):
    """4 agents in 4 processes each try to accept all 40 waiting chats, offered to all of them.

    Every process walks the same shuffled order, so every chat is contested by all four at about the same
    moment (the widest overlap of read-check and UPDATE that a broken accept would let through twice). Each
    chat then has exactly one process that reports a win, and the database agrees; every other process was
    refused with `already_taken` (never an unexpected exception); its offer is accepted (its agent won) or withdrawn.

    That the race was real is asserted, not assumed: every process attempted every chat, the wins are spread
    over at least two processes, and for at least one chat in four a losing attempt overlapped the winning one
    in time (measured on CLOCK_MONOTONIC, shared by all processes). Which process wins, and how many chats
    overlap exactly, depends on the scheduler and cannot be made deterministic; these bounds are far below
    what a run shows (typically most chats overlap and every process wins some), so they do not flake, yet a
    run that raced nothing (processes serialised one after the other) fails them.
    """
    setup = make_setup(agents=AGENTS, max_chats=MAX_CHATS)
    widget = setup.widget
    agent_ids = [user.pk for user in setup.agents]
    conversation_ids = []
    for n in range(CONVERSATIONS):
        request = conversation_request(widget=widget, visitor_id=f"racer-{n}", answers={"name": f"Visitor {n}"})
        assert request.offline is False
        conversation_ids.append(request.conversation.pk)
    offered = Counter(Offer.objects.filter(status=OfferStatus.PENDING).values_list("conversation_id", flat=True))
    assert offered == dict.fromkeys(conversation_ids, 1)  # each chat offered to one agent; all may pick it up
    offered_to = dict(
        Offer.objects.filter(conversation_id__in=conversation_ids).values_list("conversation_id", "agent_id")
    )
    assert len(set(offered_to.values())) == AGENTS  # longest idle first: the offers went round

    seed = random.randrange(2**32)
    order = list(conversation_ids)
    random.Random(seed).shuffle(order)
    attempts = race(agent_ids, [order] * AGENTS, tmp_path)
    context = f"(seed {seed})"

    # Who reported what, per conversation.
    outcomes: dict[int, dict[int, str]] = defaultdict(dict)
    spans: dict[int, dict[int, tuple[float, float]]] = defaultdict(dict)
    for agent_id, records in attempts.items():
        assert sorted(record[0] for record in records) == sorted(conversation_ids), context
        for conversation_id, outcome, started, ended in records:
            outcomes[conversation_id][agent_id] = outcome
            spans[conversation_id][agent_id] = (started, ended)
    crashes = [(c, a, o) for c, by in outcomes.items() for a, o in by.items() if o not in REFUSALS | {"won"}]
    assert crashes == [], f"unexpected outcomes {context}"
    won_by = {
        conversation_id: sorted(agent_id for agent_id, outcome in outcomes[conversation_id].items() if outcome == "won")
        for conversation_id in conversation_ids
    }
    not_one = {conversation_id: won for conversation_id, won in won_by.items() if len(won) != 1}
    assert not_one == {}, f"{len(not_one)} of {CONVERSATIONS} chats not won exactly once {context}"
    winners = {conversation_id: won[0] for conversation_id, won in won_by.items()}

    # The database agrees with the processes.
    rows = dict(Conversation.objects.filter(pk__in=conversation_ids).values_list("pk", "assignee_id"))
    assert rows == winners, context
    assert set(Conversation.objects.filter(pk__in=conversation_ids).values_list("status", flat=True)) == {
        ConversationStatus.OPEN
    }
    offers = defaultdict(dict)
    for conversation_id, agent_id, status in Offer.objects.filter(conversation_id__in=conversation_ids).values_list(
        "conversation_id", "agent_id", "status"
    ):
        offers[conversation_id][agent_id] = status
    for conversation_id, winner in winners.items():
        mine = offered_to[conversation_id]
        expected = {mine: OfferStatus.ACCEPTED if mine == winner else OfferStatus.WITHDRAWN}
        assert offers[conversation_id] == expected, f"offers of conversation {conversation_id} {context}"
    load = Counter(winners.values())
    caps = dict(AgentProfile.objects.filter(user_id__in=agent_ids).values_list("user_id", "max_chats"))
    assert all(load[agent_id] <= caps[agent_id] for agent_id in agent_ids)

    # The race was real.
    assert len(load) >= 2, f"one process won everything: {dict(load)} {context}"
    overlapped = 0
    for conversation_id, winner in winners.items():
        won_from, won_to = spans[conversation_id][winner]
        if any(
            started < won_to and won_from < ended
            for agent_id, (started, ended) in spans[conversation_id].items()
            if agent_id != winner
        ):
            overlapped += 1
    assert overlapped >= CONVERSATIONS // 4, f"only {overlapped} of {CONVERSATIONS} chats raced {context}"
