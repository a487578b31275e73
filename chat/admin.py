"""Django admin (superusers only) for widgets, conversations, messages and attachments."""

from __future__ import annotations

from django.contrib import admin

from chat.models import Attachment, Conversation, Message, Widget


@admin.register(Widget)
class WidgetAdmin(admin.ModelAdmin):
    list_display = ("name", "tenant", "public_key", "survey_enabled", "created_at")
    list_filter = ("tenant",)
    search_fields = ("name", "public_key")
    readonly_fields = ("public_key", "created_at")


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ("id", "tenant", "channel", "status", "contact", "assignee", "created_at", "closed_at")
    list_filter = ("status", "channel", "tenant")
    search_fields = ("contact__name", "visitor_id")
    list_select_related = ("tenant", "contact", "assignee")
    raw_id_fields = ("contact", "assignee", "participants", "widget", "disposition")
    readonly_fields = ("last_seq", "created_at")


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("conversation", "seq", "sender_kind", "is_private", "channel", "delivery_status", "created_at")
    list_filter = ("sender_kind", "channel", "delivery_status", "tenant")
    search_fields = ("body",)
    raw_id_fields = ("conversation", "sender_user")
    readonly_fields = ("seq", "created_at")


@admin.register(Attachment)
class AttachmentAdmin(admin.ModelAdmin):
    list_display = ("filename", "content_type", "size", "conversation", "uploaded_by_visitor", "created_at")
    list_filter = ("tenant",)
    search_fields = ("filename",)
    raw_id_fields = ("conversation", "message", "uploaded_by")
