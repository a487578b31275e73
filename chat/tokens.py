"""Signed visitor tokens (tenant + widget + visitor id) and signed, expiring attachment URLs for visitors."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.conf import settings
from django.core import signing

VISITOR_TOKEN_SALT = "switchboard.chat.visitor-token"
ATTACHMENT_URL_SALT = "switchboard.chat.attachment-url"


@dataclass(frozen=True)
class VisitorToken:
    tenant_id: int
    widget_id: int
    visitor_id: str


def new_visitor_id() -> str:
    return secrets.token_urlsafe(16)


def visitor_token_issue(*, tenant_id: int, widget_id: int, visitor_id: str) -> str:
    return signing.dumps({"t": tenant_id, "w": widget_id, "v": visitor_id}, salt=VISITOR_TOKEN_SALT, compress=True)


def visitor_token_read(token: str | None) -> VisitorToken | None:
    """The token's claims, or None when it is missing, tampered with, expired or malformed."""
    if not token or len(token) > 1000:
        return None
    try:
        data = signing.loads(token, salt=VISITOR_TOKEN_SALT, max_age=settings.VISITOR_TOKEN_MAX_AGE)
    except signing.BadSignature:  # SignatureExpired is a BadSignature
        return None
    if not isinstance(data, dict):
        return None
    tenant_id, widget_id, visitor_id = data.get("t"), data.get("w"), data.get("v")
    if not isinstance(tenant_id, int) or not isinstance(widget_id, int) or not isinstance(visitor_id, str):
        return None
    if not visitor_id or len(visitor_id) > 64:
        return None
    return VisitorToken(tenant_id=tenant_id, widget_id=widget_id, visitor_id=visitor_id)


def attachment_signature(*, attachment_id: int, visitor_id: str) -> str:
    return signing.dumps({"a": attachment_id, "v": visitor_id}, salt=ATTACHMENT_URL_SALT)


def attachment_signature_read(signature: str | None) -> tuple[int, str] | None:
    """(attachment id, visitor id) from a signature that is genuine and younger than the URL lifetime."""
    if not signature or len(signature) > 500:
        return None
    try:
        data = signing.loads(signature, salt=ATTACHMENT_URL_SALT, max_age=settings.ATTACHMENT_URL_MAX_AGE)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("a"), int) or not isinstance(data.get("v"), str):
        return None
    return data["a"], data["v"]


def visitor_attachment_url(*, attachment_id: int, visitor_id: str) -> str:
    signature = attachment_signature(attachment_id=attachment_id, visitor_id=visitor_id)
    return f"/widget/api/attachments/{int(attachment_id)}/?sig={signature}"


def agent_attachment_url(*, attachment_id: int) -> str:
    return f"/console/api/attachments/{int(attachment_id)}/"
