"""Websocket routes of this app: the agent console socket and the supervision page's, session-authenticated (the
project's router checks the Origin of every socket: contactcenter.origin.SameOriginOnly)."""

from typing import Any

from channels.auth import AuthMiddlewareStack
from django.urls import path

from agents.consumers import AgentConsumer
from agents.supervision_consumer import SupervisionConsumer

websocket_urlpatterns: list[Any] = [
    path("ws/agent/", AuthMiddlewareStack(AgentConsumer.as_asgi()), name="ws-agent"),
    path("ws/supervision/", AuthMiddlewareStack(SupervisionConsumer.as_asgi()), name="ws-supervision"),
]
