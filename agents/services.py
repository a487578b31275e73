"""State changes of agents: profiles and presence, pause reasons, templates and dispositions."""

from __future__ import annotations

import re
from dataclasses import dataclass
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
from contactcenter.realtime import publish_on_commit, tenant_agents_group
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
    """Creates or changes a canned template; unknown placeholders are refused; open consoles are told."""
    if "body" in fields:
        template_placeholders_check(str(fields["body"]))
    template = validated_save(instance or CannedTemplate(tenant=tenant), **fields)
    publish_on_commit(
        group=tenant_agents_group(template.tenant_id),
        event={"type": "template.updated", "template": template_data(template)},
    )
    return template


def template_data(template: CannedTemplate) -> dict[str, Any]:
    """A template as the console gets it (`hello.templates`, `template.updated`)."""
    return {"id": template.pk, "name": template.name, "body": template.body}


@transaction.atomic
def disposition_save(*, tenant: Tenant, instance: Disposition | None = None, **fields: Any) -> Disposition:
    disposition = validated_save(instance or Disposition(tenant=tenant), **fields)
    _dispositions_publish(disposition.tenant_id)
    return disposition


def active_disposition_list(*, tenant_id: int) -> list[dict[str, Any]]:
    """The outcomes an agent may pick, in the agent's order (`hello.dispositions`, `dispositions.updated`)."""
    return list(Disposition.objects.for_tenant(tenant_id).filter(is_active=True).values("id", "name"))


def _dispositions_publish(tenant_id: int) -> None:
    """Tells open consoles the whole active list, read once this commits.

    Read after the commit, not in the transaction: two admins saving at once each send a list that holds
    both changes. The list is small (names and ids), so every event carries the full state, as hello does.
    """
    transaction.on_commit(
        lambda: publish_on_commit(
            group=tenant_agents_group(tenant_id),
            event={"type": "dispositions.updated", "dispositions": active_disposition_list(tenant_id=tenant_id)},
        )
    )


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
    template_id, tenant_id = template.pk, template.tenant_id
    _delete_unless_protected(template, "This template is in use.")
    publish_on_commit(
        group=tenant_agents_group(tenant_id), event={"type": "template.deleted", "template_id": template_id}
    )


def disposition_delete(*, disposition: Disposition) -> None:
    """Refused once a conversation was closed with it: deactivate it instead, so reports keep their outcome."""
    tenant_id = disposition.tenant_id
    _delete_unless_protected(
        disposition, "Conversations were closed with this disposition: make it inactive instead of deleting it."
    )
    _dispositions_publish(tenant_id)


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


# --- template placeholders --------------------------------------------------------------------------
#
# `{visitor_email}` is filled in when an agent inserts the template; `{visitor_name|there}` declares the
# text used when the chat has no value for it. Anything in braces that looks like a name counts as a
# placeholder (`{Visitor_Name}`, `{ visitor_name }`, `{visitor.name}`), so a typo is refused when the
# template is saved instead of reaching a customer as typed. static/console/console.js fills them by the
# same rules (its PLACEHOLDER pattern and renderTemplate); tests/agents/test_templates.py pins both.

TEMPLATE_PLACEHOLDERS = ("visitor_name", "visitor_email", "agent_name", "widget_name")
PLACEHOLDER_RE = re.compile(r"\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*(?:\|([^{}|\n]*))?\}")
FALLBACK_MAX_CHARS = 100


def _placeholder_list() -> str:
    return ", ".join("{" + name + "}" for name in TEMPLATE_PLACEHOLDERS)


def template_placeholders_check(body: str) -> None:
    """Refuses a body with an unknown placeholder (or an overlong fallback), naming the ones there are."""
    unknown: list[str] = []
    for match in PLACEHOLDER_RE.finditer(body):
        name, fallback = match.group(1), match.group(2)
        exact = "{" + name + ("" if fallback is None else "|" + fallback) + "}"
        if (name not in TEMPLATE_PLACEHOLDERS or match.group(0) != exact) and match.group(0) not in unknown:
            unknown.append(match.group(0))
        elif match.group(2) is not None and len(match.group(2)) > FALLBACK_MAX_CHARS:
            message = f"A fallback ({match.group(0)[:40]}…) is at most {FALLBACK_MAX_CHARS} characters."
            raise ApplicationError("invalid", message, {"body": [message]})
    if unknown:
        which = ", ".join(unknown)
        noun = "placeholder" if len(unknown) == 1 else "placeholders"
        message = (
            f"Unknown {noun} {which}. You can use {_placeholder_list()}; "
            "add a fallback for a value a chat may lack: {visitor_name|there}."
        )
        raise ApplicationError("invalid", message, {"body": [message]})


@dataclass(frozen=True)
class RenderedTemplate:
    text: str
    # Placeholders with no value and no fallback: left in `text` as typed, for the agent to fill in.
    missing: tuple[str, ...]


def template_render(*, body: str, context: dict[str, str]) -> RenderedTemplate:
    """Fills placeholders from `context` (no str.format: no attribute access).

    An empty value takes the placeholder's fallback; without one the placeholder stays as typed and is
    reported in `missing`, never silently dropped ("follow up at  within one business day").
    """
    missing: list[str] = []

    def fill(match: re.Match[str]) -> str:
        value = (context.get(match.group(1)) or "").strip()
        if value:
            return value
        if match.group(2) is not None:
            return match.group(2).strip()
        if match.group(0) not in missing:
            missing.append(match.group(0))
        return match.group(0)

    return RenderedTemplate(text=PLACEHOLDER_RE.sub(fill, body), missing=tuple(missing))


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
