"""Websocket routes of this app: the agent console socket, session-authenticated behind an origin check."""

from typing import Any

from channels.auth import AuthMiddlewareStack
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path

from agents.consumers import AgentConsumer

websocket_urlpatterns: list[Any] = [
    path("ws/agent/", AllowedHostsOriginValidator(AuthMiddlewareStack(AgentConsumer.as_asgi())), name="ws-agent"),
]
