"""Sending the outbox of webhooks_out: Standard Webhooks signatures, the SSRF guard, attempts, retries, the sweep.

A task (contactcenter.tasks.webhook_deliver) is only the trigger: `webhook_delivery_attempt` claims the row
(due and pending, under its row lock, skipping rows another worker holds) by moving `next_attempt_at` a lease
ahead and stamping `claimed_at`, sends outside any transaction, and records the outcome only if the claim is
still its own. A worker that dies mid-send leaves the row pending and due once the lease is over: the sweep
(`webhook_deliveries_sweep`) triggers it again. At least once, the same `webhook-id` on every attempt.

Outcomes: 2xx delivered; 5xx, 408, 429, a timeout, a lost connection or an unresolvable host retried with
exponential backoff and jitter up to WEBHOOKS_MAX_ATTEMPTS, then given up; any other status (and a refused
address) failed for good. A subscription whose attempts have all failed for WEBHOOKS_DISABLE_AFTER_SECONDS is
disabled and its tenant's admins are emailed: `admins_notice_pending` is set in the disabling transaction, the
email goes once that commits, and the sweep sends any notice a dead worker left (at least once).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import random
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import urllib3
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Case, Value, When
from django.utils import timezone

from contactcenter.models import (
    Membership,
    Role,
    WebhookAttempt,
    WebhookDelivery,
    WebhookDeliveryState,
    WebhookSubscription,
)
from contactcenter.services.webhooks_out import subscription_secrets

logger = logging.getLogger(__name__)

RESPONSE_KEPT_BYTES = 500
RETRYABLE_STATUSES = {408, 429}
# A pending row whose task has not run this long after it was due lost its trigger: the sweep sends another.
TRIGGER_GRACE = timedelta(seconds=20)
SWEEP_BATCH = 200
USER_AGENT = "Switchboard-Webhooks/1"


# --- signatures (https://www.standardwebhooks.com/) ------------------------------------------------------------


def sign(secret: str, *, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256>` of `{id}.{timestamp}.{body}` with the secret's bytes (`whsec_` + base64)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_header(secrets: list[str], *, msg_id: str, timestamp: int, body: bytes) -> str:
    """One signature per secret that signs now, space-separated (during a rotation: both)."""
    return " ".join(sign(secret, msg_id=msg_id, timestamp=timestamp, body=body) for secret in secrets)


def body_bytes(*, event_type: str, created_at: datetime, data: dict[str, Any]) -> bytes:
    timestamp = created_at.isoformat().replace("+00:00", "Z")
    return json.dumps({"type": event_type, "timestamp": timestamp, "data": data}, separators=(",", ":")).encode()


# --- the SSRF guard ------------------------------------------------------------------------------------------


class UrlRefused(Exception):
    """A URL a webhook may not go to; `retryable` when it is the name's resolution that failed."""

    def __init__(self, message: str, *, retryable: bool = False):
        super().__init__(message)
        self.message = message
        self.retryable = retryable


