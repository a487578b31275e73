"""The PubSub layer's group_send_many on real Redis, and how committed events reach it in batches."""

from __future__ import annotations

import asyncio
import dataclasses
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
    """Records each group_send_many batch and each single group_send.

    A batch holding a "boom" event fails whole, a "bad" event fails alone within its batch, and a "dead"
    event fails on its own too.
    """

    batches: list[list[tuple[str, int]]] = []
    singles: list[tuple[str, int]] = []

    async def group_send_many(self, items):
        if any(event.get("boom") for _, event in items):
            raise ConnectionError("Redis went away")
        type(self).batches.append([(group, event["n"]) for group, event in items])
        return [ValueError("refused") if event.get("bad") else None for _, event in items]

    async def group_send(self, group, message):
        if message.get("dead"):
            raise ConnectionError("still away")
        type(self).singles.append((group, message["n"]))


@pytest.fixture
def recording(settings):
    RecordingLayer.batches = []
    RecordingLayer.singles = []
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": f"{__name__}.RecordingLayer"}}
    return RecordingLayer


async def test_events_committed_together_leave_as_one_batch_in_commit_order(recording):
    realtime.bind_event_loop()
    for n in range(50):
        realtime._dispatch(f"g{n % 3}", {"type": "x", "n": n})  # what a commit on the loop's thread does

    await asyncio.wait_for(realtime.drained(), timeout=10)

    assert recording.batches == [[(f"g{n % 3}", n) for n in range(50)]]


async def test_what_a_batch_could_not_send_goes_again_event_by_event_and_is_counted(recording, caplog):
    realtime.bind_event_loop()
    caplog.set_level(logging.WARNING, logger="contactcenter.realtime")
    before = dataclasses.replace(realtime.publish_stats)

    realtime._dispatch("g", {"type": "x", "n": 1, "boom": True})  # the whole round trip fails
    realtime._dispatch("h", {"type": "x", "n": 2})
    await realtime.drained()
    realtime._dispatch("g", {"type": "x", "n": 3, "bad": True})  # Redis refuses one event of the batch
    realtime._dispatch("g", {"type": "x", "n": 4})
    await realtime.drained()
    realtime._dispatch("g", {"type": "x", "n": 5, "boom": True, "dead": True})  # and fails alone too
    realtime._dispatch("g", {"type": "x", "n": 6})
    await realtime.drained()

    assert recording.batches == [[("g", 3), ("g", 4)]]
    # Nothing a failed pipeline carried is dropped for it: each event goes again on its own, in order.
    assert recording.singles == [("g", 1), ("h", 2), ("g", 3), ("g", 6)]
    stats = realtime.publish_stats
    assert stats.batches - before.batches == 3
    assert stats.fallbacks - before.fallbacks == 3
    assert stats.events_failed - before.events_failed == 1
    messages = [r.getMessage() for r in caplog.records]
    assert any("group_send_many of 2 events failed" in m and "one by one" in m for m in messages)
    assert any("group_send to g failed in a batch (type x)" in m and "refused" in m for m in messages)
    assert any("group_send to g failed (type x)" in m for m in messages)


async def test_a_batch_is_at_most_max_publish_batch_events(recording):
    realtime.bind_event_loop()
    total = realtime.MAX_PUBLISH_BATCH + 5
    for n in range(total):
        realtime._dispatch("g", {"type": "x", "n": n})

    await realtime.drained()

    assert [len(batch) for batch in recording.batches] == [realtime.MAX_PUBLISH_BATCH, 5]
    assert [n for batch in recording.batches for _, n in batch] == list(range(total))


def test_the_installed_channels_redis_has_every_internal_the_pubsub_layer_uses(settings):
    from contactcenter.channel_layer import internals_check, internals_missing

    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "contactcenter.channel_layer.PubSubChannelLayer"}}
    assert internals_missing() == []
    assert internals_check() == []


def test_a_channels_redis_without_an_internal_fails_at_start_up_by_name(monkeypatch, settings):
    from channels_redis.pubsub import RedisSingleShardConnection
    from django.core.exceptions import ImproperlyConfigured

    from contactcenter.channel_layer import internals_check, internals_missing

    monkeypatch.delattr(RedisSingleShardConnection, "_ensure_redis")
    original_init = RedisSingleShardConnection.__init__

    def init_without_subscribed_to(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        del self._subscribed_to  # an instance attribute renamed upstream

    monkeypatch.setattr(RedisSingleShardConnection, "__init__", init_without_subscribed_to)

    missing = internals_missing()
    assert missing == ["RedisSingleShardConnection._subscribed_to", "RedisSingleShardConnection._ensure_redis"]
    with pytest.raises(ImproperlyConfigured, match=r"lack: RedisSingleShardConnection\._subscribed_to"):
        PubSubChannelLayer(hosts=["redis://127.0.0.1:1"])

    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "contactcenter.channel_layer.PubSubChannelLayer"}}
    errors = internals_check()
    assert [error.id for error in errors] == ["contactcenter.E001", "contactcenter.E001"]
    assert "_ensure_redis" in errors[1].msg
    # Another layer configured: nothing of channels_redis's PubSub internals matters.
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    assert internals_check() == []
