"""Tenants and their members: creating a tenant, members, invites, role changes and removal.

The lower halves here (tenant_create, membership_create, membership_invite) make no agent profile: agents.services
wraps them (tests/test_architecture.py names who may call them).
"""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.utils.text import slugify

from contactcenter.errors import ApplicationError, Conflict
from contactcenter.models import Membership, Role, Tenant
from contactcenter.realtime import agent_group, publish_on_commit
from contactcenter.services.records import email_normalise


@transaction.atomic
def tenant_create(*, name: str, admin_email: str, admin_password: str | None = None, slug: str = "") -> Membership:
    """A new tenant with its first admin (who may then invite the rest)."""
    name = name.strip()
    if not name:
        raise ApplicationError("invalid", "A tenant needs a name.", {"name": ["This field is required."]})
    slug = slugify(slug or name)[:60] or "tenant"
    if Tenant.objects.filter(slug=slug).exists():
        raise Conflict("slug_taken", f"A tenant with the slug {slug!r} already exists.")
    tenant = Tenant.objects.create(name=name, slug=slug)
    return membership_create(tenant=tenant, email=admin_email, role=Role.ADMIN, password=admin_password, is_staff=False)


@transaction.atomic
def membership_create(
    *,
    tenant: Tenant,
    email: str,
    role: str,
    password: str | None = None,
    first_name: str = "",
    last_name: str = "",
    is_staff: bool = False,
) -> Membership:
    """A user in `tenant` with `role`. Without a password the user is invited.

    Only the core rows: the agent profile every member also needs is an agents model, so callers go
    through agents.services (agent_create, agent_invite, tenant_setup), which wrap this.
    """
    email = email_normalise(email)
    if role not in Role.values:
        raise ApplicationError("invalid", "Unknown role.", {"role": [f"Choose one of {', '.join(Role.values)}."]})
    user_model = get_user_model()
    if user_model.objects.filter(username__iexact=email).exists():
        message = "Someone with this email already has an account."
        raise ApplicationError("email_taken", message, {"email": [message]}, status=409)
    user = user_model.objects.create_user(
        username=email, email=email, password=password, first_name=first_name, last_name=last_name
    )
    if password is None:
        user.set_unusable_password()
    user.is_staff = is_staff
    user.save()
    return Membership.objects.create(tenant=tenant, user=user, role=role)


def invite_link(*, user: User) -> str:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    return settings.SITE_URL + reverse("invite-accept", kwargs={"uidb64": uid, "token": token})


@transaction.atomic
def membership_invite(
    *,
    tenant: Tenant,
    invited_by: User | None,
    email: str,
    role: str,
    first_name: str = "",
    last_name: str = "",
) -> Membership:
    """Creates the teammate without a password and emails a link that lets them set one.

    The answer never tells one tenant's admin whether the address has an account elsewhere (a user belongs to
    one tenant): such an address gets a pending teammate all the same, held by a placeholder user that has no
    password and no sign-in name of its own, and its owner gets a notice instead of a link. Only an address
    already on this tenant's team is refused (`email_taken`): that is the admin's own data.
    """
    email = email_normalise(email)
    if role not in Role.values:
        raise ApplicationError("invalid", "Unknown role.", {"role": [f"Choose one of {', '.join(Role.values)}."]})
    if Membership.objects.filter(tenant=tenant, user__email__iexact=email).exists():
        message = "Someone on your team already has an account with this email."
        raise ApplicationError("email_taken", message, {"email": [message]}, status=409)
    if not get_user_model().objects.filter(username__iexact=email).exists():
        membership = membership_create(
            tenant=tenant, email=email, role=role, first_name=first_name, last_name=last_name
        )
    else:
        membership = _placeholder_membership_create(
            tenant=tenant, email=email, role=role, first_name=first_name, last_name=last_name
        )
    _invite_send_on_commit(membership=membership, invited_by=invited_by)
    return membership


PLACEHOLDER_USERNAME_PREFIX = "pending-invite-"


