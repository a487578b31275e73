"""API keys: issued once in plain text, kept as a SHA-256 digest of a 256-bit secret, checked in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from contactcenter.errors import ApplicationError
from contactcenter.models import ApiKey, Tenant

API_KEY_PREFIX = "sb_"


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
