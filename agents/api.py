"""API viewsets of agents: teammates, canned templates, dispositions and pause reasons."""

from __future__ import annotations

from typing import Any

from django.db.models import Model
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from agents.models import CannedTemplate, Disposition, PauseReason
from agents.serializers import (
    AgentInviteSerializer,
    AgentSerializer,
    AgentUpdateSerializer,
    DispositionSerializer,
    PauseReasonSerializer,
    TemplateSerializer,
)
from agents.services import (
    agent_invite,
    agent_update,
    disposition_delete,
    disposition_save,
    pause_reason_delete,
    pause_reason_save,
    template_delete,
    template_save,
)
from contactcenter.api import TenantScopedViewSet
from contactcenter.models import Membership
from contactcenter.services import membership_remove

AGENT_EXAMPLE = {
    "id": 12,
    "email": "grace@example.com",
    "first_name": "Grace",
    "last_name": "Hopper",
    "name": "Grace Hopper",
    "role": "agent",
    "max_chats": 3,
    "presence": "offline",
    "pause_reason": None,
    "pending": True,
    "created_at": "2025-01-31T09:30:00Z",
}


@extend_schema_view(
    list=extend_schema(summary="List teammates", description="Every member of the tenant, with role and presence."),
    retrieve=extend_schema(summary="Get a teammate", description="By user id."),
    destroy=extend_schema(
        summary="Remove a teammate",
        description="They can no longer sign in; their past conversations stay. The last admin stays (400 "
        "`last_admin`).",
    ),
)
class AgentViewSet(TenantScopedViewSet):
    """Teammates are memberships, addressed by their user id."""

    queryset = Membership.objects.select_related("user", "user__agent_profile").order_by("user__email")
    serializer_class = AgentSerializer
    resource_example = AGENT_EXAMPLE
    lookup_field = "user_id"
    lookup_url_kwarg = "pk"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def _validated(self, serializer_class: type[BaseSerializer[Any]], request: Request) -> dict[str, Any]:
        serializer = serializer_class(data=request.data)
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)

    def _fresh(self, membership: Membership) -> dict[str, Any]:
        return dict(AgentSerializer(self.get_queryset().get(pk=membership.pk)).data)

    @extend_schema(
        summary="Invite a teammate",
        description=(
            "Creates the account without a password and emails an invitation link (`pending` until they "
            "choose one). An address already on your team answers 409 `email_taken`. Whether the address has "
            "an account elsewhere changes nothing in the answer: it is invited and listed as `pending` all the "
            "same, but its owner is told that an account belongs to one contact center (no link), so they "
            "stay pending until you remove them; invite another address of theirs."
        ),
        request=AgentInviteSerializer,
        responses={201: AgentSerializer},
        examples=[
            OpenApiExample(
                "Invite",
                value={"email": "grace@example.com", "role": "agent", "first_name": "Grace", "last_name": "Hopper"},
                request_only=True,
            ),
            OpenApiExample("Invited", value=AGENT_EXAMPLE, response_only=True, status_codes=["201"]),
        ],
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = self._validated(AgentInviteSerializer, request)
        inviter = self.principal.membership.user if self.principal.membership else None
        membership = agent_invite(tenant=self.tenant, invited_by=inviter, **data)
        return Response(self._fresh(membership), status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Change a teammate's role, name or chat cap",
        request=AgentUpdateSerializer,
        responses=AgentSerializer,
        examples=[OpenApiExample("Promote", value={"role": "supervisor", "max_chats": 5}, request_only=True)],
    )
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        membership = self.get_object()
        data = self._validated(AgentUpdateSerializer, request)
        agent_update(membership=membership, acting=self.principal.membership, **data)
        return Response(self._fresh(membership))

    def perform_destroy(self, instance: Model) -> None:
        membership_remove(membership=instance)  # type: ignore[arg-type]


@extend_schema_view(
    list=extend_schema(summary="List canned templates"),
    retrieve=extend_schema(summary="Get a canned template"),
    create=extend_schema(
        summary="Create a canned template",
        description="`{visitor_name}`, `{visitor_email}`, `{agent_name}`, `{widget_name}` are filled in when used; "
        "`{visitor_name|there}` gives the text used when a chat has no value (without a fallback the agent is "
        "asked to fill it in before sending). Any other placeholder answers 400 `invalid` with `fields.body` "
        "naming the known ones, as does a name already used with `fields.name`.",
        examples=[
            OpenApiExample(
                "Greeting",
                value={"name": "Greeting", "body": "Hi {visitor_name}, I'm {agent_name}."},
                request_only=True,
            )
        ],
    ),
    update=extend_schema(summary="Replace a canned template"),
    partial_update=extend_schema(summary="Change a canned template"),
    destroy=extend_schema(summary="Delete a canned template"),
)
class TemplateViewSet(TenantScopedViewSet):
    queryset = CannedTemplate.objects.order_by("name")
    serializer_class = TemplateSerializer
    resource_example = {
        "id": 5,
        "name": "Greeting",
        "body": "Hi {visitor_name}, I'm {agent_name}.",
        "created_at": "2025-01-31T09:30:00Z",
    }

    save_service = staticmethod(template_save)
    delete_service = staticmethod(lambda instance: template_delete(template=instance))


@extend_schema_view(
    list=extend_schema(summary="List dispositions", description="Ordered by `position`, then name."),
    retrieve=extend_schema(summary="Get a disposition"),
    create=extend_schema(
        summary="Create a disposition",
        description="A name already used answers 400 with `fields.name`.",
        examples=[OpenApiExample("Solved", value={"name": "Solved", "position": 1}, request_only=True)],
    ),
    update=extend_schema(summary="Replace a disposition"),
    partial_update=extend_schema(summary="Change a disposition"),
    destroy=extend_schema(
        summary="Delete a disposition",
        description="Refused (409 `in_use`) once a conversation was closed with it: set `is_active` false instead.",
    ),
)
class DispositionViewSet(TenantScopedViewSet):
    queryset = Disposition.objects.order_by("position", "name")
    serializer_class = DispositionSerializer
    resource_example = {"id": 2, "name": "Resolved", "is_active": True, "position": 1}

    save_service = staticmethod(disposition_save)
    delete_service = staticmethod(lambda instance: disposition_delete(disposition=instance))


@extend_schema_view(
    list=extend_schema(summary="List pause reasons"),
    retrieve=extend_schema(summary="Get a pause reason"),
    create=extend_schema(
        summary="Create a pause reason",
        description="A name already used answers 400 with `fields.name`.",
        examples=[OpenApiExample("Lunch", value={"name": "Lunch", "paid": False}, request_only=True)],
    ),
    update=extend_schema(summary="Replace a pause reason"),
    partial_update=extend_schema(summary="Change a pause reason"),
    destroy=extend_schema(
        summary="Delete a pause reason", description="Agents paused for it stay paused, without a reason."
    ),
)
class PauseReasonViewSet(TenantScopedViewSet):
    queryset = PauseReason.objects.order_by("name")
    serializer_class = PauseReasonSerializer
    resource_example = {
        "id": 3,
        "name": "Lunch",
        "paid": False,
        "is_active": True,
        "created_at": "2025-01-31T09:30:00Z",
    }

    save_service = staticmethod(pause_reason_save)
    delete_service = staticmethod(lambda instance: pause_reason_delete(pause_reason=instance))
