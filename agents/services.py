"""State changes of agents: profiles and presence, pause reasons, templates and dispositions."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from agents.models import AgentProfile, CannedTemplate, Disposition, PauseReason, Presence
from contactcenter.errors import ApplicationError
from contactcenter.models import Tenant
from contactcenter.services import validated_save

MAX_CHATS_LIMIT = 50


def agent_profile_ensure(*, tenant: Tenant, user: User, max_chats: int | None = None) -> AgentProfile:
    profile, _ = AgentProfile.objects.get_or_create(tenant=tenant, user=user)
    if max_chats is not None:
        agent_profile_update(profile=profile, max_chats=max_chats)
    return profile


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


PLACEHOLDER_RE = re.compile(r"\{([a-z_]+)\}")


def template_render(*, template: CannedTemplate, context: dict[str, str]) -> str:
    """Fills `{visitor_name}`-style placeholders; unknown ones stay as typed (no str.format: no attribute access)."""
    return PLACEHOLDER_RE.sub(lambda m: context[m.group(1)] if m.group(1) in context else m.group(0), template.body)


TEMPLATE_PLACEHOLDERS = ("visitor_name", "visitor_email", "agent_name", "widget_name")


def presence_sweep() -> int:
    """Agents whose console sockets are all gone past the grace period become offline; returns how many."""
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.PRESENCE_GRACE_SECONDS)
    stale = AgentProfile.objects.exclude(presence=Presence.OFFLINE).filter(open_sockets=0)
    stale = stale.filter(Q(last_heartbeat_at__lt=cutoff) | Q(last_heartbeat_at__isnull=True))
    return stale.update(presence=Presence.OFFLINE, presence_changed_at=now, pause_reason=None)
