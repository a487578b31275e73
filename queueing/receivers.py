"""Queueing's answers to what the apps below it announce (connected in QueueingConfig.ready)."""

from __future__ import annotations

from typing import Any

from chat.models import Message
from queueing.services.routing import waiting_preview_publish


def on_waiting_message_stored(sender: type[Message], *, message: Message, **kwargs: Any) -> None:
    waiting_preview_publish(message=message)
