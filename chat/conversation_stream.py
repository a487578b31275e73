"""A conversation stream over a socket: what both chat sockets (the visitor's, chat/consumers.py, and the
agent's, agents/consumers.py) do with conversations. Messages are delivered in seq order with nothing twice
and nothing missed (each socket's cursor per conversation, replays from the database), own messages are
acked as their delivery, and typing is relayed with a throttle.

A building block chat offers its interfaces, like message_writer: it serves no route itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from channels.db import database_sync_to_async

from chat import events
from chat.selectors import Actor, message_replay
from chat.selectors import conversation_positions as _conversation_positions
from contactcenter.errors import ApplicationError
from contactcenter.sockets import ProtocolSocket

logger = logging.getLogger(__name__)

TYPING_MIN_INTERVAL = 1.5  # seconds between two forwarded "still typing" frames of one socket
TYPING_CHANGE_INTERVAL = 0.5  # seconds between two forwarded typing changes of one socket and conversation


@dataclass
class TypingRelay:
    """What one socket has forwarded of its typing state in one conversation, and what still waits."""

    sent: bool | None = None
    sent_at: float = float("-inf")
    latest: dict[str, Any] | None = None  # the last typing frame, run again when its state's turn comes
    pending: bool = False  # `latest` holds a state other than `sent`, held back by TYPING_CHANGE_INTERVAL
    timer: asyncio.Task[None] | None = None


class ConversationSocket(ProtocolSocket):
    """The per-conversation seq cursor and the typing relay, on top of the shared socket.

    The cursor is the highest seq this socket has delivered (or skipped as invisible) per conversation:
    a live message at or below it is a duplicate; one past a hole triggers a replay from the database,
    so nothing is sent twice and nothing the database holds is missed.
    """

    include_private: ClassVar[bool] = False

    actor: Actor

    def setup(self) -> None:
        self.cursors: dict[int, int] = {}
        self.typing_relays: dict[int, TypingRelay] = {}

    async def before_disconnect(self) -> None:
        await self.typing_end()

    # --- delivery by seq -------------------------------------------------------------------------------

    def render_message(self, data: events.MessageData) -> dict[str, Any] | None:
        raise NotImplementedError

    async def replay(self, conversation_id: int, after_seq: int, *, is_replay: bool = True) -> int:
        """Sends what the database holds past `after_seq` (that this socket may see); returns the new cursor."""
        cursor = after_seq
        while True:
            batch = await database_sync_to_async(message_replay)(
                tenant_id=self.tenant_id,
                conversation_id=conversation_id,
                after_seq=cursor,
                include_private=self.include_private,
            )
            for data in batch.messages:
                await self.deliver(conversation_id, data, replay=is_replay)
            cursor = max(cursor, batch.upto)
            if conversation_id in self.cursors:
                self.cursors[conversation_id] = max(self.cursors[conversation_id], cursor)
            if batch.complete:
                return cursor

    async def deliver(self, conversation_id: int, data: events.MessageData, *, replay: bool) -> None:
        rendered = self.render_message(data)
        if rendered is not None:
            await self.send_frame(
                {"type": "message.new", "conversation_id": conversation_id, "message": rendered, "replay": replay}
            )

    async def subscribe(self, conversation_id: int, last_seq: int, request_id: str | None) -> None:
        """Replays past `last_seq`, then lets live messages through (the groups are joined by the caller first).

        A conversation this socket already follows is replayed only past what the socket has been sent: a
        second resume never sends a seq twice on one socket (docs/protocol.md §2.6).
        """
        position = self.cursors.pop(conversation_id, None)
        cursor = await self.replay(conversation_id, last_seq if position is None else max(last_seq, position))
        self.cursors[conversation_id] = cursor
        # Anything committed during the replay's last read arrives live, or through the next gap check.
        frame: dict[str, Any] = {"type": "resume.done", "conversation_id": conversation_id, "last_seq": cursor}
        if request_id is not None:
            frame["request_id"] = request_id
        await self.send_frame(frame)

    async def catch_up(self) -> None:
        """Sends whatever the database has beyond each cursor (a message the channel layer lost)."""
        if not self.cursors:
            return
        positions = await database_sync_to_async(_conversation_positions)(
            tenant_id=self.tenant_id, conversation_ids=list(self.cursors)
        )
        for conversation_id, last_seq in positions.items():
            cursor = self.cursors.get(conversation_id)
            if cursor is not None and last_seq > cursor:
                await self.replay(conversation_id, cursor, is_replay=False)

    async def message_new(self, event: dict[str, Any]) -> None:
        conversation_id = event["conversation_id"]
        cursor = self.cursors.get(conversation_id)
        if cursor is None:
            return  # not resumed yet: the resume's replay will include it
        data: events.MessageData = event["message"]
        seq = data["seq"]
        if seq <= cursor:
            return
        if seq == cursor + 1:
            self.cursors[conversation_id] = seq
            await self.deliver(conversation_id, data, replay=False)
            return
        # A hole before this seq: fill it (and this message) from the database, in order.
        await self.replay(conversation_id, cursor, is_replay=False)

    async def ack(self, conversation_id: int, result: Any, client_id: str | None, request_id: str | None) -> None:
        message = result.message
        frame: dict[str, Any] = {
            "type": "message.ack",
            "conversation_id": conversation_id,
            "client_id": client_id,
            "seq": message.seq,
            "message_id": message.pk,
            "channel": message.channel,
            "created_at": events.iso(message.created_at),
        }
        cursor = self.cursors.get(conversation_id)
        if cursor is not None and message.seq == cursor + 1:
            # The ack is this socket's delivery of its own message: it directly follows everything the socket
            # has, so the cursor moves and the live copy is dropped (one frame fewer per message). The ack
            # says so with last_seq, the position a client may resume from (docs/protocol.md §2).
            self.cursors[conversation_id] = message.seq
            frame["last_seq"] = message.seq
        if request_id is not None:
            frame["request_id"] = request_id
        await self.send_frame(frame)

    # --- typing: throttled per socket and conversation --------------------------------------------------
    #
    # A change of state is forwarded at most every TYPING_CHANGE_INTERVAL and a repeated "still typing" at
    # most every TYPING_MIN_INTERVAL. A change that comes too soon is held, and only the latest one: when
    # its turn comes, the typing frame that carried it is handled again (so the subclass publishes it to
    # the right group, with its own checks), unless the state went back to what was forwarded meanwhile.
    # So a flood of toggles costs the viewers a few frames, and the last state is never lost: a "stopped
    # typing" arrives at most TYPING_CHANGE_INTERVAL late. A socket that ends while viewers see it typing
    # says it stopped.

    def typing_due(self, conversation_id: int, is_typing: bool) -> bool:
        """True when the subclass should forward this typing frame (`self.frame`) now."""
        now = time.monotonic()
        relay = self.typing_relays.setdefault(conversation_id, TypingRelay())
        relay.latest = self.frame
        relay.pending = False
        if is_typing == relay.sent:
            if not is_typing or now - relay.sent_at < TYPING_MIN_INTERVAL:
                return False
        elif now - relay.sent_at < TYPING_CHANGE_INTERVAL:
            relay.pending = True
            if relay.timer is None:
                delay = relay.sent_at + TYPING_CHANGE_INTERVAL - now
                relay.timer = asyncio.ensure_future(self._typing_later(relay, delay))
            return False
        relay.sent, relay.sent_at = is_typing, now
        return True

    async def _typing_later(self, relay: TypingRelay, delay: float) -> None:
        await asyncio.sleep(delay)
        relay.timer = None
        if not self.closing:  # e.g. an agent whose access was just withdrawn: the teardown says "stopped"
            await self._typing_rerun(relay)

    async def _typing_rerun(self, relay: TypingRelay) -> None:
        if not relay.pending or relay.latest is None:
            return
        frame = {key: value for key, value in relay.latest.items() if key != "request_id"}  # answered already
        self.frame = frame  # read by typing_due before the handler's first await
        try:
            await getattr(self, self.handlers["typing"])(frame, None)
        except ApplicationError:
            pass  # no longer allowed (e.g. the conversation left this agent): nothing to say
        except Exception:
            logger.exception("%s failed to forward a held typing state", type(self).__name__)

    async def typing_end(self) -> None:
        """On the way out: drop held states, and tell viewers who see this socket typing that it stopped."""
        for relay in self.typing_relays.values():
            if relay.timer is not None:
                relay.timer.cancel()
                relay.timer = None
            if relay.latest is not None and (relay.sent or relay.pending):
                relay.latest = {**relay.latest, "is_typing": False}
                relay.pending, relay.sent_at = True, float("-inf")
                await self._typing_rerun(relay)
