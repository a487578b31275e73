"""The supervision page's websocket (`/ws/supervision/`, docs/protocol.md §4a): the page's whole state, sent again
whenever the team's events say it changed (at most once a second) and every few seconds regardless, and a
supervisor's change of a teammate's presence."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels.db import database_sync_to_async

from agents.supervision_state import supervision_snapshot
from chat import events
from chat.selectors import AgentActor, agent_actor_for, agent_actor_refresh
from contactcenter.errors import ApplicationError
from contactcenter.realtime import tenant_agents_group
from contactcenter.sockets import (
    CLOSE_FORBIDDEN,
    CLOSE_NOT_AUTHENTICATED,
    UNAVAILABLE_ERRORS,
    FrameError,
    ProtocolSocket,
    int_field,
    optional_int_field,
    text_field,
)
from queueing.services import agent_presence_change_by

logger = logging.getLogger(__name__)

# Events of the tenant's agents group come in bursts (a chat accepted: an offer withdrawn, the waiting list,
# a presence): one snapshot follows them all, at most one per REFRESH_GAP seconds.
REFRESH_GAP = 1.0
# Also read again this often whatever happened: waits grow, and an open chat's close is not on that group.
REFRESH_EVERY = 10.0
# The member's role changed while the page was open (as on the agent socket, docs/protocol.md §1).
CLOSE_ACCESS_CHANGED = 4000


def _snapshot_for(actor: AgentActor) -> tuple[AgentActor | None, dict[str, Any] | None]:
    """The member as the database has them now and, while they still supervise, the page's state."""
    fresh = agent_actor_refresh(actor=actor)
    if fresh is None or not fresh.supervises:
        return fresh, None
    return fresh, supervision_snapshot(actor=fresh)


def _presence_change_by(actor: AgentActor, user_id: int, presence: str, pause_reason_id: int | None) -> None:
    """The supervisor's change, by the member as they are now (a demoted or removed one is refused)."""
    fresh = agent_actor_refresh(actor=actor)
    if fresh is None:
        raise ApplicationError("forbidden", "Your access to this contact center was removed.")
    agent_presence_change_by(supervisor=fresh, user_id=user_id, presence=presence, pause_reason_id=pause_reason_id)


class SupervisionConsumer(ProtocolSocket):
    """`/ws/supervision/`, authenticated by the page's session (AuthMiddlewareStack) behind the origin check."""

    handlers = {
        "agent.presence.set": "on_presence_set",
        "ping": "on_ping",
    }

    supervisor: AgentActor

    def setup(self) -> None:
        self.dirty = False
        self.last_sent = 0.0
        self.refresher: asyncio.Task[None] | None = None
        self.ticker: asyncio.Task[None] | None = None

    async def open(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.refuse("not_authenticated", "Sign in first.", CLOSE_NOT_AUTHENTICATED)
            return
        actor = await database_sync_to_async(agent_actor_for)(user)
        if actor is None or not actor.supervises:
            await self.refuse("forbidden", "The supervision page is for supervisors and admins.", CLOSE_FORBIDDEN)
            return
        self.supervisor = actor
        self.tenant_id = actor.tenant_id
        # The group first, the state second: an event racing the read only brings one more snapshot.
        await self.join(tenant_agents_group(self.tenant_id))
        await self.accept()
        snapshot = await database_sync_to_async(supervision_snapshot)(actor=actor)
        self.last_sent = asyncio.get_running_loop().time()
        await self.send_frame({"type": "hello", "v": events.PROTOCOL_VERSION, "snapshot": snapshot})
        self.ticker = asyncio.ensure_future(self._tick())

    async def closed(self) -> None:
        for task in (self.ticker, self.refresher):
            if task is not None and not task.done():
                task.cancel()

    # --- the snapshot, coalesced ----------------------------------------------------------------------------

    def refresh_soon(self) -> None:
        """Marks the page stale; one task sends the next snapshot, never sooner than REFRESH_GAP after the last."""
        if self.disconnected or self.closing or not self.accepted:
            return
        self.dirty = True
        if self.refresher is None or self.refresher.done():
            self.refresher = asyncio.ensure_future(self._refresh())

    async def _refresh(self) -> None:
        loop = asyncio.get_running_loop()
        while self.dirty and not (self.disconnected or self.closing):
            wait = self.last_sent + REFRESH_GAP - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self.dirty = False
            self.last_sent = loop.time()
            try:
                actor, snapshot = await database_sync_to_async(_snapshot_for)(self.supervisor)
            except UNAVAILABLE_ERRORS as exc:  # the database is away: the next tick tries again
                logger.warning("supervision snapshot failed (%r)", exc)
                continue
            except Exception:
                logger.exception("supervision snapshot failed")
                continue
            if await self._apply_access(actor):
                return
            if snapshot is not None:
                await self.send_frame({"type": "supervision.snapshot", "snapshot": snapshot})

    async def _tick(self) -> None:
        while not (self.disconnected or self.closing):
            await asyncio.sleep(REFRESH_EVERY)
            self.refresh_soon()

    async def _apply_access(self, actor: AgentActor | None) -> bool:
        """Closes the socket (True) when the member was removed, deactivated or given another role."""
        if actor is not None and actor.role == self.supervisor.role:
            self.supervisor = actor
            return False
        if actor is None or not actor.supervises:
            await self.refuse("forbidden", "Your access to the supervision page was removed.", CLOSE_FORBIDDEN)
        else:
            await self.refuse(
                "access_changed", f"Your role is now {actor.role}: reconnect to go on.", CLOSE_ACCESS_CHANGED
            )
        return True

    # --- client frames -------------------------------------------------------------------------------------

    async def on_presence_set(self, frame: dict[str, Any], request_id: str | None) -> None:
        presence = text_field(frame, "presence")
        if not presence:
            raise FrameError(
                "bad_frame", "`presence` is online, away, paused or offline.", {"presence": ["Expected text."]}
            )
        await database_sync_to_async(_presence_change_by)(
            self.supervisor,
            int_field(frame, "user_id", minimum=1),
            presence,
            optional_int_field(frame, "pause_reason_id", minimum=1),
        )
        self.refresh_soon()  # its agent.presence comes too; one snapshot follows both
        await self.send_ok(request_id)

    async def on_ping(self, frame: dict[str, Any], request_id: str | None) -> None:
        await self.pong(request_id)

    # --- layer events: anything on the team's group may change a figure ----------------------------------

    async def _changed(self, event: dict[str, Any]) -> None:
        self.refresh_soon()

    async def _unrelated(self, event: dict[str, Any]) -> None:
        """The console's settings events share the group; nothing on this page shows them."""

    agent_presence = waiting_added = waiting_removed = waiting_preview = _changed
    template_updated = template_deleted = dispositions_updated = _unrelated
