"""API shapes of channel connectors."""

from __future__ import annotations

from rest_framework import serializers

from channels_switch.models import ChannelConnector


class ChannelConnectorSerializer(serializers.ModelSerializer[ChannelConnector]):
    class Meta:
        model = ChannelConnector
        fields = ["id", "kind", "provider", "from_address", "enabled", "created_at"]
