"""Django admin (superusers only) for channel connectors; provider secrets live in the environment."""

from __future__ import annotations

from django.contrib import admin

from channels_switch.models import ChannelConnector


@admin.register(ChannelConnector)
class ChannelConnectorAdmin(admin.ModelAdmin):
    list_display = ("kind", "provider", "from_address", "enabled", "tenant", "created_at")
    list_filter = ("kind", "provider", "enabled", "tenant")
    search_fields = ("from_address",)
