"""Idempotency-Key for API POSTs: the first request under a key runs, a retry gets its stored answer.

Like Stripe's keys and the IETF draft `Idempotency-Key` header: keyed by (tenant, principal, key), where the
principal is the API key or console user that sent it, so two integrators never share a key space. The
request's method, path and body are hashed: the same key with another request is 422
`idempotency_key_reused`; a retry while the first still runs is 409 `idempotency_in_progress`. What reached
the handler is stored (2xx and 4xx alike); a 5xx (or a crash) frees the key, so a retry runs again. Bodies
are sealed at rest: some carry a secret shown once (a new API key, a webhook signing secret).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.utils import timezone

from contactcenter.errors import ApplicationError, Conflict
from contactcenter.models import IdempotencyKey, Tenant
from contactcenter.secretbox import seal, unseal

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_LENGTH = 255


@dataclass(frozen=True)
class Claimed:
    """This request owns the key: run it, then `idempotency_finish` (or `idempotency_release` on a 5xx)."""

    record_id: int
    claimed_at: datetime


@dataclass(frozen=True)
class Stored:
    """The first request's answer, to send again."""

    status_code: int
    body: Any


def idempotency_key_check(key: str) -> str:
    """The key as sent, or 400 on the header: 1 to 255 visible ASCII characters (a UUID fits)."""
    if not 1 <= len(key) <= MAX_LENGTH or not all(" " < ch <= "~" for ch in key):
        message = f"An Idempotency-Key is 1 to {MAX_LENGTH} visible ASCII characters (a UUID, say)."
        raise ApplicationError("invalid", message, {HEADER: [message]})
    return key


def request_hash(*, method: str, path: str, body: Any) -> str:
    """A stable digest of what was asked: the parsed body, so key order and whitespace do not matter."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder, default=str)
    return hashlib.sha256(f"{method}\n{path}\n{canonical}".encode()).hexdigest()


def _stale(row: IdempotencyKey, now: datetime) -> bool:
    if row.created_at <= now - timedelta(seconds=settings.IDEMPOTENCY_KEY_TTL_SECONDS):
        return True
    # A first request that never finished (its process died): it must not block the key for a day.
    running_for = timedelta(seconds=settings.IDEMPOTENCY_IN_PROGRESS_SECONDS)
    return row.status_code is None and row.created_at <= now - running_for


def idempotency_begin(*, tenant: Tenant, principal: str, key: str, request_hash: str) -> Claimed | Stored:
    """Claims `key` for this request, or returns the answer stored under it; refuses a reused or busy key."""
    idempotency_key_check(key)
    for _ in range(3):  # only a concurrent sweep or re-claim makes a pass fail
        now = timezone.now()
        try:
            with transaction.atomic():
                row = IdempotencyKey.objects.create(
                    tenant=tenant, principal=principal, key=key, request_hash=request_hash, created_at=now
                )
            return Claimed(record_id=row.pk, claimed_at=now)
        except IntegrityError:
            pass
        found = IdempotencyKey.objects.for_tenant(tenant).filter(principal=principal, key=key).first()
        if found is None:
            continue  # swept meanwhile: claim again
        assert isinstance(found, IdempotencyKey)
        if _stale(found, now):
            # Taken over only if nobody else did first (the row is still the one we read).
            taken = IdempotencyKey.objects.filter(pk=found.pk, created_at=found.created_at).update(
                request_hash=request_hash, status_code=None, response_sealed="", created_at=now
            )
            if taken:
                return Claimed(record_id=found.pk, claimed_at=now)
            continue
        if found.request_hash != request_hash:
            message = (
                "This Idempotency-Key was used for another request (another path or body): "
                "use a new key for a new request."
            )
            raise ApplicationError("idempotency_key_reused", message, {HEADER: [message]}, status=422)
        if found.status_code is None:
            raise Conflict(
                "idempotency_in_progress",
                "The first request with this Idempotency-Key is still running: retry in a moment.",
            )
        body = json.loads(unseal(found.response_sealed)) if found.response_sealed else None
        return Stored(status_code=found.status_code, body=body)
    raise Conflict(
        "idempotency_in_progress", "The first request with this Idempotency-Key is still running: retry in a moment."
    )


def idempotency_finish(*, tenant: Tenant, claim: Claimed, status_code: int, body: Any) -> None:
    """Stores the answer of the request that held `claim` (unless its claim was taken over meanwhile)."""
    sealed = seal(json.dumps(body, cls=DjangoJSONEncoder))
    IdempotencyKey.objects.for_tenant(tenant).filter(
        pk=claim.record_id, created_at=claim.claimed_at, status_code__isnull=True
    ).update(status_code=status_code, response_sealed=sealed)


def idempotency_release(*, tenant: Tenant, claim: Claimed) -> None:
    """Frees the key after a 5xx or a crash: the client's retry runs the request again."""
    IdempotencyKey.objects.for_tenant(tenant).filter(
        pk=claim.record_id, created_at=claim.claimed_at, status_code__isnull=True
    ).delete()


def idempotency_keys_sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Deletes the keys past their retention; the sweep runs it (a key coming back early is replaced anyway)."""
    cutoff = (now or timezone.now()) - timedelta(seconds=settings.IDEMPOTENCY_KEY_TTL_SECONDS)
    deleted, _ = IdempotencyKey.objects.filter(created_at__lte=cutoff).delete()
    return {"idempotency_keys_expired": deleted}
