"""Websocket routes of this app."""

from typing import Any

websocket_urlpatterns: list[Any] = []
