"""The PubSub channel layer, able to publish many group messages in one Redis round trip.

channels_redis's `RedisPubSubChannelLayer.group_send` publishes one message per call and holds the shard's
lock for the whole round trip, so a process's group sends to one Redis leave one at a time, each waiting
for the previous one's reply. `group_send_many` sends a batch as one pipeline (one write, one read) under
that same lock, in order: Redis runs the PUBLISHes in the order given, so each group's subscribers get the
batch's messages in that order. Everything else is the library's layer, unchanged.

It reaches into channels_redis's loop layer and shard (`_get_layer`, `_get_group_channel_name`,
`_get_shard`, the shard's `_lock`, `_ensure_redis` and `_redis`); pyproject pins channels-redis to 4.3.x
and tests/realtime/test_channel_layer.py runs it against real Redis, so a change there fails a test.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from channels_redis.pubsub import RedisPubSubChannelLayer


class PubSubChannelLayer(RedisPubSubChannelLayer):
    async def group_send_many(self, items: Sequence[tuple[str, dict[str, Any]]]) -> list[BaseException | None]:
        """Publishes each (group, message) in order; per item, None when sent or the error Redis answered.

        A failure of the whole round trip (connection lost) raises instead: nothing is known to be sent.
        """
        layer = self._get_layer()
        by_shard: dict[int, tuple[Any, list[int], list[tuple[str, bytes]]]] = {}
        for index, (group, message) in enumerate(items):
            channel = layer._get_group_channel_name(group)
            shard = layer._get_shard(channel)
            entry = by_shard.setdefault(id(shard), (shard, [], []))
            entry[1].append(index)
            entry[2].append((channel, self.serialize(message)))
        errors: list[BaseException | None] = [None] * len(items)
        for shard, indexes, publishes in by_shard.values():
            async with shard._lock:
                shard._ensure_redis()
                async with shard._redis.pipeline(transaction=False) as pipe:
                    for channel, payload in publishes:
                        pipe.publish(channel, payload)
                    replies = await pipe.execute(raise_on_error=False)
            for index, reply in zip(indexes, replies, strict=True):
                if isinstance(reply, BaseException):
                    errors[index] = reply
        return errors
