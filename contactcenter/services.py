"""State changes of the tenancy core: tenants, members, invites, API keys, contacts and identities."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

import phonenumbers
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.utils.text import capfirst, slugify

from contactcenter.errors import ApplicationError, Conflict
from contactcenter.models import ApiKey, Contact, ContactIdentity, IdentityKind, Membership, Role, Tenant
from contactcenter.realtime import agent_group, publish_on_commit

API_KEY_PREFIX = "sb_"


# --- tenants and members ----------------------------------------------------------------------------


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


def _normalise_email(email: str, field: str = "email") -> str:
    email = (email or "").strip().lower()
    try:
        validate_email(email)
    except ValidationError as exc:
        raise ApplicationError(
            "invalid", "Enter a valid email address.", {field: ["Enter a valid email address."]}
        ) from exc
    return email


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
    email = _normalise_email(email)
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
    email = _normalise_email(email)
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


# --- API keys -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    plaintext: str  # shown once, never stored


def _hash_secret(secret: str) -> str:
    # The secret is 256 random bits, so a fast hash is as strong as a slow one here.
    return hashlib.sha256(secret.encode()).hexdigest()


@transaction.atomic
def apikey_create(*, tenant: Tenant, name: str, created_by: User | None = None) -> IssuedKey:
    name = name.strip()
    if not name:
        raise ApplicationError("invalid", "Name the key.", {"name": ["This field is required."]})
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    key = ApiKey.objects.create(
        tenant=tenant, name=name, prefix=prefix, secret_hash=_hash_secret(secret), created_by=created_by
    )
    return IssuedKey(key=key, plaintext=f"{API_KEY_PREFIX}{prefix}_{secret}")


def apikey_revoke(*, key: ApiKey) -> ApiKey:
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    return key


def apikey_authenticate(*, plaintext: str) -> ApiKey | None:
    """The active key this plaintext belongs to, or None; records the time of use (at most once a minute)."""
    if not plaintext.startswith(API_KEY_PREFIX):
        return None
    prefix, _, secret = plaintext[len(API_KEY_PREFIX) :].partition("_")
    if not prefix or not secret:
        return None
    key = ApiKey.objects.select_related("tenant").filter(prefix=prefix, revoked_at__isnull=True).first()
    if key is None or not hmac.compare_digest(key.secret_hash, _hash_secret(secret)):
        return None
    now = timezone.now()
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key


@transaction.atomic
def apikey_rotate_demo(*, tenant: Tenant, name: str = "demo") -> IssuedKey:
    """Revokes the tenant's previous keys of that name and issues a fresh one."""
    ApiKey.objects.for_tenant(tenant).filter(name=name, revoked_at__isnull=True).update(revoked_at=timezone.now())
    return apikey_create(tenant=tenant, name=name)


# --- contacts and identities ---------------------------------------------------------------------------


def identity_normalise(*, kind: str, value: str, default_region: str | None = None) -> str:
    """The canonical form of an address: lower-case email, E.164 phone number, trimmed visitor id."""
    value = (value or "").strip()
    if kind == IdentityKind.EMAIL:
        return _normalise_email(value, field="value")
    if kind in (IdentityKind.PHONE, IdentityKind.WHATSAPP):
        message = "Enter the number in international format, with + and the country code (e.g. +44 20 7946 0958)."
        try:
            number = phonenumbers.parse(value, default_region)
        except phonenumbers.NumberParseException as exc:
            raise ApplicationError("invalid_phone", message, {"value": [message]}) from exc
        if not phonenumbers.is_valid_number(number):
            raise ApplicationError("invalid_phone", message, {"value": [message]})
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if kind == IdentityKind.WEB:
        if not value or len(value) > 64:
            raise ApplicationError("invalid", "A visitor id is 1 to 64 characters.", {"value": ["Invalid visitor id."]})
        return value
    raise ApplicationError(
        "invalid", "Unknown identity kind.", {"kind": [f"Choose one of {', '.join(IdentityKind.values)}."]}
    )


