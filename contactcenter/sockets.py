"""The socket machinery both Switchboard sockets share (the core: imports no app). The visitor's socket
(chat/consumers.py) and the agent's (agents/consumers.py) build on it through chat's conversation stream."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, TypeVar

from autobahn.exception import Disconnected
from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from channels.utils import await_many_dispatch
from django.db import DatabaseError
from django.utils import timezone
from redis.exceptions import RedisError

from contactcenter import realtime
from contactcenter.channel_layer import channel_release
from contactcenter.errors import ApplicationError
from contactcenter.textinput import BadJson, UnstorableText, ensure_storable, parse_json, text_is_storable

logger = logging.getLogger(__name__)

MAX_FRAME_CHARS = 64 * 1024
REQUEST_ID_MAX = 64
CLOSE_NOT_AUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_UNAVAILABLE = 4503  # Redis or the database did not answer while opening: reconnect with backoff
# Seconds the channel layer may take to subscribe a new socket's channel: well inside daphne's handshake
# limit (--websocket_connect_timeout, 5 s by default), past which daphne drops the connection unanswered.
CHANNEL_OPEN_TIMEOUT = 3.0
# Seconds from the handshake's arrival (scope["arrived_at"], stamped by OpeningTurns before the session
# lookup; else the socket's start) within which a socket must have opened, or it is refused with 4503 and
# its database work still queued is cancelled. Inside daphne's 5 s limit: past it daphne drops the handshake
# unanswered, the client retries, and a server that went on with the abandoned handshake's queries would
# spend a reconnect storm on sockets nobody waits for any more (congestion collapse; bench/README.md).
OPEN_DEADLINE = 4.0
ARRIVED_AT = "arrived_at"
# Sockets of one process being opened at once (from the handshake's arrival to their first frame: the
# console's session lookup included); the others wait for a turn, holding no work, at most until
# OPEN_BUDGET before their deadline, and are refused with 4503 if none came. Every socket's database work
# runs on one shared thread, so more at once only lengthens the queue there: with no limit, a storm of
# reconnects put every handshake behind all the others and most ran out of time half-way, after their
# queries were spent (bench/README.md). With it, a socket that gets a turn opens well within its time.
OPENING_AT_ONCE = 8
OPEN_BUDGET = 2.0
UNAVAILABLE_MESSAGE = "The server cannot open the chat right now; reconnect in a moment."
# A socket refused for want of a turn (or of time) is told when to come back (`retry_after`, seconds): the
# process hands out return times one opening apart, at the pace it has been opening sockets, after those
# already waiting. A storm of reconnects (a replica restarting) then comes back at the rate the server can
# take it, instead of in waves of exponential backoff with the server idle in between (bench/README.md).
RETRY_AFTER_MIN = 0.5
RETRY_AFTER_MAX = 60.0
# The pace's first guess, before any socket opened (seconds a turn is held), and the weight of each new one.
TURN_HELD_FIRST = 0.1
TURN_HELD_WEIGHT = 0.1


class Openings:
    """This process's openings (one per event loop: tests run several loops): its turns, how long a turn is
    held lately, and the return times it handed out."""

    def __init__(self) -> None:
        self.turns = asyncio.Semaphore(OPENING_AT_ONCE)
        self.waiting = 0  # sockets waiting for a turn
        self.held_s = TURN_HELD_FIRST  # moving average of how long an opening holds its turn
        self.next_return = 0.0  # loop time of the first return time not handed out yet

    def turn_held(self, seconds: float) -> None:
        self.held_s += TURN_HELD_WEIGHT * (seconds - self.held_s)

    def retry_after(self) -> float:
        """When a refused socket should come back (seconds from now): one opening's time after the previous
        return time handed out, and not before the sockets already waiting had their turn (no socket waits
        longer than OPEN_DEADLINE - OPEN_BUDGET: those still waiting then are refused and get return times of
        their own, after this one)."""
        now = asyncio.get_running_loop().time()
        interval = self.held_s / OPENING_AT_ONCE  # seconds per socket opened while every turn is taken
        ahead = min(self.waiting * interval, OPEN_DEADLINE - OPEN_BUDGET)
        at = max(self.next_return, now + max(RETRY_AFTER_MIN, ahead))
        at = min(at, now + RETRY_AFTER_MAX)
        self.next_return = at + interval
        return round(at - now, 2)


_openings: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Openings] = weakref.WeakKeyDictionary()


def openings() -> Openings:
    """This process's openings, for the running event loop."""
    loop = asyncio.get_running_loop()
    found = _openings.get(loop)
    if found is None:
        found = _openings[loop] = Openings()
    return found