def address_refused(address: str) -> str | None:
    """Why an IP address is not a public one (private, loopback, link-local, multicast, reserved…), or None."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for flag in ("loopback", "link_local", "private", "multicast", "reserved", "unspecified"):
        if getattr(ip, f"is_{flag}"):
            return f"{address} is a {flag.replace('_', '-')} address"
    if not ip.is_global:
        return f"{address} is not a public address"
    return None


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UrlRefused(f"The host {host} does not resolve ({exc}).", retryable=True) from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def url_check(url: str, *, resolve: bool = True) -> list[str]:
    """Refuses (UrlRefused) a URL that is not https (http only where private addresses are allowed), has no host,
    or whose host is or resolves to an address that is not public, unless WEBHOOKS_ALLOW_PRIVATE. Returns the
    addresses to connect to (resolved when `resolve`, which sending always does, so the checked address is the
    one connected to: no second lookup a DNS rebinding could change)."""
    allow_private = settings.WEBHOOKS_ALLOW_PRIVATE
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UrlRefused(f"Not a valid URL ({exc}).") from exc
    if parts.scheme != "https" and not (parts.scheme == "http" and allow_private):
        raise UrlRefused("The URL must start with https://.")
    host = parts.hostname
    if not host:
        raise UrlRefused("The URL has no host.")
    if parts.username or parts.password:
        raise UrlRefused("The URL must not carry a user name or password.")
    try:
        literal = [str(ipaddress.ip_address(host))]
    except ValueError:
        literal = []
    if not resolve and not literal:
        return []
    addresses = literal or _resolve(host, port)
    if not allow_private:
        for address in addresses:
            reason = address_refused(address)
            if reason is not None:
                raise UrlRefused(f"Webhooks go to public addresses only: {host} → {reason}.")
    return addresses


# --- one POST ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str
    latency_ms: int
    body: str
    retryable: bool
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _retry_after(value: str | None) -> float | None:
    if value and value.strip().isdigit():
        return float(value.strip())
    return None


def post(url: str, *, headers: dict[str, str], body: bytes) -> Outcome:
    """POSTs to the checked address of the URL's host (TLS still checks the host's certificate), no redirects."""
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        addresses = url_check(url)
    except UrlRefused as exc:
        return Outcome(None, exc.message[:300], elapsed(), "", exc.retryable)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    timeout = urllib3.Timeout(total=settings.WEBHOOKS_TIMEOUT_SECONDS)
    pool: urllib3.HTTPConnectionPool
    if parts.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            addresses[0], port, timeout=timeout, retries=False, server_hostname=host, assert_hostname=host
        )
    else:
        pool = urllib3.HTTPConnectionPool(addresses[0], port, timeout=timeout, retries=False)
    sent_headers = {
        **headers,
        "Host": parts.netloc.rsplit("@", 1)[-1],
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }
    try:
        response = pool.urlopen(
            "POST",
            path,
            body=body,
            headers=sent_headers,
            redirect=False,
            retries=False,
            preload_content=False,
            assert_same_host=False,
        )
        try:
            head = response.read(RESPONSE_KEPT_BYTES, decode_content=True) or b""
        finally:
            response.release_conn()
    except urllib3.exceptions.NewConnectionError as exc:  # before TimeoutError: urllib3 makes it one of those
        return Outcome(None, f"Connection failed: {exc}"[:300], elapsed(), "", True)
    except urllib3.exceptions.TimeoutError:
        return Outcome(None, f"Timed out after {settings.WEBHOOKS_TIMEOUT_SECONDS:g} s.", elapsed(), "", True)
    except urllib3.exceptions.HTTPError as exc:
        return Outcome(None, f"Connection failed: {type(exc).__name__}: {exc}"[:300], elapsed(), "", True)
    finally:
        pool.close()
    status = response.status
    text = head[:RESPONSE_KEPT_BYTES].decode("utf-8", errors="replace")
    retryable = status >= 500 or status in RETRYABLE_STATUSES
    error = "" if 200 <= status < 300 else f"HTTP {status}" + (" (redirects are not followed)" if status < 400 else "")
    return Outcome(status, error, elapsed(), text, retryable, _retry_after(response.headers.get("Retry-After")))


# --- triggering, claiming, recording ------------------------------------------------------------------------------


def delivery_trigger(*, tenant_id: int, delivery_id: int, countdown: float | None = None) -> None:
    from contactcenter.tasks import webhook_deliver

    if countdown is None or settings.CELERY_TASK_ALWAYS_EAGER:
        # Eager (no broker): a countdown would run at once; the in-process sweep runs it when it is due.
        if countdown is None:
            webhook_deliver.delay(tenant_id, delivery_id)
        return
    webhook_deliver.apply_async((tenant_id, delivery_id), countdown=countdown)


def _lease() -> timedelta:
    return timedelta(seconds=settings.WEBHOOKS_TIMEOUT_SECONDS + 50)


def _claim(tenant_id: int, delivery_id: int) -> WebhookDelivery | None:
    """Due and pending → held for one attempt (a lease ahead, stamped), under the row lock; None when another
    attempt holds it, it is not due, or it is finished. A disabled subscription's delivery waits (replayable)."""
    now = timezone.now()
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("subscription", "event")
            .filter(pk=delivery_id, tenant_id=tenant_id, state=WebhookDeliveryState.PENDING, next_attempt_at__lte=now)
            .first()
        )
        if delivery is None:
            return None
        if not delivery.subscription.enabled:
            delivery.state, delivery.next_attempt_at = WebhookDeliveryState.GIVEN_UP, None
            delivery.last_error = "The subscription is disabled."
            delivery.save(update_fields=["state", "next_attempt_at", "last_error", "updated_at"])
            return None
        delivery.attempts += 1
        delivery.claimed_at, delivery.next_attempt_at = now, now + _lease()
        delivery.save(update_fields=["attempts", "claimed_at", "next_attempt_at", "updated_at"])
    return delivery


