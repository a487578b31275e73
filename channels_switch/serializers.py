"""API shapes of channel connectors: the provider secret is written, never read back."""

from __future__ import annotations

from rest_framework import serializers

from channels_switch.models import ChannelConnector
from channels_switch.services import SECRET_MAX_CHARS
from contactcenter.serializers import TenantModelSerializer, TenantPrimaryKeyRelatedField
from queueing.models import Queue


class ChannelConnectorSerializer(TenantModelSerializer[ChannelConnector]):
    queue = TenantPrimaryKeyRelatedField(
        queryset=Queue.objects.all(),
        required=False,
        allow_null=True,
        help_text="The queue new inbound conversations on this channel wait in (null: every agent sees them).",
    )
    secret = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        max_length=SECRET_MAX_CHARS,
        style={"input_type": "password"},
        help_text=(
            "Twilio: the account's auth token; email: the ESP's API key. Stored encrypted and never returned; "
            "omit it (or send it empty) to keep the stored one."
        ),
    )
    has_secret = serializers.BooleanField(read_only=True, help_text="Whether a secret is stored.")

    class Meta:
        model = ChannelConnector
        fields = [
            "id",
            "kind",
            "provider",
            "enabled",
            "from_address",
            "queue",
            "account_sid",
            "messaging_service_sid",
            "esp",
            "inbound_address",
            "secret",
            "has_secret",
            "secret_set_at",
            "created_at",
        ]
        read_only_fields = ["secret_set_at", "created_at"]
