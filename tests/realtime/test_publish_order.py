"""Committed events leave from the server's loop, per group in commit order, without holding the committer."""

from __future__ import annotations

import asyncio
import threading

import pytest
from channels.layers import InMemoryChannelLayer
from django.db import connections, transaction

from contactcenter import realtime

pytestmark = pytest.mark.django_db(transaction=True)

gate: asyncio.Event | None = None


class GatedLayer(InMemoryChannelLayer):
    """Notes every group_send with its thread; sends wait for the test to open the gate; "boom" fails."""

    sent: list[tuple[str, int]] = []
    threads: set[int] = set()

    async def group_send(self, group, message):
        assert gate is not None
        await gate.wait()
        if message.get("boom"):
            raise ConnectionError("Redis went away")
        type(self).threads.add(threading.get_ident())
        type(self).sent.append((group, message["n"]))


@pytest.fixture
def gated(settings):
    global gate
    gate = asyncio.Event()
    GatedLayer.sent, GatedLayer.threads = [], set()
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": f"{__name__}.GatedLayer"}}
    yield GatedLayer
    gate = None


def commit_events(plan):
    """On a worker thread, like a consumer's database call: one transaction per (group, n, boom)."""
    try:
        for group, n, boom in plan:
            with transaction.atomic():
                realtime.publish_on_commit(group=group, event={"type": "test.event", "n": n, "boom": boom})
    finally:
        connections.close_all()


async def test_a_worker_thread_hands_events_to_the_loop_and_each_group_keeps_commit_order(gated):
    realtime.bind_event_loop()
    plan = [("a", 1, False), ("b", 1, False), ("a", 2, True), ("a", 3, False), ("b", 2, False), ("a", 4, False)]
    # The sends cannot finish before the gate opens, so the thread returning at all proves it never waited.
    await asyncio.wait_for(asyncio.to_thread(commit_events, plan), timeout=20)
    assert gated.sent == []
    assert gate is not None
    gate.set()
    await asyncio.wait_for(realtime.drained(), timeout=20)
    assert [n for group, n in gated.sent if group == "a"] == [1, 3, 4]  # 2 failed and did not stop 3 and 4
    assert [n for group, n in gated.sent if group == "b"] == [1, 2]
    assert gated.threads == {threading.get_ident()}  # sent from the loop's thread, never the committer's


async def test_a_rolled_back_transaction_publishes_nothing(gated):
    realtime.bind_event_loop()

    def roll_back():
        try:
            with transaction.atomic():
                realtime.publish_on_commit(group="a", event={"type": "test.event", "n": 1})
                transaction.set_rollback(True)
        finally:
            connections.close_all()

    await asyncio.to_thread(roll_back)
    assert gate is not None
    gate.set()
    await realtime.drained()
    assert gated.sent == []


def test_without_a_running_loop_the_committer_sends_itself(gated):
    """Celery workers and commands have no server loop: the committing thread sends and waits, as before."""
    assert gate is not None
    gate.set()  # set before any loop runs: the send goes through async_to_sync's own loop
    realtime.publish_on_commit(group="a", event={"type": "test.event", "n": 7})
    assert gated.sent == [("a", 7)]
