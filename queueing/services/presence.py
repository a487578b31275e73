"""Agents' availability: presence changes and their follow-up on offers, the offline sweep, console sessions."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from django.db import transaction

from agents.models import AgentProfile, Presence
from agents.services.presence import (
    agent_heartbeat,
    agent_socket_closed,
    agent_socket_opened,
    agent_sockets_sweep,
    presence_pause_for_missed_offer,
    presence_set,
    presence_sweep,
)
from chat import events
from chat.selectors import AgentActor
from contactcenter.errors import ApplicationError
from contactcenter.models import Membership, Role
from contactcenter.realtime import publish_on_commit, tenant_agents_group
from queueing.models import Offer, OfferStatus
from queueing.selectors import agent_queue_ids
from queueing.services.line import queue_line_unserved
from queueing.services.routing import (
    _offer_onwards,
    _offers_refresh,
    _withdraw_offers,
    agent_offers_refresh,
    conversations_lock,
)


def _presence_followup(*, actor: AgentActor, profile: AgentProfile, changed: bool) -> int:
    """What follows a presence change, whoever made it: colleagues hear of it, and online brings offers while
    any other presence withdraws the pending ones, each going to the next eligible agent at once. Returns how
    many offers were withdrawn."""
    presence = profile.presence
    if changed:
        reason = profile.pause_reason.name if presence == Presence.PAUSED and profile.pause_reason else None
        publish_on_commit(
            group=tenant_agents_group(actor.tenant_id), event=events.agent_presence(actor.user, presence, reason)
        )
    if presence == Presence.ONLINE:
        agent_offers_refresh(actor=actor)
        return 0
    held = Offer.objects.filter(tenant_id=actor.tenant_id, agent=actor.user, status=OfferStatus.PENDING)
    conversations_lock(actor.tenant_id, held.values_list("conversation_id", flat=True))
    pending = list(held)
    _withdraw_offers(pending, reason_for={}, default="unavailable")
    _offer_onwards(actor.tenant_id, [offer.conversation_id for offer in pending])
    if presence == Presence.OFFLINE and changed:
        # Was it the last of a queue? Checked once committed, so that two agents leaving at once both count
        # (and the sweep's pass catches whatever slips between two commits).
        transaction.on_commit(
            partial(queue_line_unserved, tenant_id=actor.tenant_id, queue_ids=agent_queue_ids(actor=actor))
        )
    return len(pending)


@transaction.atomic
def agent_presence_change(*, actor: AgentActor, presence: str, pause_reason_id: int | None = None) -> AgentProfile:
    """The agent's chosen presence: online brings offers; away, paused (with one of the team's reasons) and
    offline withdraw the pending ones, which go to colleagues."""
    profile, changed = presence_set(user=actor.user, presence=presence, pause_reason_id=pause_reason_id)
    _presence_followup(actor=actor, profile=profile, changed=changed)
    return profile


@transaction.atomic
def agent_presence_change_by(
    *, supervisor: AgentActor, user_id: int, presence: str, pause_reason_id: int | None = None
) -> AgentProfile:
    """A supervisor or admin sets a teammate's presence (the supervision page), with the same follow-up as the
    agent's own choice: their consoles and colleagues hear `agent.presence`, offers come or go. A user who is not
    an active member of the supervisor's tenant is `not_found`, whoever they are elsewhere."""
    if not supervisor.supervises:
        raise ApplicationError("forbidden", "Only supervisors and admins change a teammate's presence.")
    member = (
        Membership.objects.filter(tenant_id=supervisor.tenant_id, user_id=user_id, user__is_active=True)
        .select_related("user")
        .first()
    )
    sockets = (
        AgentProfile.objects.filter(tenant_id=supervisor.tenant_id, user_id=user_id)
        .values_list("open_sockets", flat=True)
        .first()
    )
    if member is None or sockets is None:
        raise ApplicationError("not_found", "No such teammate.", {"user_id": ["Not a member of your team."]})
    if presence == Presence.ONLINE and not sockets:
        # Chats would be offered to a console nobody has open, until the sweep took them offline again.
        message = "They have no console open: only they can come online, from their console."
        raise ApplicationError("invalid", message, {"presence": [message]})
    actor = AgentActor(tenant_id=supervisor.tenant_id, user=member.user, role=member.role)
    profile, changed = presence_set(user=actor.user, presence=presence, pause_reason_id=pause_reason_id)
    _presence_followup(actor=actor, profile=profile, changed=changed)
    return profile


@transaction.atomic
def agent_missed_offer(*, actor: AgentActor) -> bool:
    """An agent let an offer expire: paused with the built-in "Missed offer" reason (unpaid), which they see;
    their other offers go to colleagues. Returns whether they were paused now."""
    profile, changed = presence_pause_for_missed_offer(user=actor.user)
    if changed:
        _presence_followup(actor=actor, profile=profile, changed=True)
    return changed


@dataclass(frozen=True)
class OfflineSweep:
    sockets_cleared: int
    user_ids: list[int]  # the agents taken offline
    offers_withdrawn: int


@transaction.atomic
def agents_offline_sweep() -> OfflineSweep:
    """The sweep's presence pass: forgets sockets of dead server processes, takes agents whose sockets are
    gone past the grace period offline, and follows up on each as on a manual `presence.set offline`."""
    sockets_cleared = agent_sockets_sweep()
    user_ids = presence_sweep()
    withdrawn = 0
    profiles = AgentProfile.objects.filter(user_id__in=user_ids).select_related("user").order_by("pk")
    for profile in profiles:
        # The role does not matter for going offline (only for picking up work), as in conversation_end.
        actor = AgentActor(tenant_id=profile.tenant_id, user=profile.user, role=Role.AGENT)
        withdrawn += _presence_followup(actor=actor, profile=profile, changed=True)
    return OfflineSweep(sockets_cleared=sockets_cleared, user_ids=user_ids, offers_withdrawn=withdrawn)


@transaction.atomic(savepoint=False)  # one transaction with the console's snapshot read (agents.console_state)
def agent_console_open(*, actor: AgentActor, anything_waiting: bool = True) -> AgentProfile:
    """Counts the socket and re-offers waiting work if the agent is online; returns the agent's profile.

    `anything_waiting=False`: the caller has just read, in this transaction, that no conversation waits where
    this agent may pick it up (the console's waiting list came back empty), so there is nothing to offer and
    the offer pass (a locked profile read, the agent's load, the pick) is skipped."""
    agent_socket_opened(user=actor.user)
    profile = AgentProfile.objects.select_related("pause_reason").get(tenant_id=actor.tenant_id, user=actor.user)
    if anything_waiting:
        _offers_refresh(actor, profile)  # already in this transaction: no savepoint, no second profile read
    return profile


def agent_console_ping(*, actor: AgentActor) -> list[int]:
    """The heartbeat; returns the agent's queues afresh (membership may have changed since connect)."""
    agent_heartbeat(user=actor.user)
    return agent_queue_ids(actor=actor)


def agent_console_close(*, actor: AgentActor) -> None:
    agent_socket_closed(user=actor.user)
