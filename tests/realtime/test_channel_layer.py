"""The PubSub layer's group_send_many on real Redis, and how committed events reach it in batches."""

from __future__ import annotations

import asyncio
import logging

import pytest
from channels.layers import InMemoryChannelLayer
from django.conf import settings as django_settings

from contactcenter import realtime
from contactcenter.channel_layer import PubSubChannelLayer

pytestmark = pytest.mark.redis


def new_layer() -> PubSubChannelLayer:
    return PubSubChannelLayer(hosts=[{"address": django_settings.REDIS_URL, "socket_timeout": 30}])


async def receive_n(layer: PubSubChannelLayer, channel: str, n: int) -> list[dict]:
    return [await asyncio.wait_for(layer.receive(channel), timeout=10) for _ in range(n)]


async def test_many_group_messages_reach_another_layers_subscribers_in_order():
    sender, receiver = new_layer(), new_layer()  # two layers: two processes' worth of Redis connections
    try:
        only_a, both = await receiver.new_channel(), await receiver.new_channel()
        await receiver.group_add("t1.conv.1", only_a)
        await receiver.group_add("t1.conv.1", both)
        await receiver.group_add("t1.conv.2", both)
        await asyncio.sleep(0.2)  # the receiver's subscription reaches Redis

        batch = [("t1.conv.1", {"type": "x", "n": n}) for n in (1, 2)]
        batch += [("t1.conv.2", {"type": "x", "n": 10}), ("t1.conv.1", {"type": "x", "n": 3})]
        errors = await sender.group_send_many(batch)

        assert errors == [None, None, None, None]
        assert [m["n"] for m in await receive_n(receiver, only_a, 3)] == [1, 2, 3]
        assert [m["n"] for m in await receive_n(receiver, both, 4)] == [1, 2, 10, 3]
    finally:
        await sender.flush()
        await receiver.flush()


class RecordingLayer(InMemoryChannelLayer):
    """Records each group_send_many batch; a batch holding a "boom" event fails whole, "bad" fails alone."""

    batches: list[list[tuple[str, int]]] = []

    async def group_send_many(self, items):
        if any(event.get("boom") for _, event in items):
            raise ConnectionError("Redis went away")
        type(self).batches.append([(group, event["n"]) for group, event in items])
        return [ValueError("refused") if event.get("bad") else None for _, event in items]


@pytest.fixture
def recording(settings):
    RecordingLayer.batches = []
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": f"{__name__}.RecordingLayer"}}
    return RecordingLayer


async def test_events_committed_together_leave_as_one_batch_in_commit_order(recording):
    realtime.bind_event_loop()
    for n in range(50):
        realtime._dispatch(f"g{n % 3}", {"type": "x", "n": n})  # what a commit on the loop's thread does

    await asyncio.wait_for(realtime.drained(), timeout=10)

    assert recording.batches == [[(f"g{n % 3}", n) for n in range(50)]]


async def test_a_failed_batch_or_event_is_logged_and_the_next_batch_still_goes(recording, caplog):
    realtime.bind_event_loop()
    caplog.set_level(logging.ERROR, logger="contactcenter.realtime")

    realtime._dispatch("g", {"type": "x", "n": 1, "boom": True})
    realtime._dispatch("g", {"type": "x", "n": 2})
    await realtime.drained()
    realtime._dispatch("g", {"type": "x", "n": 3, "bad": True})
    realtime._dispatch("g", {"type": "x", "n": 4})
    await realtime.drained()

    assert recording.batches == [[("g", 3), ("g", 4)]]  # 1 and 2 went down with their round trip
    messages = [r.getMessage() for r in caplog.records]
    assert any("group_send_many of 2 events failed" in m for m in messages)
    assert any("group_send to g failed (type x)" in m and "refused" in m for m in messages)


async def test_a_batch_is_at_most_max_publish_batch_events(recording):
    realtime.bind_event_loop()
    total = realtime.MAX_PUBLISH_BATCH + 5
    for n in range(total):
        realtime._dispatch("g", {"type": "x", "n": n})

    await realtime.drained()

    assert [len(batch) for batch in recording.batches] == [realtime.MAX_PUBLISH_BATCH, 5]
    assert [n for batch in recording.batches for _, n in batch] == list(range(total))