def _placeholder_membership_create(
    *, tenant: Tenant, email: str, role: str, first_name: str, last_name: str
) -> Membership:
    # The sign-in name is the email for every real account; this one's is unguessable and never typed, so
    # the address keeps signing in to its own account, and no link to choose a password is ever sent for it.
    user = get_user_model().objects.create_user(
        username=PLACEHOLDER_USERNAME_PREFIX + secrets.token_hex(12),
        email=email,
        password=None,
        first_name=first_name,
        last_name=last_name,
    )
    return Membership.objects.create(tenant=tenant, user=user, role=role)


def membership_is_placeholder(membership: Membership) -> bool:
    """Invited with an address that already had an account (in another tenant): can never be accepted."""
    return membership.user.get_username().startswith(PLACEHOLDER_USERNAME_PREFIX)


def _invite_send_on_commit(*, membership: Membership, invited_by: User | None) -> None:
    tenant = membership.tenant
    user = membership.user
    # An API key invites on behalf of nobody in particular.
    inviter = (invited_by.get_full_name() or invited_by.get_username()) if invited_by else "An administrator"
    invited = f"{inviter} invited you to join {tenant.name} on Switchboard as {membership.get_role_display()}."
    if membership_is_placeholder(membership):
        message = (
            f"{invited}\n\nThis address already has a Switchboard account, and an account belongs to one "
            f"contact center, so it cannot join {tenant.name}. To join, ask them to invite another address of "
            f"yours. If you did not expect this, you can ignore this email: nothing changes for your account.\n"
        )
    else:
        message = (
            f"{invited}\n\nChoose your password here (the link works once and expires in "
            f"{settings.PASSWORD_RESET_TIMEOUT // 86400} days):\n{invite_link(user=user)}\n"
        )

    def send() -> None:
        send_mail(
            subject=f"You are invited to {tenant.name} on Switchboard",
            message=message,
            from_email=None,
            recipient_list=[user.email],
        )

    transaction.on_commit(send)


@transaction.atomic
def membership_invite_resend(*, membership: Membership, invited_by: User) -> Membership:
    """Emails a fresh invite link to a teammate who has not chosen a password yet."""
    if not membership_is_pending(membership):
        raise ApplicationError("not_pending", "This teammate has already accepted the invitation.")
    _invite_send_on_commit(membership=membership, invited_by=invited_by)
    return membership


def membership_is_pending(membership: Membership) -> bool:
    """Invited and never set a password."""
    return not membership.user.has_usable_password()


@transaction.atomic
def membership_update(*, membership: Membership, acting: Membership | None = None, **fields: Any) -> Membership:
    role = fields.get("role")
    if role is not None:
        if role not in Role.values:
            raise ApplicationError("invalid", "Unknown role.", {"role": [f"Choose one of {', '.join(Role.values)}."]})
        if membership.role == Role.ADMIN and role != Role.ADMIN and _last_admin(membership):
            raise ApplicationError(
                "last_admin",
                "A tenant keeps at least one admin.",
                {"role": ["The tenant's last admin stays an admin."]},
            )
        if role != membership.role:
            _membership_changed_on_commit(membership)
        membership.role = role
    user = membership.user
    for name in ("first_name", "last_name"):
        if name in fields:
            setattr(user, name, (fields[name] or "").strip())
    user.save()
    membership.save()
    return membership


def _last_admin(membership: Membership) -> bool:
    return (
        not Membership.objects.for_tenant(membership.tenant).filter(role=Role.ADMIN).exclude(pk=membership.pk).exists()
    )


@transaction.atomic
def membership_remove(*, membership: Membership) -> None:
    if membership.role == Role.ADMIN and _last_admin(membership):
        raise ApplicationError("last_admin", "A tenant keeps at least one admin.")
    user = membership.user
    user.is_active = False
    user.save(update_fields=["is_active"])
    _membership_changed_on_commit(membership)
    membership.delete()


def _membership_changed_on_commit(membership: Membership) -> None:
    """Tells the member's open console sockets that their access changed (role, removal, deactivation).

    A socket holds its actor for its whole life: on this event it re-reads it and closes (docs/protocol.md
    §1), so a removed or demoted teammate cannot go on working through a socket opened before.
    """
    publish_on_commit(
        group=agent_group(membership.tenant_id, membership.user_id),
        event={"type": "membership.changed", "user_id": membership.user_id},
    )
