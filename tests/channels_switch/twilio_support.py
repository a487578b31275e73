"""What the channel tests share: one Twilio account of the right shapes, a customer's number, and a connector."""

from __future__ import annotations

from typing import Any

from channels_switch.models import ChannelConnector
from channels_switch.services import connector_save

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "0123456789abcdef" * 2
CUSTOMER = "+447911123456"  # a valid UK mobile number (phonenumbers refuses the 07700 900xxx drama range)


def twilio_connector(tenant: Any, kind: str = "sms", **fields: Any) -> ChannelConnector:
    """The tenant's Twilio connector of `kind`, sending from +1 415 555 0100 unless `fields` say otherwise."""
    values = {"provider": "twilio", "account_sid": ACCOUNT_SID, "from_address": "+14155550100", "secret": AUTH_TOKEN}
    values.update(fields)
    return connector_save(tenant=tenant, kind=kind, **values)
