"""Django admin (superusers only) for queues, their members and widget routes."""

from __future__ import annotations

from django.contrib import admin

from queueing.models import Queue, QueueMember, QueueRoute


class QueueMemberInline(admin.TabularInline):
    model = QueueMember
    extra = 0
    raw_id_fields = ("user",)
    fields = ("user", "tenant")


class QueueRouteInline(admin.TabularInline):
    model = QueueRoute
    extra = 0
    raw_id_fields = ("widget",)
    fields = ("widget", "tenant")


@admin.register(Queue)
class QueueAdmin(admin.ModelAdmin):
    list_display = ("name", "tenant", "created_at")
    list_filter = ("tenant",)
    search_fields = ("name",)
    inlines = [QueueMemberInline, QueueRouteInline]


@admin.register(QueueMember)
class QueueMemberAdmin(admin.ModelAdmin):
    list_display = ("queue", "user", "tenant")
    list_filter = ("tenant",)
    list_select_related = ("queue", "user", "tenant")
    raw_id_fields = ("user",)


@admin.register(QueueRoute)
class QueueRouteAdmin(admin.ModelAdmin):
    list_display = ("widget", "queue", "tenant")
    list_filter = ("tenant",)
    list_select_related = ("queue", "widget", "tenant")