def unavailable_frame(*, retry_after: float | None) -> dict[str, Any]:
    """The `error` frame before a 4503 close; `retry_after` when the server was busy (not when a service it
    needs failed: the client then backs off as after a network loss)."""
    frame: dict[str, Any] = {"type": "error", "code": "unavailable", "message": UNAVAILABLE_MESSAGE, "fields": {}}
    if retry_after is not None:
        frame["retry_after"] = retry_after
    return frame


class OpeningTurns:
    """ASGI middleware around the sockets' stack: a socket runs only once it has one of the process's turns to
    open, and gives the turn back at its first frame or close (its hello, or its refusal)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)
        loop = asyncio.get_running_loop()
        scope.setdefault(ARRIVED_AT, loop.time())
        process = openings()
        process.waiting += 1
        try:
            async with asyncio.timeout_at(scope[ARRIVED_AT] + OPEN_DEADLINE - OPEN_BUDGET):
                await process.turns.acquire()
        except TimeoutError:
            logger.info("%s refused: no turn to open it came within its time", scope.get("path"))
            return await self._refuse(receive, send, process.retry_after())
        finally:
            process.waiting -= 1
        held_since: float | None = loop.time()

        def give_back() -> None:
            nonlocal held_since
            if held_since is not None:
                process.turn_held(loop.time() - held_since)
                held_since = None
                process.turns.release()

        async def send_watching(message: dict[str, Any]) -> None:
            if message["type"] in ("websocket.send", "websocket.close"):
                give_back()
            await send(message)

        try:
            return await self.app(scope, receive, send_watching)
        finally:
            give_back()

    @staticmethod
    async def _refuse(receive: Any, send: Any, retry_after: float) -> None:
        """As ProtocolSocket.refuse_unavailable, without starting the socket."""
        if (await receive())["type"] != "websocket.connect":
            return
        frame = unavailable_frame(retry_after=retry_after)
        await send({"type": "websocket.accept"})
        await send_unless_gone(send, {"type": "websocket.send", "text": json.dumps(frame, separators=(",", ":"))})
        await send_unless_gone(send, {"type": "websocket.close", "code": CLOSE_UNAVAILABLE})


T = TypeVar("T")

# What a service the socket needs raises when it is down or unreachable (logged without a traceback).
UNAVAILABLE_ERRORS = (RedisError, OSError, asyncio.TimeoutError, DatabaseError)


class SocketGone(Exception):
    """The socket closed before a database call of its opening started: the call did nothing."""


class UndoOnce:
    """An effect of a socket's opening (counting it as open) kept paired with its undoing at close, also when
    the socket stopped waiting for the effect half-way: a database call that a cancelled await left behind
    still runs to its end if its thread had started it, so only that thread knows whether it took effect.
    Both halves run on database threads under one lock: the undo runs only after an effect that completed,
    and an effect that had not started when the undo came never runs (`SocketGone`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done = False
        self._undone = False

    def do(self, effect: Callable[[], T]) -> T:
        with self._lock:
            if self._undone:
                raise SocketGone
            result = effect()  # raises: nothing took effect (the effect is one transaction)
            self._done = True
            return result

    def undo(self, undo: Callable[[], object]) -> None:
        with self._lock:
            self._undone = True
            if self._done:
                self._done = False
                undo()


class FrameError(ApplicationError):
    """A client frame the server cannot read; answered with an error frame, the socket stays open."""

    def __init__(self, code: str, message: str, fields: dict[str, list[str]] | None = None):
        super().__init__(code, message, fields)


def int_field(frame: dict[str, Any], name: str, *, minimum: int = 0) -> int:
    value = frame.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise FrameError("bad_frame", f"`{name}` must be a whole number ≥ {minimum}.", {name: ["Expected an integer."]})
    return value


def optional_int_field(frame: dict[str, Any], name: str, *, minimum: int = 0) -> int | None:
    """An int field that may be absent or null (None)."""
    return None if frame.get(name) is None else int_field(frame, name, minimum=minimum)


def bool_field(frame: dict[str, Any], name: str, default: bool = False, *, required: bool = False) -> bool:
    value = frame.get(name) if required else frame.get(name, default)
    if not isinstance(value, bool):
        raise FrameError("bad_frame", f"`{name}` must be true or false.", {name: ["Expected a boolean."]})
    return value


def text_field(frame: dict[str, Any], name: str, *, default: str = "") -> str:
    """A string field; absent or null gives `default`."""
    value = frame.get(name)
    if value is None:
        return default
    if not isinstance(value, str):
        raise FrameError("bad_frame", f"`{name}` must be text.", {name: ["Expected a string."]})
    return value


def ids_field(frame: dict[str, Any], name: str) -> list[int]:
    """A list of ids; absent or null gives an empty list."""
    value = frame.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in value):
        raise FrameError("bad_frame", f"`{name}` must be a list of ids.", {name: ["Expected a list of ids."]})
    return value


