"""State changes of agents: profiles and presence, pause reasons, templates and dispositions."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import F, ProtectedError, Q
from django.utils import timezone

from agents.models import AgentProfile, CannedTemplate, Disposition, PauseReason, Presence
from contactcenter.errors import ApplicationError
from contactcenter.models import Membership, Tenant
from contactcenter.services import (
    membership_create,
    membership_invite,
    membership_update,
    tenant_create,
    validated_save,
)

MAX_CHATS_LIMIT = 50


def agent_profile_ensure(*, tenant: Tenant, user: User, max_chats: int | None = None) -> AgentProfile:
    profile, _ = AgentProfile.objects.get_or_create(tenant=tenant, user=user)
    if max_chats is not None:
        agent_profile_update(profile=profile, max_chats=max_chats)
    return profile


# A member of any role may take chats, so every membership comes with an agent profile: the functions below
# wrap the core's membership services (contactcenter sits below agents and knows nothing of profiles).


@transaction.atomic
def agent_create(
    *,
    tenant: Tenant,
    email: str,
    role: str,
    password: str | None = None,
    first_name: str = "",
    last_name: str = "",
    max_chats: int | None = None,
    is_staff: bool = False,
) -> Membership:
    """A teammate with their agent profile; without a password the user has to be invited to sign in."""
    membership = membership_create(
        tenant=tenant,
        email=email,
        role=role,
        password=password,
        first_name=first_name,
        last_name=last_name,
        is_staff=is_staff,
    )
    agent_profile_ensure(tenant=tenant, user=membership.user, max_chats=max_chats)
    return membership


@transaction.atomic
def agent_invite(
    *,
    tenant: Tenant,
    invited_by: User | None,
    email: str,
    role: str,
    first_name: str = "",
    last_name: str = "",
    max_chats: int | None = None,
) -> Membership:
    """A teammate with their agent profile, emailed a link to choose a password (sent once this commits)."""
    membership = membership_invite(
        tenant=tenant, invited_by=invited_by, email=email, role=role, first_name=first_name, last_name=last_name
    )
    agent_profile_ensure(tenant=tenant, user=membership.user, max_chats=max_chats)
    return membership


@transaction.atomic
def tenant_setup(*, name: str, admin_email: str, admin_password: str | None = None, slug: str = "") -> Membership:
    """A new tenant and its first admin, with the admin's agent profile (the console needs one)."""
    membership = tenant_create(name=name, admin_email=admin_email, admin_password=admin_password, slug=slug)
    agent_profile_ensure(tenant=membership.tenant, user=membership.user)
    return membership


@transaction.atomic
def agent_profile_update(*, profile: AgentProfile, max_chats: int | None = None) -> AgentProfile:
    if max_chats is not None:
        if not 1 <= int(max_chats) <= MAX_CHATS_LIMIT:
            message = f"Between 1 and {MAX_CHATS_LIMIT}."
            raise ApplicationError("invalid", message, {"max_chats": [message]})
        profile.max_chats = int(max_chats)
    profile.save()
    return profile


@transaction.atomic
def pause_reason_save(*, tenant: Tenant, instance: PauseReason | None = None, **fields: Any) -> PauseReason:
    return validated_save(instance or PauseReason(tenant=tenant), **fields)


@transaction.atomic
def template_save(*, tenant: Tenant, instance: CannedTemplate | None = None, **fields: Any) -> CannedTemplate:
    return validated_save(instance or CannedTemplate(tenant=tenant), **fields)


@transaction.atomic
def disposition_save(*, tenant: Tenant, instance: Disposition | None = None, **fields: Any) -> Disposition:
    return validated_save(instance or Disposition(tenant=tenant), **fields)


def _delete_unless_protected(instance: Any, in_use_message: str) -> None:
    try:
        with transaction.atomic():
            instance.delete()
    except ProtectedError as exc:
        raise ApplicationError("in_use", in_use_message, status=409) from exc


def pause_reason_delete(*, pause_reason: PauseReason) -> None:
    """Agents paused for this reason stay paused, without a reason."""
    _delete_unless_protected(pause_reason, "This pause reason is in use.")


def template_delete(*, template: CannedTemplate) -> None:
    _delete_unless_protected(template, "This template is in use.")


def disposition_delete(*, disposition: Disposition) -> None:
    """Refused once a conversation was closed with it: deactivate it instead, so reports keep their outcome."""
    _delete_unless_protected(
        disposition, "Conversations were closed with this disposition: make it inactive instead of deleting it."
    )


@transaction.atomic
def agent_update(
    *,
    membership: Membership,
    acting: Membership | None = None,
    role: str | None = None,
    first_name: str | None = None,
    last_name: str | None = None,
    max_chats: int | None = None,
) -> Membership:
    """A teammate's role, name and chat cap, changed together (all or nothing)."""
    fields: dict[str, Any] = {}
    if role is not None:
        fields["role"] = role
    if first_name is not None:
        fields["first_name"] = first_name
    if last_name is not None:
        fields["last_name"] = last_name
    membership = membership_update(membership=membership, acting=acting, **fields)
    if max_chats is not None:
        agent_profile_update(
            profile=agent_profile_ensure(tenant=membership.tenant, user=membership.user), max_chats=max_chats
        )
    return membership


PLACEHOLDER_RE = re.compile(r"\{([a-z_]+)\}")


def template_render(*, template: CannedTemplate, context: dict[str, str]) -> str:
    """Fills `{visitor_name}`-style placeholders; unknown ones stay as typed (no str.format: no attribute access)."""
    return PLACEHOLDER_RE.sub(lambda m: context[m.group(1)] if m.group(1) in context else m.group(0), template.body)


TEMPLATE_PLACEHOLDERS = ("visitor_name", "visitor_email", "agent_name", "widget_name")


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


# --- live presence: console sockets, heartbeats and the presence an agent picks (docs/protocol.md) --------

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