def backoff_seconds(attempts: int) -> float:
    """WEBHOOKS_BACKOFF_SECONDS doubled for each attempt made (at most WEBHOOKS_BACKOFF_MAX_SECONDS), ±50 %."""
    base = min(settings.WEBHOOKS_BACKOFF_MAX_SECONDS, settings.WEBHOOKS_BACKOFF_SECONDS * 2 ** max(0, attempts - 1))
    return base * random.uniform(0.5, 1.5)


def _headers(delivery: WebhookDelivery, body: bytes, now: datetime) -> dict[str, str]:
    timestamp = int(now.timestamp())
    secrets = subscription_secrets(delivery.subscription, now=now)
    msg_id = delivery.event.public_id
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secrets, msg_id=msg_id, timestamp=timestamp, body=body),
    }


def webhook_delivery_attempt(*, tenant_id: int, delivery_id: int) -> str:
    """One attempt at a delivery if it is due and nobody else is at it; what became of it: `delivered`,
    `retry`, `failed`, `given_up`, `skipped` (not due, held, finished) or `superseded` (the sweep took it back)."""
    delivery = _claim(tenant_id, delivery_id)
    if delivery is None:
        return "skipped"
    event = delivery.event
    body = body_bytes(event_type=event.type, created_at=event.created_at, data=event.payload)
    now = timezone.now()
    try:
        outcome = post(delivery.subscription.url, headers=_headers(delivery, body, now), body=body)
    except Exception as exc:  # a bug must not leave the row held until its lease ends without a record
        logger.exception("webhook delivery %s: unexpected error while sending", delivery.pk)
        outcome = Outcome(None, f"Internal error: {type(exc).__name__}", 0, "", True)
    return _record(delivery, outcome, at=now)


def _record(delivery: WebhookDelivery, outcome: Outcome, *, at: datetime) -> str:
    now = timezone.now()
    with transaction.atomic():
        WebhookAttempt.objects.create(
            tenant_id=delivery.tenant_id,
            delivery=delivery,
            at=at,
            status_code=outcome.status_code,
            error=outcome.error[:300],
            latency_ms=outcome.latency_ms,
            response_body=outcome.body,
        )
        current = (
            WebhookDelivery.objects.for_tenant(delivery.tenant_id)
            .select_for_update()
            .filter(pk=delivery.pk, state=WebhookDeliveryState.PENDING, claimed_at=delivery.claimed_at)
            .first()
        )
        if current is None:
            return "superseded"
        current.last_status_code, current.last_error = outcome.status_code, outcome.error[:500]
        wait = 0.0
        if outcome.ok:
            current.state, current.delivered_at, current.next_attempt_at = WebhookDeliveryState.DELIVERED, now, None
            result = "delivered"
        elif outcome.retryable and current.attempts < settings.WEBHOOKS_MAX_ATTEMPTS:
            wait = backoff_seconds(current.attempts)
            if outcome.retry_after is not None:
                wait = min(max(wait, outcome.retry_after), settings.WEBHOOKS_BACKOFF_MAX_SECONDS)
            current.next_attempt_at = now + timedelta(seconds=wait)
            result = "retry"
        else:
            current.state = WebhookDeliveryState.GIVEN_UP if outcome.retryable else WebhookDeliveryState.FAILED
            current.next_attempt_at = None
            result = str(current.state)
        current.save(
            update_fields=["state", "delivered_at", "next_attempt_at", "last_status_code", "last_error", "updated_at"]
        )
        _subscription_health(current.subscription_id, tenant_id=current.tenant_id, ok=outcome.ok, now=now)
        if result == "retry":
            tenant_id, pk = current.tenant_id, current.pk
            transaction.on_commit(lambda: delivery_trigger(tenant_id=tenant_id, delivery_id=pk, countdown=wait))
    return result


