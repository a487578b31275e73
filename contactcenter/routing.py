"""The ASGI protocol router; websocket routes are collected from the apps that own them."""

from __future__ import annotations

from typing import Any

from channels.routing import ProtocolTypeRouter, URLRouter

from agents.routing import websocket_urlpatterns as agent_patterns
from chat.routing import websocket_urlpatterns as chat_patterns
from contactcenter import realtime


class BindEventLoop:
    """Tells `realtime` which loop serves this process, so committed events are sent from it (see there)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
        realtime.bind_event_loop()
        return await self.app(scope, receive, send)


def build_application(http_app: Any) -> BindEventLoop:
    return BindEventLoop(ProtocolTypeRouter({"http": http_app, "websocket": URLRouter(chat_patterns + agent_patterns)}))