@transaction.atomic
def contact_create(*, tenant: Tenant, name: str = "") -> Contact:
    return Contact.objects.create(tenant=tenant, name=(name or "").strip()[:200])


@transaction.atomic
def contact_update(*, contact: Contact, name: str) -> Contact:
    contact.name = (name or "").strip()[:200]
    contact.save(update_fields=["name", "updated_at"])
    return contact


def contact_delete(*, contact: Contact) -> None:
    """Refused while conversations belong to the contact: their history keeps its contact."""
    try:
        with transaction.atomic():
            contact.delete()
    except ProtectedError as exc:
        raise ApplicationError(
            "in_use", "This contact has conversations: it stays for their history.", status=409
        ) from exc


@transaction.atomic
def contact_identity_add(
    *, contact: Contact, kind: str, value: str, verified: bool = False, default_region: str | None = None
) -> ContactIdentity:
    """Adds an address to a contact; a verified address may belong to one contact of the tenant only."""
    value = identity_normalise(kind=kind, value=value, default_region=default_region)
    existing = (
        ContactIdentity.objects.for_tenant(contact.tenant).filter(contact=contact, kind=kind, value=value).first()
    )
    if existing is not None:
        if verified and not existing.verified:
            return contact_identity_verify(identity=existing)
        return existing
    if (
        verified
        and ContactIdentity.objects.for_tenant(contact.tenant).filter(kind=kind, value=value, verified=True).exists()
    ):
        raise Conflict("identity_taken", "This verified address belongs to another contact.")
    try:
        with transaction.atomic():
            return ContactIdentity.objects.create(
                tenant=contact.tenant, contact=contact, kind=kind, value=value, verified=verified
            )
    except IntegrityError as exc:
        raise Conflict("identity_taken", "This verified address belongs to another contact.") from exc


@transaction.atomic
def contact_identity_verify(*, identity: ContactIdentity) -> ContactIdentity:
    if (
        ContactIdentity.objects.for_tenant(identity.tenant)
        .filter(kind=identity.kind, value=identity.value, verified=True)
        .exclude(pk=identity.pk)
        .exists()
    ):
        raise Conflict("identity_taken", "This verified address belongs to another contact.")
    identity.verified = True
    identity.save(update_fields=["verified"])
    return identity


def contact_identity_remove(*, identity: ContactIdentity) -> None:
    identity.delete()


# --- plain records ----------------------------------------------------------------------------------


def validated_save(instance: Any, **fields: Any) -> Any:
    """Sets `fields`, validates the row (field rules and unique constraints) and saves it.

    A ValidationError becomes one ApplicationError that names every field at fault, so the API and the
    settings pages show the same messages next to the same fields.
    """
    for name, value in fields.items():
        setattr(instance, name, value)
    try:
        instance.full_clean()
    except ValidationError as exc:
        errors = _validation_errors(instance, exc)
        first = next(iter(errors.values()))[0] if errors else "Invalid input."
        raise ApplicationError("invalid", first, errors) from exc
    instance.save()
    return instance


def _validation_errors(instance: Any, exc: ValidationError) -> dict[str, list[str]]:
    """Field → messages; a clash on a `(tenant, field)` unique constraint is reported on that field.

    Django reports those as a non-field error naming the tenant ("… with this Tenant and Name already
    exists"), which neither a form nor an API client can place next to the field the user typed.
    """
    if not hasattr(exc, "error_dict"):
        return {NON_FIELD_ERRORS: [str(m) for m in exc.messages]}
    errors: dict[str, list[str]] = {}
    for field, error_list in exc.error_dict.items():
        for error in error_list:
            target, message = field, " ".join(str(m) for m in error.messages)
            unique_check = (error.params or {}).get("unique_check") if error.code == "unique_together" else None
            named = [name for name in unique_check or () if name != "tenant"]
            if field == NON_FIELD_ERRORS and unique_check and "tenant" in unique_check and len(named) == 1:
                target = named[0]
                label = instance._meta.get_field(target).verbose_name
                message = f"{capfirst(instance._meta.verbose_name)} with this {label} already exists."
            errors.setdefault(target, []).append(message)
    return errors
