"""channels_switch's reads."""

from __future__ import annotations

from channels_switch.models import ChannelConnector, WidgetSwitching
from chat.models import Widget


def connector_for_webhook(*, key: str, provider: str) -> ChannelConnector | None:
    """The connector a webhook URL names by its key (which names the tenant too), if it uses `provider`."""
    if not key or len(key) > 64:
        return None
    return ChannelConnector.objects.select_related("tenant").filter(webhook_key=key, provider=provider).first()


def widget_switching_for(*, widget: Widget) -> WidgetSwitching | None:
    """A widget's channel switching settings (None: never saved, so the button is off)."""
    return WidgetSwitching.objects.for_tenant(widget.tenant_id).filter(widget=widget).first()
