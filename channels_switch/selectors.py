"""channels_switch's reads."""

from __future__ import annotations

from channels_switch.models import ChannelConnector


def connector_for_webhook(*, key: str, provider: str) -> ChannelConnector | None:
    """The connector a webhook URL names by its key (which names the tenant too), if it uses `provider`."""
    if not key or len(key) > 64:
        return None
    return ChannelConnector.objects.select_related("tenant").filter(webhook_key=key, provider=provider).first()
