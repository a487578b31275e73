"""API viewsets of queueing: queues with their routed widgets, and each queue's member agents."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Model, QuerySet
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework.generics import get_object_or_404
from rest_framework.request import Request
from rest_framework.serializers import BaseSerializer

from contactcenter.api import TenantScopedViewSet
from queueing.models import Queue, QueueMember
from queueing.serializers import QueueMemberSerializer, QueueSerializer
from queueing.services import queue_delete, queue_member_add, queue_member_remove, queue_save, queue_widgets_set


@extend_schema_view(
    list=extend_schema(summary="List queues"),
    retrieve=extend_schema(summary="Get a queue"),
    create=extend_schema(
        summary="Create a queue",
        description="`widgets` routes those widgets here (each widget routes to one queue). A name already used "
        "answers 400 with `fields.name`; a widget id not in your tenant answers 400 with `fields.widgets`.",
        examples=[OpenApiExample("Sales", value={"name": "Sales", "widgets": [4]}, request_only=True)],
    ),
    update=extend_schema(summary="Replace a queue"),
    partial_update=extend_schema(
        summary="Change a queue", description="Without `widgets`, the routes stay as they are."
    ),
    destroy=extend_schema(
        summary="Delete a queue", description="Refused (409 `queue_in_use`) while widgets are routed to it."
    ),
)
class QueueViewSet(TenantScopedViewSet):
    queryset = Queue.objects.prefetch_related("widgets").order_by("name")
    serializer_class = QueueSerializer
    resource_example = {
        "id": 1,
        "name": "Support",
        "description": "Questions about orders",
        "routing_method": "longest_idle",
        "answer_seconds": 30,
        "capacity_kind": "per_agent",
        "capacity": 3,
        "widgets": [2],
        "created_at": "2025-01-31T09:30:00Z",
    }
    delete_service = staticmethod(lambda instance: queue_delete(queue=instance))

    def _save(self, serializer: BaseSerializer[Any], instance: Queue | None) -> None:
        fields = dict(serializer.validated_data)
        widgets = fields.pop("widgets", None)
        with transaction.atomic():  # the queue and its routes together, or neither
            queue = queue_save(tenant=self.tenant, instance=instance, **fields)
            if widgets is not None:
                queue_widgets_set(queue=queue, widgets=widgets)
        serializer.instance = queue

    def perform_create(self, serializer: BaseSerializer[Any]) -> None:
        self._save(serializer, None)

    def perform_update(self, serializer: BaseSerializer[Any]) -> None:
        self._save(serializer, serializer.instance)


@extend_schema_view(
    list=extend_schema(summary="List a queue's agents"),
    retrieve=extend_schema(summary="Get a queue's agent", description="By user id."),
    create=extend_schema(
        summary="Add an agent to a queue",
        description="Adding an agent already in the queue changes nothing.",
        examples=[OpenApiExample("Add", value={"agent": 12}, request_only=True)],
    ),
    destroy=extend_schema(summary="Remove an agent from a queue", description="By user id."),
)
class QueueMemberViewSet(TenantScopedViewSet):
    """`/queues/{queue_pk}/members/`: the agents one queue offers its chats to, addressed by user id."""

    queryset = QueueMember.objects.select_related("user").order_by("user__email")
    serializer_class = QueueMemberSerializer
    resource_example = {"agent": 12, "name": "Grace Hopper", "email": "grace@example.com"}
    lookup_field = "user_id"
    lookup_url_kwarg = "pk"
    http_method_names = ["get", "post", "delete", "head", "options"]
    queue: Queue

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        self.queue = get_object_or_404(Queue.objects.for_tenant(self.tenant), pk=kwargs["queue_pk"])

    def get_queryset(self) -> QuerySet[Any]:
        return super().get_queryset().filter(queue=self.queue)

    def perform_create(self, serializer: BaseSerializer[Any]) -> None:
        serializer.instance = queue_member_add(queue=self.queue, user=serializer.validated_data["user"])

    def perform_destroy(self, instance: Model) -> None:
        queue_member_remove(queue=self.queue, user=instance.user_id)  # type: ignore[attr-defined]
