"""Django admin (superusers only) for tenants, memberships, API keys and contacts."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from contactcenter.models import ApiKey, Contact, ContactIdentity, Membership, Tenant


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "created_at")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "tenant", "role", "created_at")
    list_filter = ("role", "tenant")
    search_fields = ("user__email", "user__first_name", "user__last_name")
    list_select_related = ("user", "tenant")
    raw_id_fields = ("user",)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are issued from the settings pages (the plaintext is shown once); the hash is never displayed."""

    list_display = ("name", "prefix", "tenant", "created_at", "last_used_at", "revoked_at")
    list_filter = ("tenant",)
    search_fields = ("name", "prefix")
    list_select_related = ("tenant",)
    fields = ("tenant", "name", "prefix", "created_by", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("tenant", "prefix", "created_by", "created_at", "last_used_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


class ContactIdentityInline(admin.TabularInline):
    model = ContactIdentity
    extra = 0
    fields = ("kind", "value", "verified", "created_at")
    readonly_fields = ("created_at",)


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ("__str__", "tenant", "created_at", "updated_at")
    list_filter = ("tenant",)
    search_fields = ("name", "identities__value")
    list_select_related = ("tenant",)
    inlines = [ContactIdentityInline]


@admin.register(ContactIdentity)
class ContactIdentityAdmin(admin.ModelAdmin):
    list_display = ("kind", "value", "verified", "contact", "tenant", "created_at")
    list_filter = ("kind", "verified", "tenant")
    search_fields = ("value",)
    list_select_related = ("contact", "tenant")
    raw_id_fields = ("contact",)
