"""API viewsets of chat: widgets, and conversations with their messages (read-only)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from chat.models import Conversation, Widget
from chat.selectors import TeamReader, message_list_after
from chat.serializers import (
    MESSAGE_PAGE_MAX,
    ConversationFilterSerializer,
    ConversationSerializer,
    MessagePageQuerySerializer,
    MessagePageSerializer,
    MessageSerializer,
    WidgetSerializer,
)
from chat.services import widget_delete
from contactcenter.api import TenantScopedViewSet
from contactcenter.api_defaults import NewestFirstCursorPagination
from queueing.services import widget_save_routed


@extend_schema_view(
    list=extend_schema(summary="List widgets"),
    retrieve=extend_schema(summary="Get a widget"),
    create=extend_schema(
        summary="Create a widget",
        description=(
            "Admins only. `public_key` is generated and read-only. Origins are normalised to "
            "`scheme://host[:port]`; a path, a wildcard or an HTML/SVG upload type answers 400 on its field, "
            "and so does a name already used. When the tenant has exactly one queue, the new widget is routed "
            "to it; otherwise it is routed nowhere (visitors are told no one is available) until a queue takes it "
            "(`PUT /queues/{id}/` with its `widgets`)."
        ),
        examples=[
            OpenApiExample(
                "Shop widget",
                value={
                    "name": "Shop",
                    "allowed_origins": ["https://shop.example.com"],
                    "title": "Questions? Ask us",
                    "accent_color": "#0f766e",
                    "survey_fields": [
                        {"key": "name", "label": "Your name", "kind": "name", "required": True},
                        {"key": "order", "label": "Order number", "kind": "text", "required": False},
                    ],
                },
                request_only=True,
            )
        ],
    ),
    update=extend_schema(summary="Replace a widget"),
    partial_update=extend_schema(summary="Change a widget"),
    destroy=extend_schema(
        summary="Delete a widget",
        description="Refused (409 `widget_in_use`) while it has conversations waiting or open.",
    ),
)
class WidgetViewSet(TenantScopedViewSet):
    queryset = Widget.objects.order_by("name")
    serializer_class = WidgetSerializer
    resource_example = {
        "id": 2,
        "name": "Shop",
        "public_key": "wk_7Hc2pQ9sLm4x",
        "allowed_origins": ["https://shop.example.com"],
        "title": "Chat with us",
        "greeting": "Hello! How can we help?",
        "accent_color": "#1a73e8",
        "offline_message": "We are away; leave a message and we will write back.",
        "queueing_enabled": True,
        "survey_enabled": False,
        "survey_fields": [],
        "max_upload_bytes": 5242880,
        "allowed_file_types": ["image/png", "image/jpeg", "application/pdf"],
        "agent_external_url": "",
        "hours_enabled": False,
        "time_zone": "Europe/Berlin",
        "weekly_hours": [],
        "closed_dates": [],
        "display_url_contains": [],
        "display_url_excludes": [],
        "display_delay_seconds": 0,
        "created_at": "2025-01-31T09:30:00Z",
    }

    save_service = staticmethod(widget_save_routed)  # a new widget joins the tenant's only queue
    delete_service = staticmethod(lambda instance: widget_delete(widget=instance))


@extend_schema_view(
    list=extend_schema(
        summary="List conversations",
        description="Newest first; cursor pagination: follow `next`. A filter value that is not valid answers 400 "
        "naming the parameter.",
        parameters=[ConversationFilterSerializer],
    ),
    retrieve=extend_schema(summary="Get a conversation"),
)
class ConversationViewSet(TenantScopedViewSet):
    queryset = Conversation.objects.order_by("-created_at", "-pk")
    serializer_class = ConversationSerializer
    resource_example = {
        "id": 42,
        "contact": {"id": 57, "name": "Jane Doe"},
        "widget": 2,
        "visitor_id": "v_9f3c2a71",
        "channel": "web",
        "status": "open",
        "assignee": 12,
        "participants": [],
        "important": False,
        "disposition": None,
        "last_seq": 4,
        "created_at": "2025-01-31T09:30:00Z",
        "answered_at": "2025-01-31T09:30:20Z",
        "closed_at": None,
        "last_message_at": "2025-01-31T09:32:05Z",
    }
    pagination_class = NewestFirstCursorPagination
    http_method_names = ["get", "head", "options"]

    def get_queryset(self) -> QuerySet[Any]:
        queryset = super().get_queryset()
        if self.action == "messages":
            return queryset
        return queryset.select_related("contact").prefetch_related("participants")

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.action != "list":
            return queryset
        filters = ConversationFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        lookups = {
            "status": "status",
            "channel": "channel",
            "agent": "assignee_id",
            "contact": "contact_id",
            "created_after": "created_at__gte",
            "created_before": "created_at__lt",
        }
        return queryset.filter(**{lookups[name]: value for name, value in filters.validated_data.items()})

    @extend_schema(
        summary="Read a conversation's messages",
        description=(
            "In `seq` order, under the read rule: API keys, admins and supervisors get every message, private "
            "notes included; an agent gets them only in a conversation they are assignee or participant of, and "
            "otherwise the messages the customer saw (notes left out, so `seq` may skip). Page with `after`: pass "
            "the last `seq` you have, or follow `next`, which is null on the last page."
        ),
        parameters=[MessagePageQuerySerializer],
        responses=MessagePageSerializer,
        examples=[
            OpenApiExample(
                "A page",
                value={
                    "results": [
                        {
                            "id": 981,
                            "seq": 1,
                            "sender_kind": "visitor",
                            "sender_user": None,
                            "is_private": False,
                            "body": "Hello, where is my order?",
                            "event": "",
                            "event_data": {},
                            "channel": "web",
                            "delivery_status": "sent",
                            "attachments": [],
                            "created_at": "2025-01-31T09:30:00Z",
                        }
                    ],
                    "next": "https://switchboard.example.com/api/v1/conversations/42/messages/?after=1&limit=1",
                },
                response_only=True,
            )
        ],
    )
    @action(detail=True, methods=["get"])
    def messages(self, request: Request, pk: str | None = None) -> Response:
        conversation = self.get_object()
        query = MessagePageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        limit = min(query.validated_data["limit"], MESSAGE_PAGE_MAX)
        # One row past the page tells whether there is a next one.
        membership = self.principal.membership
        reader = TeamReader(
            tenant_id=self.tenant.pk, user_id=membership.user_id if membership else None, role=self.principal.role
        )
        rows = message_list_after(
            reader=reader, conversation=conversation, after=query.validated_data["after"], limit=limit + 1
        )
        page = rows[:limit]
        next_url = None
        if len(rows) > limit:
            next_url = replace_query_param(request.build_absolute_uri(), "after", page[-1].seq)
        return Response({"results": MessageSerializer(page, many=True).data, "next": next_url})
