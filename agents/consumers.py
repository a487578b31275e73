"""The agent console's websocket: presence, offers, the waiting list and every conversation the agent works on."""

from __future__ import annotations

import functools
from typing import Any

from channels.db import database_sync_to_async

from agents.console_state import LiveState, console_conversation, console_open, console_ping, console_state_sync
from channels_switch.services import conversation_switch, whatsapp_template_send
from chat import events
from chat.conversation_stream import ConversationSocket
from chat.message_writer import post_message
from chat.selectors import (
    READ,
    WRITE,
    AgentActor,
    agent_actor_for,
    agent_actor_refresh,
    conversation_get_for,
)
from chat.services import (
    conversation_mark_important,
    conversation_mark_read,
    conversation_set_disposition,
    whisper_post,
)
from contactcenter.errors import ApplicationError
from contactcenter.realtime import (
    agent_group,
    conversation_agents_group,
    conversation_group,
    publish_ephemeral,
    tenant_agents_group,
    tenant_inbox_group,
)
from contactcenter.sockets import (
    CLOSE_FORBIDDEN,
    CLOSE_NOT_AUTHENTICATED,
    FrameError,
    UndoOnce,
    bool_field,
    client_id_field,
    ids_field,
    int_field,
    optional_int_field,
    text_field,
)
from queueing.services import (
    agent_console_close,
    agent_presence_change,
    assistance_request,
    conversation_accept,
    conversation_end,
    conversation_invite,
    conversation_join,
    conversation_transfer,
    offer_reject,
)

# The member's role changed while the socket was open: the client reconnects at once and gets a hello for its
# new role (docs/protocol.md §1). Outside 44xx, which clients never reconnect after.
CLOSE_ACCESS_CHANGED = 4000


def _conversation_id(frame: dict[str, Any]) -> int:
    return int_field(frame, "conversation_id", minimum=1)


def _template_field(frame: dict[str, Any]) -> tuple[int, dict[str, str]] | None:
    """`message.send`'s `template` {`id`, `variables`: {"1": "…"}} (a WhatsApp template instead of `body`), typed
    at the edge; None when the frame has none."""
    template = frame.get("template")
    if template is None:
        return None
    wrong = FrameError("bad_frame", "`template` is {id, variables}.", {"template": ["Expected {id, variables}."]})
    if not isinstance(template, dict):
        raise wrong
    template_id = template.get("id")
    variables = template.get("variables", {})
    if not isinstance(template_id, int) or isinstance(template_id, bool) or template_id < 1:
        raise wrong
    if not isinstance(variables, dict) or not all(isinstance(value, str) for value in variables.values()):
        raise FrameError(
            "bad_frame", "`template.variables` maps numbers to text.", {"template.variables": ["Expected text."]}
        )
    return template_id, variables