def client_id_field(frame: dict[str, Any]) -> str | None:
    """The `client_id` of a send, when it is text: a missing or unusable one is the service's
    `client_id_required` (docs/protocol.md §8), which names what a usable one is."""
    value = frame.get("client_id")
    return value if isinstance(value, str) else None


def usable_id(value: Any, limit: int) -> str | None:
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


class ProtocolSocket(AsyncWebsocketConsumer):
    """What every Switchboard socket does the same way (docs/protocol.md §1): the consumer's life and its one
    clean-up, refusing with a reason, groups, frames parsed and checked before any handler, error frames,
    unknown event types ignored. Subclasses name their frame handlers in `handlers` and open in `open`.
    """

    handlers: ClassVar[dict[str, str]] = {}

    tenant_id: int

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
        self.frame: dict[str, Any] = {}  # the client frame being handled
        self.open_deadline = scope.get(ARRIVED_AT, asyncio.get_running_loop().time()) + OPEN_DEADLINE
        self.setup()
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

    def setup(self) -> None:
        """Per-socket state of a subclass, set before anything arrives."""

    async def before_disconnect(self) -> None:
        """A subclass's last words while the socket's groups are still joined (the teardown runs it)."""

    async def teardown(self) -> None:
        try:
            await self.before_disconnect()
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
            # Cancelling at the deadline also cancels the open's database calls still queued behind other
            # sockets' on the database thread: a storm of reconnects does only work that someone waits for.
            async with asyncio.timeout_at(self.open_deadline):
                if asyncio.get_running_loop().time() >= self.open_deadline:
                    raise TimeoutError  # waited out its time before it started: not one query for it
                await self.open()
        except UNAVAILABLE_ERRORS as exc:
            if isinstance(exc, TimeoutError) and asyncio.get_running_loop().time() >= self.open_deadline:
                # The process was too busy to open it in time (not a service timing out): told when to return.
                logger.warning(
                    "%s not open %.0f s after its handshake: closed with %s",
                    type(self).__name__,
                    OPEN_DEADLINE,
                    CLOSE_UNAVAILABLE,
                )
                await self.refuse_unavailable(retry_after=openings().retry_after())
                return
            logger.warning("%s could not open (%r): closed with %s", type(self).__name__, exc, CLOSE_UNAVAILABLE)
            await self.refuse_unavailable()

    async def accept(self, subprotocol: str | None = None, headers: Any = None) -> None:
        await super().accept(subprotocol, headers)
        self.accepted = True

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        self.closing = True
        await super().close(code, reason)

    async def refuse_unavailable(self, *, retry_after: float | None = None) -> None:
        await self.refuse_with(unavailable_frame(retry_after=retry_after), CLOSE_UNAVAILABLE)

    async def open(self) -> None:
        raise NotImplementedError

    async def refuse(self, code: str, message: str, close_code: int) -> None:
        await self.refuse_with({"type": "error", "code": code, "message": message, "fields": {}}, close_code)

    async def refuse_with(self, frame: dict[str, Any], close_code: int) -> None:
        """Accepts only to say why, then closes: the browser cannot read a refused handshake's reason."""
        if not self.accepted:
            await self.accept()
        await self.send_frame(frame)
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
        retry_after = getattr(error, "retry_after", None)  # a refused send's wait (chat's RateLimited)
        if retry_after is not None:
            frame["retry_after"] = retry_after
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
        request_id = usable_id(frame.get("request_id"), REQUEST_ID_MAX)
        client_id = usable_id(frame.get("client_id"), 64)
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

    async def pong(self, request_id: str | None) -> None:
        frame: dict[str, Any] = {"type": "pong", "server_time": timezone.now().isoformat()}
        if request_id is not None:
            frame["request_id"] = request_id
        await self.send_frame(frame)
