"""The visitor websocket, and the base both chat sockets share: frames, errors, and replay by seq from the database."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.utils import timezone

from chat import events
from chat.message_writer import post_message
from chat.selectors import Actor, VisitorActor, message_replay, visitor_hello
from chat.selectors import conversation_positions as _conversation_positions
from chat.services import RateLimited, conversation_mark_read
from chat.tokens import visitor_token_read
from contactcenter import realtime, sweeper
from contactcenter.errors import ApplicationError
from contactcenter.realtime import conversation_group, publish_ephemeral
from queueing.services import conversation_end

logger = logging.getLogger(__name__)

MAX_FRAME_CHARS = 64 * 1024
REQUEST_ID_MAX = 64
TYPING_MIN_INTERVAL = 1.5  # seconds between two forwarded "still typing" frames of one socket

CLOSE_NOT_AUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404

Handler = Callable[[dict[str, Any], str | None], Awaitable[None]]


class FrameError(ApplicationError):
    """A client frame the server cannot read; answered with an error frame, the socket stays open."""

    def __init__(self, code: str, message: str, fields: dict[str, list[str]] | None = None):
        super().__init__(code, message, fields)


def int_field(frame: dict[str, Any], name: str, *, required: bool = True, minimum: int = 0) -> int | None:
    value = frame.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise FrameError("bad_frame", f"`{name}` must be a whole number ≥ {minimum}.", {name: ["Expected an integer."]})
    return value


def bool_field(frame: dict[str, Any], name: str, default: bool = False) -> bool:
    value = frame.get(name, default)
    if not isinstance(value, bool):
        raise FrameError("bad_frame", f"`{name}` must be true or false.", {name: ["Expected a boolean."]})
    return value


class ChatSocket(AsyncWebsocketConsumer):
    """Frame parsing, error frames, group bookkeeping and the per-conversation seq cursor.

    The cursor is the highest seq this socket has delivered (or skipped as invisible) per conversation:
    a live message at or below it is a duplicate; one past a hole triggers a replay from the database,
    so nothing is sent twice and nothing the database holds is missed.
    """

    include_private: ClassVar[bool] = False
    handlers: ClassVar[dict[str, str]] = {}

    tenant_id: int
    actor: Actor

    async def connect(self) -> None:
        self.groups_joined: set[str] = set()
        self.cursors: dict[int, int] = {}
        self.last_typing: dict[int, tuple[bool, float]] = {}
        sweeper.ensure_started()
        realtime.bind_event_loop()  # also when mounted without the project's application (tests)
        await self.open()

    async def open(self) -> None:
        raise NotImplementedError

    async def refuse(self, code: str, message: str, close_code: int) -> None:
        """Accepts only to say why, then closes: the browser cannot read a refused handshake's reason."""
        await self.accept()
        await self.send_frame({"type": "error", "code": code, "message": message, "fields": {}})
        await self.close(code=close_code)

    async def join(self, group: str) -> None:
        if group not in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
            self.groups_joined.add(group)

    async def leave(self, group: str) -> None:
        if group in self.groups_joined:
            self.groups_joined.discard(group)
            await self.channel_layer.group_discard(group, self.channel_name)

    async def disconnect(self, code: int) -> None:
        for group in list(getattr(self, "groups_joined", ())):
            await self.leave(group)
        await self.closed()

    async def closed(self) -> None:
        """Per-socket cleanup after the groups are left."""

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels' dispatch without its per-event `aclose_old_connections()`.

        Channels (4.2+) hops to the shared database thread before every handler to close stale
        connections, for consumers that touch the database directly. These never do: every database call
        goes through database_sync_to_async, which closes stale connections around the call on the thread
        that owns them. Skipping it saves a thread round trip per frame and per event on the one thread
        that serves every socket's database work (three per chat message).
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            if message.get("type", "").startswith("websocket."):
                raise ValueError(f"No handler for message type {message['type']}")
            # An event type this socket does not handle is ignored, not fatal: a newer server process may
            # publish types an older one does not know yet during a rolling deploy.
            logger.warning("%s ignores event type %s", type(self).__name__, message.get("type"))
            return
        await handler(message)

    # --- sending ---------------------------------------------------------------------------------------

    async def send_frame(self, frame: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(frame, separators=(",", ":"), ensure_ascii=False))

    async def send_error(
        self, error: ApplicationError, *, request_id: str | None = None, client_id: str | None = None
    ) -> None:
        frame: dict[str, Any] = {"type": "error", "code": error.code, "message": error.message, "fields": error.fields}
        if request_id is not None:
            frame["request_id"] = request_id
        if client_id is not None:
            frame["client_id"] = client_id
        if isinstance(error, RateLimited):
            frame["retry_after"] = error.retry_after
        await self.send_frame(frame)

    async def send_ok(self, request_id: str | None) -> None:
        if request_id is not None:
            await self.send_frame({"type": "ok", "request_id": request_id})

    # --- receiving -------------------------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is None:
            await self.send_error(FrameError("bad_frame", "Send JSON text frames, not binary ones."))
            return
        if len(text_data) > MAX_FRAME_CHARS:
            await self.send_error(FrameError("bad_frame", f"A frame is at most {MAX_FRAME_CHARS} characters."))
            return
        try:
            frame = json.loads(text_data)
        except ValueError:
            await self.send_error(FrameError("bad_json", "The frame is not valid JSON."))
            return
        if not isinstance(frame, dict):
            await self.send_error(FrameError("bad_frame", "A frame is a JSON object with a type."))
            return
        raw_request_id = frame.get("request_id")
        request_id = (
            raw_request_id if isinstance(raw_request_id, str) and len(raw_request_id) <= REQUEST_ID_MAX else None
        )
        raw_client_id = frame.get("client_id")
        client_id = raw_client_id if isinstance(raw_client_id, str) and len(raw_client_id) <= 64 else None
        kind = frame.get("type")
        method = self.handlers.get(kind) if isinstance(kind, str) else None
        if method is None:
            await self.send_error(FrameError("unknown_type", f"Unknown frame type {kind!r}."), request_id=request_id)
            return
        try:
            await getattr(self, method)(frame, request_id)
        except ApplicationError as exc:
            await self.send_error(exc, request_id=request_id, client_id=client_id if kind == "message.send" else None)
        except Exception:
            logger.exception("%s failed on a %s frame", type(self).__name__, kind)
            await self.send_error(
                ApplicationError("server_error", "Something went wrong on our side; please retry."),
                request_id=request_id,
                client_id=client_id if kind == "message.send" else None,
            )

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
        """Replays past `last_seq`, then lets live messages through (the groups are joined by the caller first)."""
        self.cursors.pop(conversation_id, None)
        cursor = await self.replay(conversation_id, last_seq)
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

    async def pong(self, request_id: str | None) -> None:
        frame: dict[str, Any] = {"type": "pong", "server_time": events.iso(timezone.now())}
        if request_id is not None:
            frame["request_id"] = request_id
        await self.send_frame(frame)

    def typing_due(self, conversation_id: int, is_typing: bool) -> bool:
        """Forward a change at once, a repeated "still typing" at most every TYPING_MIN_INTERVAL."""
        now = time.monotonic()
        previous = self.last_typing.get(conversation_id)
        if previous is not None and previous[0] == is_typing and now - previous[1] < TYPING_MIN_INTERVAL:
            return False
        self.last_typing[conversation_id] = (is_typing, now)
        return True