def _subscription_health(subscription_id: int, *, tenant_id: int, ok: bool, now: datetime) -> None:
    """A success clears the failure clock; a failure starts it, and disables the subscription once it has run for
    WEBHOOKS_DISABLE_AFTER_SECONDS."""
    subscriptions = WebhookSubscription.objects.for_tenant(tenant_id).filter(pk=subscription_id)
    if ok:
        subscriptions.filter(failing_since__isnull=False).update(failing_since=None)
        return
    subscriptions.filter(failing_since__isnull=True).update(failing_since=now)
    limit = now - timedelta(seconds=settings.WEBHOOKS_DISABLE_AFTER_SECONDS)
    subscription = subscriptions.select_for_update().filter(enabled=True, failing_since__lte=limit).first()
    if subscription is None:
        return
    since = subscription.failing_since
    assert since is not None
    subscription.enabled, subscription.disabled_at, subscription.admins_notice_pending = False, now, True
    subscription.disabled_reason = f"Every delivery failed since {since:%Y-%m-%d %H:%M} UTC."[:200]
    subscription.save(
        update_fields=["enabled", "disabled_at", "disabled_reason", "admins_notice_pending", "updated_at"]
    )
    WebhookDelivery.objects.for_tenant(tenant_id).filter(
        subscription_id=subscription.pk, state=WebhookDeliveryState.PENDING
    ).update(state=WebhookDeliveryState.GIVEN_UP, next_attempt_at=None, last_error="The subscription was disabled.")
    from contactcenter.services.webhooks_out import _subscriptions_changed

    _subscriptions_changed(tenant_id)
    subscription_id = subscription.pk
    transaction.on_commit(lambda: webhook_disabled_notices_send(subscription_id=subscription_id))


def webhook_disabled_notices_send(*, subscription_id: int | None = None) -> int:
    """Emails the tenant's admins about each disabled subscription whose notice is pending (one, or every one),
    each under its row lock (another sender skips it), clearing the flag in the same transaction. A subscription
    enabled again in the meantime is not reported. Returns how many notices went."""
    sent = 0
    while True:
        with transaction.atomic():
            pending = WebhookSubscription.objects.select_for_update(skip_locked=True).filter(admins_notice_pending=True)
            if subscription_id is not None:
                pending = pending.filter(pk=subscription_id)
            subscription = pending.order_by("pk").first()
            if subscription is None:
                return sent
            if not subscription.enabled:
                sent += _admins_tell(subscription)
            subscription.admins_notice_pending = False
            subscription.save(update_fields=["admins_notice_pending"])


def _admins_tell(subscription: WebhookSubscription) -> int:
    recipients = list(
        Membership.objects.for_tenant(subscription.tenant_id)
        .filter(role=Role.ADMIN, user__is_active=True)
        .exclude(user__email="")
        .values_list("user__email", flat=True)
    )
    if not recipients:
        return 0
    site = settings.SITE_URL.rstrip("/")
    message = (
        f"Switchboard could not deliver webhooks to {subscription.url} for a day, so it stopped sending to it.\n\n"
        f"{subscription.disabled_reason}\n\nFix the receiver, then enable the subscription again and replay the "
        f"deliveries you need: {site}/settings/webhooks/\n"
    )
    send_mail(
        subject="A webhook subscription was disabled", message=message, from_email=None, recipient_list=recipients
    )
    return 1


def webhook_deliveries_sweep() -> dict[str, int]:
    """The sweep's webhook pass, over every tenant: triggers pending deliveries that are due and whose trigger was
    lost (or whose worker died holding them: the lease ran out), and sends the disabled-subscription notices a dead
    worker left. Eager (no broker): runs them here, at once."""
    grace = timedelta(0) if settings.CELERY_TASK_ALWAYS_EAGER else TRIGGER_GRACE
    due = list(
        WebhookDelivery.objects.filter(state=WebhookDeliveryState.PENDING, next_attempt_at__lte=timezone.now() - grace)
        .order_by(Case(When(attempts=0, then=Value(0)), default=Value(1)), "next_attempt_at")
        .values_list("tenant_id", "pk")[:SWEEP_BATCH]
    )
    for tenant_id, delivery_id in due:
        delivery_trigger(tenant_id=tenant_id, delivery_id=delivery_id)
    return {"webhooks_retriggered": len(due), "webhook_disabled_notices": webhook_disabled_notices_send()}
