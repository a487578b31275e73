"""Plain records: saving one through the model's own validation (its errors in the one error shape), and an
email address as stored."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.validators import validate_email
from django.utils.text import capfirst

from contactcenter.errors import ApplicationError


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


def email_normalise(email: str, field: str = "email") -> str:
    """An email address as stored: trimmed, lower case, valid (else the error names `field`)."""
    email = (email or "").strip().lower()
    try:
        validate_email(email)
    except ValidationError as exc:
        raise ApplicationError(
            "invalid", "Enter a valid email address.", {field: ["Enter a valid email address."]}
        ) from exc
    return email