class VisitorConsumer(ChatSocket):
    """`/ws/visitor/conversations/<id>/?token=…`: one conversation of the token's visitor and widget."""

    include_private = False
    handlers = {
        "resume": "on_resume",
        "message.send": "on_message_send",
        "typing": "on_typing",
        "read": "on_read",
        "conversation.close": "on_close",
        "ping": "on_ping",
    }

    visitor: VisitorActor
    conversation_id: int

    async def open(self) -> None:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        token = visitor_token_read((query.get("token") or [""])[0])
        if token is None:
            await self.refuse("invalid_token", "The visitor token is missing, invalid or expired.", 4401)
            return
        self.visitor = VisitorActor(tenant_id=token.tenant_id, widget_id=token.widget_id, visitor_id=token.visitor_id)
        self.actor = self.visitor
        self.tenant_id = token.tenant_id
        self.conversation_id = int(self.scope["url_route"]["kwargs"]["conversation_id"])
        try:
            hello = await database_sync_to_async(visitor_hello)(
                actor=self.visitor, conversation_id=self.conversation_id
            )
        except ApplicationError:
            await self.refuse("not_found", "No such conversation for this visitor.", CLOSE_NOT_FOUND)
            return
        await self.join(conversation_group(self.tenant_id, self.conversation_id))
        await self.accept()
        await self.send_frame(hello)

    def render_message(self, data: events.MessageData) -> dict[str, Any] | None:
        return events.visitor_message_view(data, visitor_id=self.visitor.visitor_id)

    def _own_conversation(self, frame: dict[str, Any]) -> int:
        conversation_id = int_field(frame, "conversation_id", required=False, minimum=1)
        if conversation_id is not None and conversation_id != self.conversation_id:
            raise ApplicationError("not_found", "No such conversation for this visitor.", status=404)
        return self.conversation_id

    async def on_resume(self, frame: dict[str, Any], request_id: str | None) -> None:
        conversation_id = self._own_conversation(frame)
        last_seq = int_field(frame, "last_seq")
        assert last_seq is not None
        await self.subscribe(conversation_id, last_seq, request_id)

    async def on_message_send(self, frame: dict[str, Any], request_id: str | None) -> None:
        conversation_id = self._own_conversation(frame)
        result = await post_message(
            actor=self.visitor,
            conversation_id=conversation_id,
            body=frame.get("body", ""),
            client_id=frame.get("client_id"),
            attachment_ids=frame.get("attachment_ids") or [],
        )
        await self.ack(conversation_id, result, result.message.client_id, request_id)

    async def on_typing(self, frame: dict[str, Any], request_id: str | None) -> None:
        conversation_id = self._own_conversation(frame)
        is_typing = bool_field(frame, "is_typing", default=True)
        if self.typing_due(conversation_id, is_typing):
            await publish_ephemeral(
                group=conversation_group(self.tenant_id, conversation_id),
                event=events.typing_event(
                    conversation_id=conversation_id,
                    side="visitor",
                    user=None,
                    is_typing=is_typing,
                    private=False,
                    origin=self.channel_name,
                ),
            )
        await self.send_ok(request_id)

    async def on_read(self, frame: dict[str, Any], request_id: str | None) -> None:
        conversation_id = self._own_conversation(frame)
        await database_sync_to_async(conversation_mark_read)(
            actor=self.visitor, conversation_id=conversation_id, seq=int_field(frame, "seq")
        )
        await self.send_ok(request_id)

    async def on_close(self, frame: dict[str, Any], request_id: str | None) -> None:
        conversation_id = self._own_conversation(frame)
        await database_sync_to_async(conversation_end)(actor=self.visitor, conversation_id=conversation_id)
        await self.send_ok(request_id)

    async def on_ping(self, frame: dict[str, Any], request_id: str | None) -> None:
        await self.catch_up()
        await self.pong(request_id)

    # --- layer events (allow-list: a visitor gets only these, cut to the visitor's view) ------------------

    async def typing(self, event: dict[str, Any]) -> None:
        if event["side"] != "agent" or event["private"] or event.get("origin") == self.channel_name:
            return
        await self.send_frame(
            {
                "type": "typing",
                "conversation_id": event["conversation_id"],
                "side": "agent",
                "name": event["public_name"],
                "is_typing": event["is_typing"],
            }
        )

    async def read(self, event: dict[str, Any]) -> None:
        if event["side"] == "agent":
            await self.send_frame(
                {"type": "read", "conversation_id": event["conversation_id"], "side": "agent", "seq": event["seq"]}
            )

    async def conversation_updated(self, event: dict[str, Any]) -> None:
        await self.send_frame({"type": "conversation.updated", "conversation": event["visitor_conversation"]})
