"""Django admin (superusers only) for agent profiles, pause reasons, templates and dispositions."""

from __future__ import annotations

from django.contrib import admin

from agents.models import AgentProfile, CannedTemplate, Disposition, PauseReason


@admin.register(AgentProfile)
class AgentProfileAdmin(admin.ModelAdmin):
    list_display = ("user", "tenant", "presence", "pause_reason", "max_chats", "open_sockets", "last_heartbeat_at")
    list_filter = ("presence", "tenant")
    search_fields = ("user__email",)
    list_select_related = ("user", "tenant", "pause_reason")
    raw_id_fields = ("user",)


@admin.register(PauseReason)
class PauseReasonAdmin(admin.ModelAdmin):
    list_display = ("name", "tenant", "paid", "is_active")
    list_filter = ("paid", "is_active", "tenant")
    search_fields = ("name",)


@admin.register(CannedTemplate)
class CannedTemplateAdmin(admin.ModelAdmin):
    list_display = ("name", "tenant", "created_at")
    list_filter = ("tenant",)
    search_fields = ("name", "body")


@admin.register(Disposition)
class DispositionAdmin(admin.ModelAdmin):
    list_display = ("name", "tenant", "position", "is_active")
    list_filter = ("is_active", "tenant")
    search_fields = ("name",)
