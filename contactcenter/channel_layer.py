"""The PubSub channel layer, able to publish many group messages in one Redis round trip.

channels_redis's `RedisPubSubChannelLayer.group_send` publishes one message per call and holds the shard's
lock for the whole round trip, so a process's group sends to one Redis leave one at a time, each waiting
for the previous one's reply. `group_send_many` sends a batch as one pipeline (one write, one read) under
that same lock, in order: Redis runs the PUBLISHes in the order given, so each group's subscribers get the
batch's messages in that order.

Two more additions keep Redis's subscriptions equal to what is really open. `channel_release` unsubscribes a
socket's own channel (and any group it is still in): Channels unsubscribes a consumer's channel only when
its pending `receive` is cancelled, so a consumer that stops while an event sits received but undispatched
(its own `message.new` arriving while it stores the message, then the close) left the channel subscribed
for the life of the process. `ping` checks that Redis answers without subscribing anything (the health
check used to call `new_channel`, one subscription per request, never released). And when the connection
to Redis comes back (a Redis restart), redis-py subscribes again to every channel it still lists, those
whose unsubscribe failed while Redis was away included: the layer first prunes that list to the channels
and groups this process still has, so sockets closed during the outage stay gone. Everything else is the
library's layer, unchanged.

It reaches into channels_redis's loop layer and shard (`_get_layer`, `_get_group_channel_name`,
`_get_shard`, the shard's `_lock`, `_ensure_redis` and `_redis`); pyproject pins channels-redis to 4.3.x
and tests/realtime/test_channel_layer.py runs it against real Redis, so a change there fails a test.
"""

from __future__ import annotations

import logging
import types
from collections.abc import Sequence
from typing import Any

from channels_redis.pubsub import RedisPubSubChannelLayer
from django.conf import settings
from django.core.checks import CheckMessage, Error
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)


def internals_missing() -> list[str]:
    """What this module reaches into that the installed channels_redis and redis-py do not have (empty: all).

    Builds a loop layer, a shard and its (unconnected) Redis client and PubSub the way the library does, and
    looks for every private name used here, so a library upgrade that renames one fails at start-up, by
    name, instead of as an AttributeError on the first publish or socket close.
    """
    from channels_redis.pubsub import RedisPubSubLoopLayer

    missing: list[str] = []

    def need(owner: Any, label: str, names: Sequence[str]) -> None:
        missing.extend(f"{label}.{name}" for name in names if not hasattr(owner, name))

    need(RedisPubSubChannelLayer, "RedisPubSubChannelLayer", ["_get_layer", "serialize"])
    try:
        loop_layer = RedisPubSubLoopLayer(hosts=["redis://127.0.0.1:1"], channel_layer=None)
    except Exception as exc:  # the constructor itself changed
        return [*missing, f"RedisPubSubLoopLayer(hosts=..., channel_layer=...): {exc!r}"]
    need(loop_layer, "RedisPubSubLoopLayer", ["channels", "groups", "_shards", "_get_shard", "_get_group_channel_name"])
    shards = getattr(loop_layer, "_shards", None) or []
    if not shards:
        return [*missing, "RedisPubSubLoopLayer._shards (no shard for a host)"]
    shard = shards[0]
    need(shard, "RedisSingleShardConnection", ["_lock", "_redis", "_pubsub", "_subscribed_to", "_ensure_redis"])
    need(shard, "RedisSingleShardConnection", ["unsubscribe"])
    if not missing:
        shard._ensure_redis()  # creates the client and its PubSub; connects nothing
        need(shard._redis, "redis.asyncio.Redis", ["pipeline", "ping"])
        need(shard._pubsub, "redis.asyncio.client.PubSub", ["channels", "on_connect"])
    return missing


def internals_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Django system check (manage.py check, migrate): the configured PubSub layer's internals are there."""
    backends = [str(alias.get("BACKEND", "")) for alias in getattr(settings, "CHANNEL_LAYERS", {}).values()]
    if f"{__name__}.PubSubChannelLayer" not in backends:
        return []
    return [
        Error(f"channels_redis/redis-py lack {name}, which PubSubChannelLayer uses.", id="contactcenter.E001")
        for name in internals_missing()
    ]


