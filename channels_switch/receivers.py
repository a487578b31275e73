"""channels_switch's answers to what the apps below it announce (connected in ChannelsSwitchConfig.ready)."""

from __future__ import annotations

from typing import Any

from channels_switch.services import delivery_create
from chat.models import Attachment, Message


def on_outbound_message_stored(
    sender: type[Message], *, message: Message, attachments: list[Attachment], relay: object = None, **kwargs: Any
) -> None:
    delivery_create(message=message, attachments=attachments, relay=relay)
