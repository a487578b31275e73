"""The visitor's websocket (docs/protocol.md §3): one conversation of the token's visitor and widget."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.conf import settings

from channels_switch.services import conversation_switch, visitor_switching
from chat import events
from chat.conversation_stream import ConversationSocket
from chat.message_writer import post_message
from chat.selectors import VisitorActor, visitor_hello_frame, visitor_socket_conversation
from chat.services import conversation_mark_read, visitor_lease_renew
from chat.tokens import visitor_token_read
from contactcenter.errors import ApplicationError
from contactcenter.realtime import conversation_group, publish_ephemeral
from contactcenter.sockets import (
    CLOSE_NOT_FOUND,
    bool_field,
    client_id_field,
    ids_field,
    int_field,
    optional_int_field,
    text_field,
)
from queueing.selectors import queue_place
from queueing.services import conversation_end

logger = logging.getLogger(__name__)


class VisitorConsumer(ConversationSocket):
    """`/ws/visitor/conversations/<id>/?token=…`: one conversation of the token's visitor and widget."""

    include_private = False
    handlers = {
        "resume": "on_resume",
        "message.send": "on_message_send",
        "typing": "on_typing",
        "read": "on_read",
        "conversation.close": "on_close",
        "conversation.switch": "on_switch",
        "ping": "on_ping",
    }

    visitor: VisitorActor
    conversation_id: int

    def setup(self) -> None:
        super().setup()
        self.lease_seconds: int | None = None  # dead-connection detection's timeout, when it watches this chat
        self.waiting_lease_seconds: int | None = None  # while the chat waits in a queue: the leave grace
        self.lease_task: asyncio.Task[None] | None = None

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
            hello = await database_sync_to_async(self.hello)()
        except ApplicationError:
            await self.refuse("not_found", "No such conversation for this visitor.", CLOSE_NOT_FOUND)
            return
        await self.join(conversation_group(self.tenant_id, self.conversation_id))
        await self.accept()
        await self.send_frame(hello)
        if self.watched:
            self.lease_task = asyncio.create_task(self.keep_lease())

    @property
    def watched(self) -> bool:
        return self.lease_seconds is not None or self.waiting_lease_seconds is not None

    def hello(self) -> dict[str, Any]:
        """The first frame: the conversation, the limits, the channels the switch button offers and the place in
        line. The socket takes its lease on the conversation's deadline here: while the chat waits in a queue (a
        visitor gone past the grace leaves it), and while dead-connection detection watches it."""
        conversation = visitor_socket_conversation(actor=self.visitor, conversation_id=self.conversation_id)
        switching = visitor_switching(conversation=conversation)
        place = queue_place(conversation=conversation)
        self.lease_seconds = switching.lease_seconds
        self.waiting_lease_seconds = settings.QUEUE_LEAVE_GRACE_SECONDS if place is not None else None
        if self.watched and not self.renew_lease():
            self.lease_seconds = self.waiting_lease_seconds = None
        return {**visitor_hello_frame(conversation), "switch": switching.offers, "queue": place}

    def renew_lease(self) -> bool:
        return visitor_lease_renew(
            tenant_id=self.tenant_id,
            conversation_id=self.conversation_id,
            seconds=self.lease_seconds,
            waiting_seconds=self.waiting_lease_seconds,
        )

    async def keep_lease(self) -> None:
        """Renews the lease while the socket is open, from the server: a hidden tab's timers (the browser's
        pings) may run only once a minute, and a socket whose process died simply stops renewing. Stops once
        nothing watches the chat any more (answered without dead-connection detection, closed, moved)."""
        shortest = min(s for s in (self.lease_seconds, self.waiting_lease_seconds) if s is not None)
        interval = max(5.0, shortest / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                if not await database_sync_to_async(self.renew_lease)():
                    return
            except Exception:  # the database blinked: the next round tries again, well within the timeout
                logger.warning("visitor lease of conversation %s not renewed", self.conversation_id, exc_info=True)

    async def closed(self) -> None:
        if self.lease_task is not None:
            self.lease_task.cancel()
        if self.watched:
            # Gone from now: the timeout runs from the close (another open socket of the visitor renews it).
            await database_sync_to_async(self.renew_lease)()

    def render_message(self, data: events.MessageData) -> dict[str, Any] | None:
        return events.visitor_message_view(data, visitor_id=self.visitor.visitor_id)

    def _own_conversation(self, frame: dict[str, Any]) -> int:
        conversation_id = optional_int_field(frame, "conversation_id", minimum=1)
        if conversation_id is not None and conversation_id != self.conversation_id:
            raise ApplicationError("not_found", "No such conversation for this visitor.", status=404)
        return self.conversation_id

    async def on_resume(self, frame: dict[str, Any], request_id: str | None) -> None:
        conversation_id = self._own_conversation(frame)
        last_seq = int_field(frame, "last_seq")
        await self.subscribe(conversation_id, last_seq, request_id)

    async def on_message_send(self, frame: dict[str, Any], request_id: str | None) -> None:
        conversation_id = self._own_conversation(frame)
        result = await post_message(
            actor=self.visitor,
            conversation_id=conversation_id,
            body=text_field(frame, "body"),
            client_id=client_id_field(frame),
            attachment_ids=ids_field(frame, "attachment_ids"),
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

    async def on_switch(self, frame: dict[str, Any], request_id: str | None) -> None:
        conversation_id = self._own_conversation(frame)
        await database_sync_to_async(conversation_switch)(
            actor=self.visitor, conversation_id=conversation_id, channel=text_field(frame, "channel")
        )
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

    async def queue_position(self, event: dict[str, Any]) -> None:
        """The visitor's place in the queue's line changed, or they are out of it for good with a `reason`
        (queueing.services.line)."""
        if event["conversation_id"] == self.conversation_id:
            keys = ("type", "conversation_id", "position", "estimated_wait_seconds", "reason")
            await self.send_frame({key: event[key] for key in keys if key in event})