class AgentConsumer(ConversationSocket):
    """`/ws/agent/`, authenticated by the console's session (AuthMiddlewareStack) behind an origin check."""

    include_private = True
    handlers = {
        "resume": "on_resume",
        "unsubscribe": "on_unsubscribe",
        "message.send": "on_message_send",
        "typing": "on_typing",
        "read": "on_read",
        "presence.set": "on_presence_set",
        "conversation.accept": "on_accept",
        "offer.reject": "on_reject",
        "conversation.important": "on_important",
        "conversation.disposition": "on_disposition",
        "conversation.close": "on_close",
        "conversation.switch": "on_switch",
        "conversation.transfer": "on_transfer",
        "conversation.invite": "on_invite",
        "conversation.assist": "on_assist",
        "conversation.join": "on_join",
        "inbox.watch": "on_inbox_watch",
        "ping": "on_ping",
    }

    agent: AgentActor

    def setup(self) -> None:
        super().setup()
        # Counting the socket as one of the agent's open ones (presence), undone at close exactly once, also
        # when the open ran past its deadline while the count was being written.
        self.counted = UndoOnce()
        self.counting = False
        self.revoked = False
        self.access: dict[int, str] = {}
        self.queue_ids: set[int] = set()
        # What this socket has told its console of offers, waiting list and presence (see on_ping).
        self.shown = LiveState(offers=set(), waiting=set(), presence="offline")

    async def open(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.refuse("not_authenticated", "Sign in to the console first.", CLOSE_NOT_AUTHENTICATED)
            return
        actor = await database_sync_to_async(agent_actor_for)(user)
        if actor is None:
            await self.refuse("forbidden", "This account is not a member of a contact center.", CLOSE_FORBIDDEN)
            return
        self.agent = actor
        self.actor = actor
        self.tenant_id = actor.tenant_id
        # Groups first, state second: an event racing the read arrives twice at worst (clients dedupe by
        # id), never not at all.
        await self.join(agent_group(self.tenant_id, actor.user.pk))
        await self.join(tenant_agents_group(self.tenant_id))
        await self.accept()
        self.counting = True
        session = await database_sync_to_async(self.counted.do)(functools.partial(console_open, actor=actor))
        self.queue_ids = set(session.queue_ids)
        self.shown = LiveState.of_frame(session.hello)
        await self.send_frame(session.hello)

    async def closed(self) -> None:
        if getattr(self, "counting", False):
            self.counting = False
            await database_sync_to_async(self.counted.undo)(functools.partial(agent_console_close, actor=self.agent))

    def render_message(self, data: events.MessageData) -> dict[str, Any] | None:
        return events.agent_message_view(data)

    # --- access changes: removal, deactivation, a new role -------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if getattr(self, "revoked", False):
            return  # closed for a change of access: frames still queued behind the close do nothing
        await super().receive(text_data=text_data, bytes_data=bytes_data)

    async def _check_access(self) -> bool:
        """Re-reads the actor; closes the socket (True) when the member was removed, deactivated or re-roled."""
        return await self._apply_access(await database_sync_to_async(agent_actor_refresh)(actor=self.agent))

    async def _apply_access(self, actor: AgentActor | None) -> bool:
        """Closes the socket (True) unless `actor`, the member as the database has it now, is unchanged."""
        if actor is self.agent:
            return False
        self.revoked = True
        for group in list(self.groups_joined):  # nothing more reaches this socket, not even before the close
            await self.leave(group)
        if actor is None:
            await self.send_error(ApplicationError("forbidden", "Your access to this contact center was removed."))
            await self.close(code=CLOSE_FORBIDDEN)
        else:
            await self.send_error(
                ApplicationError("access_changed", f"Your role is now {actor.role}: reconnect to go on.")
            )
            await self.close(code=CLOSE_ACCESS_CHANGED)
        return True

    async def membership_changed(self, event: dict[str, Any]) -> None:
        if not getattr(self, "revoked", False):
            await self._check_access()

    async def _subscribe_groups(self, conversation_id: int, access: str) -> None:
        self.access[conversation_id] = access
        await self.join(conversation_group(self.tenant_id, conversation_id))
        await self.join(conversation_agents_group(self.tenant_id, conversation_id))

    # --- client frames -----------------------------------------------------------------------------------

    async def on_resume(self, frame: dict[str, Any], request_id: str | None) -> None:
        conversation_id = _conversation_id(frame)
        last_seq = int_field(frame, "last_seq")
        _, access = await database_sync_to_async(conversation_get_for)(
            actor=self.agent, conversation_id=conversation_id
        )
        await self._subscribe_groups(conversation_id, access)
        await self.subscribe(conversation_id, last_seq, request_id)

    async def on_unsubscribe(self, frame: dict[str, Any], request_id: str | None) -> None:
        await self._forget(_conversation_id(frame))
        await self.send_ok(request_id)

    async def _forget(self, conversation_id: int) -> None:
        self.access.pop(conversation_id, None)
        self.cursors.pop(conversation_id, None)
        await self.leave(conversation_group(self.tenant_id, conversation_id))
        await self.leave(conversation_agents_group(self.tenant_id, conversation_id))

    async def on_message_send(self, frame: dict[str, Any], request_id: str | None) -> None:
        conversation_id = _conversation_id(frame)
        template = _template_field(frame)
        if template is not None:
            result = await database_sync_to_async(whatsapp_template_send)(
                actor=self.agent,
                conversation_id=conversation_id,
                template_id=template[0],
                variables=template[1],
                client_id=client_id_field(frame),
            )
            await self.ack(conversation_id, result, result.message.client_id, request_id)
            return
        private = bool_field(frame, "private")
        attachment_ids = ids_field(frame, "attachment_ids")
        if private and not attachment_ids and self._whispers(conversation_id):
            # A supervisor following a colleague's chat without taking part: a whisper (a note, never a reply).
            result = await database_sync_to_async(whisper_post)(
                actor=self.agent,
                conversation_id=conversation_id,
                body=text_field(frame, "body"),
                client_id=client_id_field(frame),
            )
            await self.ack(conversation_id, result, result.message.client_id, request_id)
            return
        result = await post_message(
            actor=self.agent,
            conversation_id=conversation_id,
            body=text_field(frame, "body"),
            client_id=client_id_field(frame),
            private=private,
            attachment_ids=attachment_ids,
        )
        await self.ack(conversation_id, result, result.message.client_id, request_id)

    def _whispers(self, conversation_id: int) -> bool:
        """This socket follows the conversation read-only as a supervisor: its notes are whispers."""
        return self.agent.supervises and self.access.get(conversation_id) == READ

    async def on_typing(self, frame: dict[str, Any], request_id: str | None) -> None:
        conversation_id = _conversation_id(frame)
        is_typing = bool_field(frame, "is_typing", default=True)
        private = bool_field(frame, "private")
        if self.access.get(conversation_id) != WRITE and not (private and self._whispers(conversation_id)):
            # Typing is never stored, so it is authorised by the socket's own subscription, not a query.
            raise FrameError("forbidden", "Resume a conversation you work on before typing in it.")
        if self.typing_due(conversation_id, is_typing):
            group = (
                conversation_agents_group(self.tenant_id, conversation_id)
                if private
                else conversation_group(self.tenant_id, conversation_id)
            )
            await publish_ephemeral(
                group=group,
                event=events.typing_event(
                    conversation_id=conversation_id,
                    side="agent",
                    user=self.agent.user,
                    is_typing=is_typing,
                    private=private,
                    origin=self.channel_name,
                ),
            )
        await self.send_ok(request_id)

    async def on_read(self, frame: dict[str, Any], request_id: str | None) -> None:
        await database_sync_to_async(conversation_mark_read)(
            actor=self.agent, conversation_id=_conversation_id(frame), seq=int_field(frame, "seq")
        )
        await self.send_ok(request_id)

    async def on_presence_set(self, frame: dict[str, Any], request_id: str | None) -> None:
        presence = frame.get("presence")
        if not isinstance(presence, str):
            raise FrameError(
                "bad_frame", "`presence` is online, away, paused or offline.", {"presence": ["Expected text."]}
            )
        pause_reason_id = optional_int_field(frame, "pause_reason_id", minimum=1)
        await database_sync_to_async(agent_presence_change)(
            actor=self.agent, presence=presence, pause_reason_id=pause_reason_id
        )
        await self.send_ok(request_id)

    async def on_accept(self, frame: dict[str, Any], request_id: str | None) -> None:
        conversation_id = _conversation_id(frame)
        await database_sync_to_async(conversation_accept)(actor=self.agent, conversation_id=conversation_id)
        await self._announce_assigned(conversation_id)
        await self.send_ok(request_id)

    async def on_reject(self, frame: dict[str, Any], request_id: str | None) -> None:
        conversation_id = _conversation_id(frame)
        await database_sync_to_async(offer_reject)(actor=self.agent, conversation_id=conversation_id)
        self.shown.offers.discard(conversation_id)  # the console drops the card at this `ok`
        await self.send_ok(request_id)

    async def on_important(self, frame: dict[str, Any], request_id: str | None) -> None:
        await database_sync_to_async(conversation_mark_important)(
            actor=self.agent,
            conversation_id=_conversation_id(frame),
            important=bool_field(frame, "important", required=True),
        )
        await self.send_ok(request_id)

    async def on_disposition(self, frame: dict[str, Any], request_id: str | None) -> None:
        if "disposition_id" not in frame:
            raise FrameError("bad_frame", "`disposition_id` is required (null clears it).")
        await database_sync_to_async(conversation_set_disposition)(
            actor=self.agent,
            conversation_id=_conversation_id(frame),
            disposition_id=optional_int_field(frame, "disposition_id", minimum=1),
        )
        await self.send_ok(request_id)

    async def on_close(self, frame: dict[str, Any], request_id: str | None) -> None:
        await database_sync_to_async(conversation_end)(
            actor=self.agent,
            conversation_id=_conversation_id(frame),
            disposition_id=optional_int_field(frame, "disposition_id", minimum=1),
        )
        await self.send_ok(request_id)

    async def on_switch(self, frame: dict[str, Any], request_id: str | None) -> None:
        await database_sync_to_async(conversation_switch)(
            actor=self.agent, conversation_id=_conversation_id(frame), channel=text_field(frame, "channel")
        )
        await self.send_ok(request_id)

    async def on_transfer(self, frame: dict[str, Any], request_id: str | None) -> None:
        await database_sync_to_async(conversation_transfer)(
            actor=self.agent,
            conversation_id=_conversation_id(frame),
            to_user_id=optional_int_field(frame, "agent_id", minimum=1),
            to_queue_id=optional_int_field(frame, "queue_id", minimum=1),
        )
        await self.send_ok(request_id)  # conversation.unassigned follows, to each of the agent's consoles

    async def on_invite(self, frame: dict[str, Any], request_id: str | None) -> None:
        await database_sync_to_async(conversation_invite)(
            actor=self.agent,
            conversation_id=_conversation_id(frame),
            to_user_id=optional_int_field(frame, "agent_id", minimum=1),
            to_queue_id=optional_int_field(frame, "queue_id", minimum=1),
        )
        await self.send_ok(request_id)

    async def on_assist(self, frame: dict[str, Any], request_id: str | None) -> None:
        await database_sync_to_async(assistance_request)(actor=self.agent, conversation_id=_conversation_id(frame))
        await self.send_ok(request_id)

    async def on_join(self, frame: dict[str, Any], request_id: str | None) -> None:
        conversation_id = _conversation_id(frame)
        await database_sync_to_async(conversation_join)(actor=self.agent, conversation_id=conversation_id)
        await self._announce_assigned(conversation_id)
        await self.send_ok(request_id)

    async def on_inbox_watch(self, frame: dict[str, Any], request_id: str | None) -> None:
        """The console shows its inbox (or stopped): only then does it hear which conversations changed."""
        group = tenant_inbox_group(self.tenant_id)
        if bool_field(frame, "watch", required=True):
            await self.join(group)
        else:
            await self.leave(group)
        await self.send_ok(request_id)

    async def on_ping(self, frame: dict[str, Any], request_id: str | None) -> None:
        # The event closes the socket at once; this catches a change made past the services (Django admin).
        ping = await database_sync_to_async(console_ping)(actor=self.agent)
        if await self._apply_access(ping.actor):
            return
        self.queue_ids = set(ping.queue_ids)
        await self.catch_up()
        if ping.live is not None and not self.shown.agrees_with(ping.live):
            # An offer, waiting or presence event was lost (or is still on its way: the events behind this
            # frame then apply on top of it, as they would on the hello).
            sync = await database_sync_to_async(console_state_sync)(actor=self.agent)
            self.shown = LiveState.of_frame(sync)
            await self.send_frame(sync)
        await self.pong(request_id)

    # --- layer events -----------------------------------------------------------------------------------

    async def _announce_assigned(self, conversation_id: int) -> None:
        """Subscribes this socket and shows the conversation; once per socket, whichever path comes first (a
        conversation it followed read-only is shown again: the agent now takes part in it)."""
        if self.access.get(conversation_id) == WRITE:
            return
        try:
            snapshot = await database_sync_to_async(console_conversation)(
                actor=self.agent, conversation_id=conversation_id
            )
        except ApplicationError:
            return
        await self._subscribe_groups(conversation_id, snapshot["access"])
        await self.send_frame({"type": "conversation.assigned", "conversation": snapshot})

    async def conversation_unassigned(self, event: dict[str, Any]) -> None:
        """The agent handed the conversation on or left it to a colleague (any of their consoles): this socket
        stops following it and the console drops the tab."""
        await self._forget(event["conversation_id"])
        await self.send_frame(
            {"type": "conversation.unassigned", "conversation_id": event["conversation_id"], "reason": event["reason"]}
        )

    async def conversation_assigned(self, event: dict[str, Any]) -> None:
        await self._announce_assigned(event["conversation_id"])

    async def typing(self, event: dict[str, Any]) -> None:
        if event.get("origin") == self.channel_name:
            return
        await self.send_frame(
            {
                "type": "typing",
                "conversation_id": event["conversation_id"],
                "side": event["side"],
                "user_id": event["user_id"],
                "name": event["name"],
                "is_typing": event["is_typing"],
                "private": event["private"],
            }
        )

    async def read(self, event: dict[str, Any]) -> None:
        await self.send_frame(
            {
                "type": "read",
                "conversation_id": event["conversation_id"],
                "side": event["side"],
                "seq": event["seq"],
                "user_id": event["user_id"],
            }
        )

    async def queue_position(self, event: dict[str, Any]) -> None:
        """A waiting visitor's place in line (queueing.services.line), sent to the conversation's group: the
        visitor's news; a console following the conversation has its waiting time already."""

    async def conversation_updated(self, event: dict[str, Any]) -> None:
        await self.send_frame({"type": "conversation.updated", "conversation": event["conversation"]})

    async def inbox_changed(self, event: dict[str, Any]) -> None:
        """A conversation of the tenant changed (only while the console watches its inbox): the console reads
        the row again over HTTP, where who may see it is decided."""
        await self.send_frame({"type": "inbox.changed", "conversation_id": event["conversation_id"]})

    async def message_delivery(self, event: dict[str, Any]) -> None:
        """How far a message to an SMS, WhatsApp or email customer got (channels_switch's relay)."""
        if event["conversation_id"] in self.cursors:
            await self.send_frame(dict(event))

    async def assistance_requested(self, event: dict[str, Any]) -> None:
        """To a supervisor on duty: a colleague asks for help in a chat (queueing.services.assistance_request)."""
        keys = ("type", "conversation_id", "agent_name", "contact_name", "queue")
        await self.send_frame({key: event[key] for key in keys})

    # Offers, the waiting list and the agent's presence: what the console is told is noted in self.shown,
    # which each ping checks against the database (LiveState).

    async def offer_new(self, event: dict[str, Any]) -> None:
        self.shown.offers.add(event["offer"]["conversation_id"])
        await self.send_frame({"type": "offer.new", "offer": event["offer"]})

    async def offer_withdrawn(self, event: dict[str, Any]) -> None:
        self.shown.offers.discard(event["conversation_id"])
        await self.send_frame({key: event[key] for key in ("type", "conversation_id", "offer_id", "reason")})

    async def waiting_added(self, event: dict[str, Any]) -> None:
        queue_id = event.get("queue_id")
        if queue_id is None or queue_id in self.queue_ids or self.agent.supervises:
            self.shown.waiting.add(event["item"]["conversation_id"])
            await self.send_frame({"type": "waiting.added", "item": event["item"]})

    async def waiting_preview(self, event: dict[str, Any]) -> None:
        """A waiting chat's first visitor message (chat.services): for its offer card and waiting item."""
        queue_id = event.get("queue_id")
        if queue_id is None or queue_id in self.queue_ids or self.agent.supervises:
            frame = {
                "type": "waiting.preview",
                "conversation_id": event["conversation_id"],
                "preview": event["preview"],
            }
            await self.send_frame(frame)

    async def waiting_removed(self, event: dict[str, Any]) -> None:
        self.shown.waiting.discard(event["conversation_id"])
        await self.send_frame({"type": "waiting.removed", "conversation_id": event["conversation_id"]})

    async def agent_presence(self, event: dict[str, Any]) -> None:
        if event["user_id"] == self.agent.user.pk:
            self.shown.presence, self.shown.pause_reason = event["presence"], event.get("pause_reason")
        await self.send_frame({key: event.get(key) for key in ("type", "user_id", "name", "presence", "pause_reason")})

    # Tenant settings the console shows, changed while it is open (agents/services.py publishes them with
    # exactly the frame's fields): forwarded as they are.
    async def _forward_settings(self, event: dict[str, Any]) -> None:
        await self.send_frame(dict(event))

    template_updated = template_deleted = dispositions_updated = _forward_settings
