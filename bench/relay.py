"""The bare relay: visitor socket → group_send → agent socket, no auth and no database (bench only)."""

from __future__ import annotations

from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer

from contactcenter import realtime


class RelayConsumer(AsyncWebsocketConsumer):
    """`/bench/relay/<pair>/agent/` listens on the pair's group; `/bench/relay/<pair>/visitor/` sends to it."""

    prefix: str = "bench.relay"
    group: str = ""
    is_agent: bool = False

    async def connect(self) -> None:
        kwargs = self.scope["url_route"]["kwargs"]
        self.group = f"{self.prefix}.{int(kwargs['pair'])}"
        self.is_agent = kwargs["role"] == "agent"
        if self.is_agent:
            # Joined before accepting: once the client sees the socket open, nothing sent to the group is missed.
            await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.is_agent:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if not self.is_agent and text_data is not None:
            await self.channel_layer.group_send(self.group, {"type": "relay.message", "text": text_data})

    async def relay_message(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["text"])


class BatchedRelayConsumer(RelayConsumer):
    """The relay, its group sends batched like the product's events (contactcenter/realtime.py's outbox).

    Not the issue's baseline: it shows what the transport carries once publishes share round trips, so the
    real path's own cost stays visible next to a relay that is not held by one Redis round trip per send.
    """

    prefix = "bench.batched"  # its own groups: a bare relay on the same Redis must not hear these

    async def connect(self) -> None:
        realtime.bind_event_loop()
        await super().connect()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if not self.is_agent and text_data is not None:
            realtime._enqueue(self.group, {"type": "relay.message", "text": text_data})


class FaultyRelayConsumer(RelayConsumer):
    """The relay with planted faults, for the harness's own test: `drop:<id>` never arrives, `dup:<id>` twice."""

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.is_agent or text_data is None:
            return
        fault, _, body = text_data.partition(":") if ":" in text_data else ("", "", text_data)
        copies = {"drop": 0, "dup": 2}.get(fault, 1)
        for _ in range(copies):
            await self.channel_layer.group_send(self.group, {"type": "relay.message", "text": body})
