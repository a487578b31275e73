"""The team: tenants' members and their agent profiles.

A member of any role may take chats, so every membership comes with an agent profile: these functions wrap
the core's membership services (contactcenter sits below agents and knows nothing of profiles); the core's
lower halves are called from here only (tests/test_architecture.py).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from agents.models import AgentProfile
from contactcenter.errors import ApplicationError
from contactcenter.models import Membership, Tenant
from contactcenter.services import membership_update
from contactcenter.services.team import membership_create, membership_invite, tenant_create

MAX_CHATS_LIMIT = 50


def agent_profile_ensure(*, tenant: Tenant, user: User, max_chats: int | None = None) -> AgentProfile:
    profile, _ = AgentProfile.objects.get_or_create(tenant=tenant, user=user)
    if max_chats is not None:
        agent_profile_update(profile=profile, max_chats=max_chats)
    return profile


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
