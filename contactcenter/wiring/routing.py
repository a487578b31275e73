"""The ASGI application: HTTP through Django (Twilio's webhooks just ahead of it), both sockets behind the one origin
check, on the server's loop."""

from __future__ import annotations

from typing import Any

from channels.routing import ProtocolTypeRouter, URLRouter

from agents.routing import websocket_urlpatterns as agent_patterns
from channels_switch.webhook_intake import TwilioWebhookIntake
from chat.routing import websocket_urlpatterns as chat_patterns
from contactcenter import realtime
from contactcenter.origin import SameOriginOnly
from contactcenter.sockets import OpeningTurns
from contactcenter.wiring import sweeper


class ServerLoop:
    """Runs on the server's event loop at every connection, socket or request: tells `realtime` which loop
    serves this process (committed events are sent from it) and, in embedded mode, starts the in-process
    sweeper once, with that loop (see sweeper.py). Both are no-ops after the first call."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
        realtime.bind_event_loop()
        sweeper.ensure_started()
        return await self.app(scope, receive, send)


def build_application(http_app: Any) -> ServerLoop:
    websocket = SameOriginOnly(OpeningTurns(URLRouter(chat_patterns + agent_patterns)))
    # Twilio's webhooks are taken ahead of Django's request machinery (channels_switch/webhook_intake.py).
    http = TwilioWebhookIntake(http_app)
    return ServerLoop(ProtocolTypeRouter({"http": http, "websocket": websocket}))
