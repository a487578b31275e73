"""The core every app stands on: tenants, memberships, API keys, contacts and their identities."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import models
from django.db.models import Q

if TYPE_CHECKING:
    from django.contrib.auth.models import User


class Tenant(models.Model):
    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class TenantQuerySet(models.QuerySet[Any]):
    def for_tenant(self, tenant: Tenant | int) -> TenantQuerySet:
        return self.filter(tenant=tenant)


class TenantOwned(models.Model):
    """Every tenant-owned row carries its tenant and is reached through `for_tenant`."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE)

    objects = TenantQuerySet.as_manager()

    class Meta:
        abstract = True


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    SUPERVISOR = "supervisor", "Supervisor"
    AGENT = "agent", "Agent"


ROLE_RANK = {Role.AGENT: 1, Role.SUPERVISOR: 2, Role.ADMIN: 3}


class Membership(TenantOwned):
    """One tenant per user, with a role in it."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="membership")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.AGENT)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.user} ({self.role}) @ {self.tenant_id}"

    def has_role(self, role: str) -> bool:
        return ROLE_RANK[Role(self.role)] >= ROLE_RANK[Role(role)]


class ApiKey(TenantOwned):
    """An integrator's key: shown once, stored as a SHA-256 of a 256-bit secret, acts as an admin."""

    name = models.CharField(max_length=80)
    prefix = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "revoked_at"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class Contact(TenantOwned):
    name = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "name"])]

    def __str__(self) -> str:
        return self.name or f"Contact #{self.pk}"


class IdentityKind(models.TextChoices):
    EMAIL = "email", "Email"
    PHONE = "phone", "Phone"
    WHATSAPP = "whatsapp", "WhatsApp"
    WEB = "web", "Web visitor"
    # The customer's own id of a signed-in user of their site, signed with the widget's identity secret.
    EXTERNAL = "external", "User id on the customer's site"


class ContactIdentity(TenantOwned):
    """An address a contact is reached at. Only a verified one may link a visitor to past history."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="identities")
    kind = models.CharField(max_length=16, choices=IdentityKind.choices)
    value = models.CharField(max_length=254)
    verified = models.BooleanField(default=False)
    # The customer asked for nothing more at this address (an SMS "STOP", a provider's opt-out); None: reachable.
    opted_out_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["contact", "kind", "value"], name="identity_once_per_contact"),
            # A verified address belongs to one contact of the tenant; unverified ones may repeat
            # (a visitor can type anybody's email) and never merge histories.
            models.UniqueConstraint(
                fields=["tenant", "kind", "value"], condition=Q(verified=True), name="verified_identity_unique"
            ),
        ]
        indexes = [models.Index(fields=["tenant", "kind", "value"])]
        verbose_name_plural = "contact identities"

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}{'' if self.verified else ' (unverified)'}"


class ContactMerge(TenantOwned):
    """A merge of two contacts, kept on the one that remains: who was merged in (their name and id, gone since),
    the identities and conversations that moved, who did it and when."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="merges")
    merged_contact_id = models.BigIntegerField()
    merged_name = models.CharField(max_length=200, blank=True)
    identities = models.JSONField(default=list)  # [{"kind", "value", "verified"}] as they were on the merged one
    conversations_moved = models.PositiveIntegerField(default=0)
    merged_by = models.CharField(max_length=200)  # "Alice Agent" or "API key Helpdesk (sb_1234…)"
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "contact", "created_at"])]
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"#{self.merged_contact_id} into #{self.contact_id}"


def user_display_name(user: User) -> str:
    # The email, not the sign-in name: they are the same for every account but a pending placeholder's.
    return user.get_full_name() or user.email or user.get_username()


# --- outbound webhooks (docs/webhooks.md) ------------------------------------------------------------------


class WebhookSubscription(TenantOwned):
    """An integrator's URL, told about the tenant's events (Standard Webhooks: signed with its own secret).

    The secrets (`whsec_` + base64) are sealed at rest (contactcenter.secretbox) and shown once. During a rotation
    the previous secret still signs, beside the new one, until `previous_secret_expires_at`."""

    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=200, blank=True)
    # Event types it wants (contactcenter.services.webhooks_out.EVENT_TYPES); empty: every type.
    event_types = models.JSONField(default=list, blank=True)
    secret_sealed = models.TextField()
    previous_secret_sealed = models.TextField(blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=200, blank=True)
    # Set by the first failed attempt after a success (or ever); cleared by a success. A day of it disables.
    failing_since = models.DateTimeField(null=True, blank=True)
    # Set with the disabling, in its transaction; cleared once the tenant's admins were emailed about it (the
    # sweep sends what a dead worker left).
    admins_notice_pending = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "enabled"])]

    def __str__(self) -> str:
        return self.url

    def wants(self, event_type: str) -> bool:
        return not self.event_types or event_type in self.event_types


class WebhookEvent(TenantOwned):
    """The outbox row: something that happened, written in the transaction that made it happen."""

    public_id = models.CharField(max_length=40, unique=True)  # `msg_…`, sent as `webhook-id` on every attempt
    type = models.CharField(max_length=64)
    payload = models.JSONField(default=dict)  # the body's `data`
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "created_at"])]

    def __str__(self) -> str:
        return f"{self.type} {self.public_id}"


class WebhookDeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"  # refused for good (a 4xx other than 408/429)
    GIVEN_UP = "given_up", "Given up"  # transient failures until the last attempt, or the subscription disabled


class WebhookDelivery(TenantOwned):
    """One event for one subscription. While pending, `next_attempt_at` is when it is due; an attempt in flight
    holds it a lease ahead, so a worker that dies mid-send leaves it due again for the sweep."""

    subscription = models.ForeignKey(WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="deliveries")
    state = models.CharField(max_length=16, choices=WebhookDeliveryState.choices, default=WebhookDeliveryState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # When the attempt in flight claimed it: that attempt records its outcome only if this is still its claim.
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["subscription", "event"], name="webhook_delivery_once")]
        indexes = [
            models.Index(fields=["state", "next_attempt_at"]),
            models.Index(fields=["tenant", "subscription", "-id"]),
        ]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.event_id} → {self.subscription_id} ({self.state})"


class WebhookAttempt(TenantOwned):
    """One POST of a delivery, as it went: the status code or the error, how long it took, the answer's start."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_rows")
    at = models.DateTimeField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    response_body = models.TextField(blank=True)  # the first 500 bytes, decoded leniently

    class Meta:
        indexes = [models.Index(fields=["delivery", "-at"])]

    def __str__(self) -> str:
        return f"{self.delivery_id} @ {self.at:%Y-%m-%d %H:%M:%S}: {self.status_code or self.error}"


class IdempotencyKey(TenantOwned):
    """A POST's outcome under the client's `Idempotency-Key`, so a retry gets the first answer instead of a twin.

    One row per (tenant, principal, key). `status_code` is null while the first request runs (a retry then is
    409 `idempotency_in_progress`). The response body is kept sealed (contactcenter.secretbox): some answers
    carry a secret shown once (a new API key, a webhook signing secret). Rows older than the retention
    (settings.IDEMPOTENCY_KEY_TTL) are removed by the sweep, or replaced when their key comes back.
    """

    principal = models.CharField(max_length=40)  # `key:<api key id>` or `user:<user id>`
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)  # sha256 of method, path and body
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_sealed = models.TextField(blank=True)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "principal", "key"], name="idempotency_key_once"),
        ]
        indexes = [models.Index(fields=["created_at"])]

    def __str__(self) -> str:
        return f"{self.principal} {self.key[:40]} ({self.status_code or 'running'})"
