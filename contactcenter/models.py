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


def user_display_name(user: User) -> str:
    # The email, not the sign-in name: they are the same for every account but a pending placeholder's.
    return user.get_full_name() or user.email or user.get_username()