class PubSubChannelLayer(RedisPubSubChannelLayer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        missing = internals_missing()
        if missing:
            raise ImproperlyConfigured(
                "contactcenter.channel_layer.PubSubChannelLayer relies on channels_redis/redis-py internals that "
                f"the installed versions lack: {', '.join(missing)}. Install the versions pyproject.toml pins."
            )
        super().__init__(*args, **kwargs)

    def _get_layer(self) -> Any:
        layer = super()._get_layer()
        if not getattr(layer, "resubscribes_only_live", False):
            layer.resubscribes_only_live = True
            for shard in layer._shards:
                _prune_on_reconnect(layer, shard)
        return layer

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

    async def new_channel(self, prefix: str = "specific.") -> str:
        """The library's `new_channel`, forgetting the channel again when Redis refused the subscription."""
        layer = self._get_layer()
        before = set(layer.channels)
        try:
            return str(await layer.new_channel(prefix))
        except BaseException:
            for channel in set(layer.channels) - before:
                await self.channel_release(channel)
            raise

    async def channel_release(self, channel: str) -> None:
        """Unsubscribes `channel` and takes it out of every group of this process; safe to call twice.

        When Redis cannot be told (it is down), the subscription is still dropped from this process's
        bookkeeping, so reconnecting does not subscribe it again.
        """
        layer = self._get_layer()
        names = [channel] if layer.channels.pop(channel, None) is not None else []
        for group_channel, members in list(layer.groups.items()):
            if channel in members:
                members.discard(channel)
                if not members:
                    del layer.groups[group_channel]
                    names.append(group_channel)
        names.append(channel)  # also when the library's own clean-up forgot it but left it subscribed
        for name in dict.fromkeys(names):
            shard = layer._get_shard(name)
            if name not in shard._subscribed_to:
                continue
            try:
                await shard.unsubscribe(name)
            except Exception as exc:
                logger.warning("could not unsubscribe %s (%r); forgetting it", name, exc)
                shard._subscribed_to.discard(name)
                if shard._pubsub is not None:
                    shard._pubsub.channels.pop(name.encode(), None)
                    shard._pubsub.channels.pop(name, None)

    async def ping(self) -> None:
        """Raises unless every Redis shard answers PING; subscribes nothing (the health check)."""
        layer = self._get_layer()
        for shard in layer._shards:
            async with shard._lock:
                shard._ensure_redis()
                await shard._redis.ping()


def _prune_on_reconnect(layer: Any, shard: Any) -> None:
    """Makes the shard's PubSub subscribe again, on each reconnect, only to what the layer still has."""
    ensure_redis = shard._ensure_redis

    def ensure_redis_pruning() -> None:
        created = shard._redis is None
        ensure_redis()
        if not created:
            return
        pubsub = shard._pubsub
        resubscribe = pubsub.on_connect

        async def on_connect(pubsub: Any, connection: Any) -> None:
            live = set(layer.channels) | set(layer.groups)
            for key in list(pubsub.channels):
                if (key.decode() if isinstance(key, bytes) else key) not in live:
                    del pubsub.channels[key]
            shard._subscribed_to &= live
            await resubscribe(connection)

        # redis-py registers it as the connection's callback on first connect, by weak reference to a bound
        # method: bound to the PubSub, which keeps it alive.
        pubsub.on_connect = types.MethodType(on_connect, pubsub)

    shard._ensure_redis = ensure_redis_pruning


async def channel_release(layer: Any, channel: str) -> None:
    """Releases a consumer's channel on layers that keep a subscription per channel (the PubSub layer)."""
    release = getattr(layer, "channel_release", None)
    if release is not None and channel:
        await release(channel)


async def layer_ping(layer: Any) -> None:
    """Raises unless the layer's backing service answers, leaving nothing behind.

    The PubSub layer pings Redis; channels_redis's core layer has no such call, so a send to a throwaway
    channel (which expires) stands in; the in-memory layer has nothing to check.
    """
    ping = getattr(layer, "ping", None)
    if ping is not None:
        await ping()
    elif hasattr(layer, "connection"):
        await layer.send(await layer.new_channel("health."), {"type": "health.check"})
