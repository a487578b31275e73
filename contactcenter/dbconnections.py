"""Database connections of HTTP requests served over ASGI.

Django runs each ASGI request's synchronous code (middleware, the view, the response's close) on a thread of
that request's own (asgiref's ThreadSensitiveContext). A persistent connection (CONN_MAX_AGE) opened there is
never used again, yet stays open until the thread's locals are collected: under a burst of requests (a
provider's webhooks) PostgreSQL runs out of connections ("too many clients"). The websocket consumers are not
concerned (Channels runs their database calls on one long-lived thread, whose connection persists and keeps its
prepared statements). So at the end of each ASGI request, on its thread, its connections are closed.
"""

from __future__ import annotations

from typing import Any

from django.core.handlers.asgi import ASGIHandler
from django.db import connections


def close_request_connections(sender: Any, **_: Any) -> None:
    if isinstance(sender, type) and issubclass(sender, ASGIHandler):
        for connection in connections.all(initialized_only=True):
            if not connection.in_atomic_block:
                connection.close()
