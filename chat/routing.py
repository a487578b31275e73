"""Websocket routes of this app: the visitor socket (the widget is our iframe: the project's router lets only
our own origins open it, contactcenter.origin.SameOriginOnly)."""

from typing import Any

from django.urls import path

from chat.consumers import VisitorConsumer

websocket_urlpatterns: list[Any] = [
    path(
        "ws/visitor/conversations/<int:conversation_id>/",
        VisitorConsumer.as_asgi(),
        name="ws-visitor",
    ),
]
