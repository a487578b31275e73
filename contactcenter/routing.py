"""The ASGI protocol router; websocket routes are collected from the apps that own them."""

from __future__ import annotations

from typing import Any

from channels.routing import ProtocolTypeRouter, URLRouter

from agents.routing import websocket_urlpatterns as agent_patterns
from chat.routing import websocket_urlpatterns as chat_patterns


def build_application(http_app: Any) -> ProtocolTypeRouter:
    return ProtocolTypeRouter({"http": http_app, "websocket": URLRouter(chat_patterns + agent_patterns)})
