"""Contacts and their identities (email, E.164 phone, WhatsApp, web visitor id), normalised on the way in."""

from __future__ import annotations

import phonenumbers
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError
from django.utils import timezone

from contactcenter.errors import ApplicationError, Conflict
from contactcenter.models import Contact, ContactIdentity, IdentityKind, Tenant
from contactcenter.services.records import email_normalise

EXTERNAL_ID_MAX_CHARS = 200


def identity_normalise(*, kind: str, value: str, default_region: str | None = None) -> str:
    """The canonical form of an address: lower-case email, E.164 phone number, trimmed visitor or user id."""
    value = (value or "").strip()
    if kind == IdentityKind.EMAIL:
        return email_normalise(value, field="value")
    if kind in (IdentityKind.PHONE, IdentityKind.WHATSAPP):
        message = "Enter the number in international format, with + and the country code (e.g. +44 20 7946 0958)."
        try:
            number = phonenumbers.parse(value, default_region)
        except phonenumbers.NumberParseException as exc:
            raise ApplicationError("invalid_phone", message, {"value": [message]}) from exc
        if not phonenumbers.is_valid_number(number):
            # Well formed but not a number in use (a reserved range such as +44 7700 900…): say that, not "format".
            unused = "This is not a phone number in use in its country: check the digits and the country code."
            if not phonenumbers.is_possible_number(number):
                unused = message
            raise ApplicationError("invalid_phone", unused, {"value": [unused]})
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if kind == IdentityKind.WEB:
        if not value or len(value) > 64:
            raise ApplicationError("invalid", "A visitor id is 1 to 64 characters.", {"value": ["Invalid visitor id."]})
        return value
    if kind == IdentityKind.EXTERNAL:
        if not value or len(value) > EXTERNAL_ID_MAX_CHARS:
            message = f"A user id is 1 to {EXTERNAL_ID_MAX_CHARS} characters."
            raise ApplicationError("invalid", message, {"value": [message]})
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


@transaction.atomic
def contact_identity_opt_out(*, identity: ContactIdentity, opted_out: bool) -> bool:
    """Records that the customer asked for nothing more at this address (or asked again to be reached);
    True when it changed."""
    if opted_out == (identity.opted_out_at is not None):
        return False
    identity.opted_out_at = timezone.now() if opted_out else None
    identity.save(update_fields=["opted_out_at"])
    return True
