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

from agents.models import AgentProfile, Presence
from contactcenter.errors import ApplicationError

SETTABLE_PRESENCE = (Presence.ONLINE, Presence.AWAY, Presence.OFFLINE)


def stale_socket_seconds() -> int:
    """A socket without a heartbeat this long is presumed gone (its server process died without a close)."""
    return settings.AGENT_SOCKET_STALE_SECONDS


@transaction.atomic
def presence_set(*, user: User, presence: str) -> tuple[AgentProfile, bool]:
    """Sets the presence the agent chose; returns the profile and whether it changed."""
    if presence not in SETTABLE_PRESENCE:
        choices = ", ".join(str(p) for p in SETTABLE_PRESENCE)
        raise ApplicationError("invalid", f"Presence is one of {choices}.", {"presence": [f"One of {choices}."]})
    profile = AgentProfile.objects.select_for_update().get(user=user)
    changed = profile.presence != presence
    if changed:
        profile.presence = presence
        profile.presence_changed_at = timezone.now()
        profile.pause_reason = None
        profile.save(update_fields=["presence", "presence_changed_at", "pause_reason"])
    return profile, changed


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
