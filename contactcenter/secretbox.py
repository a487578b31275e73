"""Secrets at rest: provider credentials a tenant gives us (a Twilio auth token, an ESP's API key) are kept
sealed with Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) and opened only to talk to the provider.

Keys come from the environment: `SECRETS_KEYS`, comma-separated Fernet keys, the newest first. The newest
seals; every listed key opens (MultiFernet). Rotation: put a new key in front, restart, run
`manage.py secrets_reseal` (each stored secret is sealed again with the new key), then drop the old key.
Unset, one key is derived from SECRET_KEY, which ties the two together; `check --deploy` warns about it.

A sealed value is text (Fernet tokens are URL-safe base64), never shown back on a page or in the API: forms
and serializers only ever write it, and say whether one is set.
"""

from __future__ import annotations

import base64
import functools
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured


class SecretUnreadable(Exception):
    """A stored secret none of the configured keys opens (a key was dropped before resealing)."""


def derived_key(secret_key: str) -> bytes:
    """The Fernet key used when SECRETS_KEYS is unset: a hash of SECRET_KEY, for this purpose only."""
    digest = hashlib.sha256(b"switchboard secrets at rest\x00" + secret_key.encode()).digest()
    return base64.urlsafe_b64encode(digest)


@functools.cache
def _box() -> MultiFernet:
    keys: list[str | bytes] = [key.strip() for key in settings.SECRETS_KEYS if key.strip()]
    keys = keys or [derived_key(settings.SECRET_KEY)]
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except (ValueError, TypeError) as exc:  # not 32 url-safe base64-encoded bytes
        raise ImproperlyConfigured(
            "SECRETS_KEYS holds a value that is not a Fernet key; make one with "
            "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`."
        ) from exc


def keys_changed() -> None:
    """Forgets the keys read from settings (tests that change SECRETS_KEYS)."""
    _box.cache_clear()


def seal(plaintext: str) -> str:
    return _box().encrypt(plaintext.encode()).decode("ascii")


def unseal(sealed: str) -> str:
    try:
        return _box().decrypt(sealed.encode("ascii")).decode()
    except InvalidToken as exc:
        raise SecretUnreadable("no configured key opens this secret (see SECRETS_KEYS)") from exc


def reseal(sealed: str) -> str:
    """The same secret sealed with the newest key (rotation)."""
    try:
        return _box().rotate(sealed.encode("ascii")).decode("ascii")
    except InvalidToken as exc:
        raise SecretUnreadable("no configured key opens this secret (see SECRETS_KEYS)") from exc


def keys_check(app_configs: object = None, **kwargs: object) -> list[checks.CheckMessage]:
    """`check --deploy`: secrets sealed with a key derived from SECRET_KEY are lost when SECRET_KEY rotates."""
    if any(key.strip() for key in settings.SECRETS_KEYS):
        return []
    return [
        checks.Warning(
            "SECRETS_KEYS is unset: provider credentials are sealed with a key derived from SECRET_KEY, so "
            "changing SECRET_KEY makes them unreadable.",
            hint="Set SECRETS_KEYS to a Fernet key of its own (see contactcenter/secretbox.py).",
            id="switchboard.W001",
        )
    ]
