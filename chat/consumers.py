"""The visitor websocket, and the base both chat sockets share: frames, errors, and replay by seq from the database."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import parse_qs

from autobahn.exception import Disconnected
from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from channels.utils import await_many_dispatch
from django.db import DatabaseError
from django.utils import timezone
from redis.exceptions import RedisError

from chat import events
from chat.message_writer import post_message
from chat.selectors import Actor, VisitorActor, message_replay, visitor_hello
from chat.selectors import conversation_positions as _conversation_positions
from chat.services import RateLimited, conversation_mark_read
from chat.tokens import visitor_token_read
from contactcenter import realtime
from contactcenter.channel_layer import channel_release
from contactcenter.errors import ApplicationError
from contactcenter.realtime import conversation_group, publish_ephemeral
from contactcenter.textinput import BadJson, UnstorableText, ensure_storable, parse_json, text_is_storable
from queueing.services import conversation_end

logger = logging.getLogger(__name__)

MAX_FRAME_CHARS = 64 * 1024
REQUEST_ID_MAX = 64
TYPING_MIN_INTERVAL = 1.5  # seconds between two forwarded "still typing" frames of one socket
TYPING_CHANGE_INTERVAL = 0.5  # seconds between two forwarded typing changes of one socket and conversation

CLOSE_NOT_AUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_UNAVAILABLE = 4503  # Redis or the database did not answer while opening: reconnect with backoff
# Seconds the channel layer may take to subscribe a new socket's channel: well inside daphne's handshake
# limit (--websocket_connect_timeout, 5 s by default), past which daphne drops the connection unanswered.
CHANNEL_OPEN_TIMEOUT = 3.0

# What a service the socket needs raises when it is down or unreachable (logged without a traceback).
UNAVAILABLE_ERRORS = (RedisError, OSError, asyncio.TimeoutError, DatabaseError)

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


@dataclass
class TypingRelay:
    """What one socket has forwarded of its typing state in one conversation, and what still waits."""

    sent: bool | None = None
    sent_at: float = float("-inf")
    latest: dict[str, Any] | None = None  # the last typing frame, run again when its state's turn comes
    pending: bool = False  # `latest` holds a state other than `sent`, held back by TYPING_CHANGE_INTERVAL
    timer: asyncio.Task[None] | None = None


def _usable_id(value: Any, limit: int) -> str | None:
    """A client's request_id/client_id as it may be echoed back (never text that cannot be encoded)."""
    return value if isinstance(value, str) and len(value) <= limit and text_is_storable(value) else None


async def send_unless_gone(send: Callable[[dict[str, Any]], Awaitable[None]], message: dict[str, Any]) -> None:
    """daphne's send, as a no-op once the client has begun closing: between the client's close frame and
    daphne's disconnect event the protocol refuses frames (autobahn's `Disconnected`), which would otherwise
    end the socket's task with an error instead of the disconnect that is already on its way."""
    try:
        await send(message)
    except Disconnected:
        logger.debug("frame %s dropped: the client is closing", message.get("type"))


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

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Channels' consumer run, with two guarantees it lacks.

        Whatever ends the socket (a close, a crash in a handler, daphne cancelling it), `disconnect` runs
        once and the socket's channel-layer channel is released: Channels unsubscribes it only when its
        pending receive is cancelled, not when an event had already arrived undispatched, which left a
        Redis subscription per such socket. And when the channel layer cannot make the socket's channel
        (Redis down), the handshake is answered with close code 4503, not an HTTP 500.
        """
        self.scope = scope
        self.base_send = functools.partial(send_unless_gone, send)
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.channel_name = ""
        self.accepted = False
        self.disconnected = False
        self.closing = False  # the server closes it: frames and held typing states still queued do nothing
        self.groups_joined: set[str] = set()
        self.cursors: dict[int, int] = {}
        self.typing_relays: dict[int, TypingRelay] = {}
        self.frame: dict[str, Any] = {}  # the client frame being handled
        try:
            if self.channel_layer is None:
                await await_many_dispatch([receive], self.dispatch)
                return
            try:
                # Bounded: a Redis that accepts but does not answer (or an unreachable host) would hold the
                # handshake until daphne drops it with no answer at all.
                self.channel_name = await asyncio.wait_for(self.channel_layer.new_channel(), CHANNEL_OPEN_TIMEOUT)
            except UNAVAILABLE_ERRORS as exc:
                logger.warning("%s refused: the channel layer is unavailable (%r)", type(self).__name__, exc)
                if (await receive())["type"] == "websocket.connect":
                    await self.refuse_unavailable()
                return
            self.channel_receive = functools.partial(self.channel_layer.receive, self.channel_name)
            await await_many_dispatch([receive, self.channel_receive], self.dispatch)
        except StopConsumer:
            pass
        finally:
            # Shielded: when daphne cancels a socket that outlived its close, the clean-up still completes.
            await asyncio.shield(asyncio.ensure_future(self.teardown()))

    async def teardown(self) -> None:
        try:
            await self.typing_end()
            await self.disconnect(1011)  # a no-op when the close already ran it
        except Exception:
            logger.exception("%s clean-up failed", type(self).__name__)
        try:
            await channel_release(self.channel_layer, self.channel_name)
        except Exception as exc:
            logger.warning("%s could not release its channel (%r)", type(self).__name__, exc)

    async def connect(self) -> None:
        realtime.bind_event_loop()  # also when mounted without the project's application (tests)
        try:
            await self.open()
        except UNAVAILABLE_ERRORS as exc:
            logger.warning("%s could not open (%r): closed with %s", type(self).__name__, exc, CLOSE_UNAVAILABLE)
            await self.refuse_unavailable()

    async def accept(self, subprotocol: str | None = None, headers: Any = None) -> None:
        await super().accept(subprotocol, headers)
        self.accepted = True

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        self.closing = True
        await super().close(code, reason)

    async def refuse_unavailable(self) -> None:
        await self.refuse(
            "unavailable", "The server cannot open the chat right now; reconnect in a moment.", CLOSE_UNAVAILABLE
        )

    async def open(self) -> None:
        raise NotImplementedError

    async def refuse(self, code: str, message: str, close_code: int) -> None:
        """Accepts only to say why, then closes: the browser cannot read a refused handshake's reason."""
        if not self.accepted:
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
        """Leaves every group, then the subclass's clean-up; runs once, whatever fails on the way."""
        if self.disconnected:
            return
        self.disconnected = True
        try:
            for group in list(self.groups_joined):
                try:
                    await self.leave(group)
                except Exception as exc:  # Redis down: the channel release forgets it locally
                    logger.warning("%s could not leave %s (%r)", type(self).__name__, group, exc)
        finally:
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
            frame = parse_json(text_data)  # any failure, nesting too deep for the parser included
        except BadJson as exc:
            await self.send_error(FrameError("bad_json", f"The frame is not valid JSON: {exc}"))
            return
        if not isinstance(frame, dict):
            await self.send_error(FrameError("bad_frame", "A frame is a JSON object with a type."))
            return
        request_id = _usable_id(frame.get("request_id"), REQUEST_ID_MAX)
        client_id = _usable_id(frame.get("client_id"), 64)
        kind = frame.get("type")
        try:
            # A NUL or a lone surrogate anywhere would fail in PostgreSQL as a server_error, which clients
            # resend forever: refused here as input that can never be stored.
            ensure_storable(frame)
        except UnstorableText as exc:
            await self.send_error(exc, request_id=request_id, client_id=client_id if kind == "message.send" else None)
            return
        self.frame = frame
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
