"""API shapes of channel connectors."""

from __future__ import annotations

from channels_switch.models import ChannelConnector
from contactcenter.serializers import TenantModelSerializer


class ChannelConnectorSerializer(TenantModelSerializer[ChannelConnector]):
    class Meta:
        model = ChannelConnector
        fields = ["id", "kind", "provider", "from_address", "enabled", "created_at"]
