"""Websocket routes of this app: the visitor socket, behind the same-origin check (the widget is our iframe)."""

from typing import Any

from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path

from chat.consumers import VisitorConsumer

websocket_urlpatterns: list[Any] = [
    path(
        "ws/visitor/conversations/<int:conversation_id>/",
        AllowedHostsOriginValidator(VisitorConsumer.as_asgi()),
        name="ws-visitor",
    ),
]
