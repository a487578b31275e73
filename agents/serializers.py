"""API shapes of teammates (memberships with their agent profile), templates, dispositions and pause reasons."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from agents.models import CannedTemplate, Disposition, PauseReason, Presence
from agents.services import MAX_CHATS_LIMIT
from contactcenter.models import Membership, Role, user_display_name
from contactcenter.serializers import TenantModelSerializer


class AgentSerializer(serializers.Serializer[Membership]):
    """A teammate; `id` is their user id, the one queues and conversations refer to."""

    id = serializers.IntegerField(source="user_id", read_only=True)
    email = serializers.EmailField(source="user.email", read_only=True)
    first_name = serializers.CharField(source="user.first_name", read_only=True)
    last_name = serializers.CharField(source="user.last_name", read_only=True)
    name = serializers.SerializerMethodField()
    role = serializers.ChoiceField(choices=Role.choices, read_only=True)
    max_chats = serializers.IntegerField(source="user.agent_profile.max_chats", read_only=True)
    presence = serializers.ChoiceField(source="user.agent_profile.presence", choices=Presence.choices, read_only=True)
    pause_reason = serializers.IntegerField(
        source="user.agent_profile.pause_reason_id", read_only=True, allow_null=True
    )
    pending = serializers.SerializerMethodField(help_text="Invited and has not chosen a password yet.")
    created_at = serializers.DateTimeField(read_only=True)

    def get_name(self, membership: Membership) -> str:
        return user_display_name(membership.user)

    def get_pending(self, membership: Membership) -> bool:
        return not membership.user.has_usable_password()


class AgentInviteSerializer(serializers.Serializer[Any]):
    email = serializers.EmailField(
        max_length=254,
        help_text="Their sign-in address.",
    )
    role = serializers.ChoiceField(choices=Role.choices, default=Role.AGENT)
    first_name = serializers.CharField(max_length=150, required=False, allow_blank=True)
    last_name = serializers.CharField(max_length=150, required=False, allow_blank=True)
    max_chats = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_CHATS_LIMIT, help_text="Concurrent chats (default 3)."
    )


class AgentUpdateSerializer(serializers.Serializer[Any]):
    role = serializers.ChoiceField(choices=Role.choices, required=False)
    first_name = serializers.CharField(max_length=150, required=False, allow_blank=True)
    last_name = serializers.CharField(max_length=150, required=False, allow_blank=True)
    max_chats = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_CHATS_LIMIT, help_text="Concurrent chats."
    )


class TemplateSerializer(TenantModelSerializer[CannedTemplate]):
    class Meta:
        model = CannedTemplate
        fields = ["id", "name", "body", "created_at"]


class DispositionSerializer(TenantModelSerializer[Disposition]):
    class Meta:
        model = Disposition
        fields = ["id", "name", "is_active", "position"]


class PauseReasonSerializer(TenantModelSerializer[PauseReason]):
    class Meta:
        model = PauseReason
        fields = ["id", "name", "paid", "is_active", "created_at"]
