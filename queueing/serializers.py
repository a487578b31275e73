"""API shapes of queueing: queues (with the widgets routed to them) and their member agents."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from rest_framework import serializers

from chat.models import Widget
from contactcenter.models import user_display_name
from contactcenter.serializers import TenantModelSerializer, TenantPrimaryKeyRelatedField
from queueing.models import Queue, QueueMember


class QueueSerializer(TenantModelSerializer[Queue]):
    widgets = TenantPrimaryKeyRelatedField(
        many=True,
        queryset=Widget.objects.all(),
        required=False,
        help_text="Widgets whose chats come to this queue; a widget routes to one queue, so it moves here.",
    )

    class Meta:
        model = Queue
        fields = [
            "id",
            "name",
            "description",
            "routing_method",
            "answer_seconds",
            "capacity_kind",
            "capacity",
            "widgets",
            "created_at",
        ]


class QueueMemberSerializer(TenantModelSerializer[QueueMember]):
    agent = TenantPrimaryKeyRelatedField(
        source="user",
        queryset=get_user_model().objects.all(),
        tenant_field="membership__tenant",
        help_text="The teammate's user id (as in /agents/).",
    )
    name = serializers.SerializerMethodField()
    email = serializers.EmailField(source="user.email", read_only=True)

    class Meta:
        model = QueueMember
        fields = ["agent", "name", "email"]

    def get_name(self, member: QueueMember) -> str:
        return user_display_name(member.user)
