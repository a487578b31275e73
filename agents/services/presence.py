"""Live presence: console sockets, heartbeats, the presence an agent picks and the sweep (docs/protocol.md).

The lower halves of what routing does with presence: queueing.services wraps presence_set
(agent_presence_change), the socket counts (agent_console_open/close) and presence_sweep
(agents_offline_sweep), which also tell colleagues and withdraw offers.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from agents.models import AgentProfile, PauseReason, Presence
from contactcenter.errors import ApplicationError

SETTABLE_PRESENCE = (Presence.ONLINE, Presence.AWAY, Presence.PAUSED, Presence.OFFLINE)


def stale_socket_seconds() -> int:
    """A socket without a heartbeat this long is presumed gone (its server process died without a close)."""
    return settings.AGENT_SOCKET_STALE_SECONDS


@transaction.atomic
def presence_set(*, user: User, presence: str, pause_reason_id: int | None = None) -> tuple[AgentProfile, bool]:
    """Sets the presence the agent chose (paused: with one of the tenant's active pause reasons, which the
    product's own, such as "Missed offer", are not); returns the profile and whether it changed."""
    if presence not in SETTABLE_PRESENCE:
        choices = ", ".join(str(p) for p in SETTABLE_PRESENCE)
        raise ApplicationError("invalid", f"Presence is one of {choices}.", {"presence": [f"One of {choices}."]})
    profile = AgentProfile.objects.select_for_update().get(user=user)
    reason = None
    if presence == Presence.PAUSED:
        reason = (
            PauseReason.objects.for_tenant(profile.tenant_id)
            .filter(pk=pause_reason_id, is_active=True, system="")
            .first()
            if pause_reason_id is not None
            else None
        )
        if reason is None:
            message = "Pick one of your team's pause reasons."
            raise ApplicationError("invalid", message, {"pause_reason_id": [message]})
    return profile, _presence_write(profile, presence, reason)


def _presence_write(profile: AgentProfile, presence: str, reason: PauseReason | None) -> bool:
    if profile.presence == presence and profile.pause_reason_id == (reason.pk if reason else None):
        return False
    now = timezone.now()
    if presence == Presence.ONLINE and profile.presence != Presence.ONLINE:
        profile.idle_since = now  # back: idle from now, behind colleagues who waited longer
    profile.presence, profile.pause_reason, profile.presence_changed_at = presence, reason, now
    profile.save(update_fields=["presence", "presence_changed_at", "pause_reason", "idle_since"])
    return True


def missed_offer_reason(*, tenant_id: int) -> PauseReason:
    """The tenant's built-in, unpaid "Missed offer" pause reason (made the first time it is needed)."""
    reason = PauseReason.objects.for_tenant(tenant_id).filter(system=PauseReason.MISSED_OFFER).first()
    if reason is not None:
        return reason
    reason, _ = PauseReason.objects.get_or_create(
        tenant_id=tenant_id, name="Missed offer", defaults={"paid": False, "system": PauseReason.MISSED_OFFER}
    )
    if reason.system != PauseReason.MISSED_OFFER:  # a reason of that name the team made: it becomes the one
        reason.system, reason.paid, reason.is_active = PauseReason.MISSED_OFFER, False, True
        reason.save(update_fields=["system", "paid", "is_active"])
    return reason


@transaction.atomic
def presence_pause_for_missed_offer(*, user: User) -> tuple[AgentProfile, bool]:
    """An online agent who let an offer expire is paused with the built-in "Missed offer" reason; returns the
    profile and whether it changed (an agent no longer online is left as they are)."""
    profile = AgentProfile.objects.select_for_update().get(user=user)
    if profile.presence != Presence.ONLINE:
        return profile, False
    return profile, _presence_write(profile, Presence.PAUSED, missed_offer_reason(tenant_id=profile.tenant_id))


def agent_idle_from_now(*, tenant_id: int, user_id: int) -> None:
    """The agent took or ended a chat: longest-idle routing counts their idle time from now."""
    AgentProfile.objects.for_tenant(tenant_id).filter(user_id=user_id).update(idle_since=timezone.now())


@transaction.atomic
def presence_sweep() -> list[int]:
    """Agents whose console sockets are all gone past the grace period become offline; returns their user ids.

    What follows (colleagues told, pending offers withdrawn) is routing's business:
    queueing.services.agents_offline_sweep wraps this.
    """
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.PRESENCE_GRACE_SECONDS)
    stale = AgentProfile.objects.exclude(presence=Presence.OFFLINE).filter(open_sockets=0)
    stale = stale.filter(Q(last_heartbeat_at__lt=cutoff) | Q(last_heartbeat_at__isnull=True))
    taken: list[int] = []
    for user_id in list(stale.order_by("pk").values_list("user_id", flat=True)):
        # One conditional update each: an agent whose socket opened since the read above is left alone,
        # so exactly the agents returned went offline.
        if stale.filter(user_id=user_id).update(presence=Presence.OFFLINE, presence_changed_at=now, pause_reason=None):
            taken.append(user_id)
    return taken


def agent_socket_opened(*, user: User) -> None:
    # F() so two tabs opening at once on two processes both count.
    AgentProfile.objects.filter(user=user).update(open_sockets=F("open_sockets") + 1, last_heartbeat_at=timezone.now())


def agent_socket_closed(*, user: User) -> None:
    """One socket fewer; the grace period before presence_sweep takes the agent offline starts now."""
    now = timezone.now()
    AgentProfile.objects.filter(user=user, open_sockets__gt=0).update(
        open_sockets=F("open_sockets") - 1, last_heartbeat_at=now
    )
    AgentProfile.objects.filter(user=user, open_sockets=0).update(last_heartbeat_at=now)


def agent_heartbeat(*, user: User) -> None:
    AgentProfile.objects.filter(user=user).update(last_heartbeat_at=timezone.now())


def agent_sockets_sweep() -> int:
    """Forgets sockets whose process died without closing them, so presence_sweep can do its work."""
    cutoff = timezone.now() - timedelta(seconds=stale_socket_seconds())
    return AgentProfile.objects.filter(open_sockets__gt=0, last_heartbeat_at__lt=cutoff).update(open_sockets=0)
