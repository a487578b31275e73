"""Widget configuration: allowed origins, the pre-chat survey's fields, business hours and display rules (checked
by chat.services.hours), saving and deleting."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.db import transaction

from chat.models import (
    Conversation,
    ConversationStatus,
    SurveyFieldKind,
    Widget,
)
from chat.services.hours import widget_hours_clean
from contactcenter.errors import ApplicationError
from contactcenter.models import Tenant
from contactcenter.services import (
    validated_save,
)


def origin_normalise(raw: str) -> str:
    """`https://shop.example.com:8443` form; refuses paths, wildcards and anything but http(s)."""
    raw = (raw or "").strip().rstrip("/")
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query or parts.fragment:
        raise ValueError(raw)
    if "*" in raw or parts.username or parts.password:
        raise ValueError(raw)
    host = parts.hostname.lower()
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


def _clean_origins(origins: Any) -> list[str]:
    if isinstance(origins, str):
        origins = [line for line in origins.replace(",", "\n").splitlines() if line.strip()]
    cleaned: list[str] = []
    bad: list[str] = []
    for origin in origins or []:
        try:
            normal = origin_normalise(str(origin))
        except ValueError:
            bad.append(str(origin))
            continue
        if normal not in cleaned:
            cleaned.append(normal)
    if bad:
        message = f"Not an origin (scheme://host[:port], no path): {', '.join(bad)}"
        raise ApplicationError("invalid", message, {"allowed_origins": [message]})
    return cleaned


SURVEY_KEY_MAX = 40


def _clean_survey_fields(fields: Any) -> list[dict[str, Any]]:
    if not isinstance(fields, list):
        raise ApplicationError("invalid", "Survey fields are a list.", {"survey_fields": ["Expected a list."]})
    cleaned: list[dict[str, Any]] = []
    keys: set[str] = set()
    errors: list[str] = []
    for index, field in enumerate(fields, start=1):
        if not isinstance(field, dict):
            errors.append(f"Field {index}: expected an object.")
            continue
        key = str(field.get("key", "")).strip()
        label = str(field.get("label", "")).strip()
        kind = str(field.get("kind", SurveyFieldKind.TEXT))
        if not key.isidentifier() or len(key) > SURVEY_KEY_MAX:
            errors.append(f"Field {index}: the key must be letters, digits and _ (at most {SURVEY_KEY_MAX}).")
        elif key in keys:
            errors.append(f"Field {index}: the key {key!r} is used twice.")
        if not label:
            errors.append(f"Field {index}: a label is required.")
        if kind not in SurveyFieldKind.values:
            errors.append(f"Field {index}: kind must be one of {', '.join(SurveyFieldKind.values)}.")
        keys.add(key)
        cleaned.append({"key": key, "label": label[:80], "kind": kind, "required": bool(field.get("required"))})
    if errors:
        raise ApplicationError("invalid", errors[0], {"survey_fields": errors})
    return cleaned


@transaction.atomic
def widget_save(*, tenant: Tenant, instance: Widget | None = None, **fields: Any) -> Widget:
    if "allowed_origins" in fields:
        fields["allowed_origins"] = _clean_origins(fields["allowed_origins"])
    if "survey_fields" in fields:
        fields["survey_fields"] = _clean_survey_fields(fields["survey_fields"])
    if "allowed_file_types" in fields:
        types = fields["allowed_file_types"]
        if isinstance(types, str):
            types = [t.strip() for t in types.replace(",", "\n").splitlines() if t.strip()]
        blocked = [t for t in types if t in {"text/html", "image/svg+xml", "application/xhtml+xml"}]
        if blocked:
            message = f"Never allowed (they can carry scripts): {', '.join(blocked)}"
            raise ApplicationError("invalid", message, {"allowed_file_types": [message]})
        fields["allowed_file_types"] = list(dict.fromkeys(types))
    widget_hours_clean(fields, instance=instance)
    return validated_save(instance or Widget(tenant=tenant), **fields)


@transaction.atomic
def widget_delete(*, widget: Widget) -> None:
    """Deletes a widget; refused while it has conversations waiting or open.

    Its queue route goes with it (the route's foreign key cascades), and past conversations stay
    without a widget.
    """
    live = Conversation.objects.for_tenant(widget.tenant).filter(
        widget=widget, status__in=[ConversationStatus.WAITING, ConversationStatus.OPEN]
    )
    if live.exists():
        raise ApplicationError(
            "widget_in_use", "This widget has conversations waiting or open: close them first.", status=409
        )
    widget.delete()
