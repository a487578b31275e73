"""channels_switch's reads."""

from __future__ import annotations

from channels_switch.models import ChannelConnector, WidgetSwitching


def connector_for_webhook(*, key: str, provider: str) -> ChannelConnector | None:
    """The connector a webhook URL names by its key (which names the tenant too), if it uses `provider`."""
    if not key or len(key) > 64:
        return None
    return ChannelConnector.objects.select_related("tenant").filter(webhook_key=key, provider=provider).first()


def widget_switching_for(*, tenant_id: int, widget_id: int | None) -> WidgetSwitching | None:
    """A widget's channel switching settings (None: never saved, or no widget, so the button is off)."""
    if widget_id is None:
        return None
    return WidgetSwitching.objects.for_tenant(tenant_id).filter(widget_id=widget_id).first()
