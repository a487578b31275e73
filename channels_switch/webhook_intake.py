"""Twilio's webhooks under daphne, answered without Django's request machinery (an interface).

Under ASGI, Django runs each request's middleware and view on a thread of that request's own and closes its
database connection at the end (contactcenter/dbconnections.py), so every webhook opened a PostgreSQL
connection again: a burst of a provider's webhooks was taken at a fifth of the rate of a bare view answering
200 (bench/relay_load.py). Twilio's two URLs need nothing the middleware gives (sessions, CSRF, a page's CSP,
the JSON error shape). This intake, ahead of Django in the ASGI application, reads a form body within the same
limit and runs the same `webhooks.twilio_hook_answer` as the Django views, on the thread Channels runs the
sockets' database calls on, whose connection persists. Any other request, method or body type goes to Django.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.core.exceptions import TooManyFieldsSent
from django.http import QueryDict
from django.utils.encoding import escape_uri_path, iri_to_uri

from channels_switch.webhooks import MAX_BODY_BYTES, twilio_hook_answer

logger = logging.getLogger(__name__)

TWILIO_HOOK_PATH = re.compile(r"^/hooks/twilio/(?P<key>[^/]+)/(?P<hook>inbound|status)/$")
FORM_TYPE = "application/x-www-form-urlencoded"


class TwilioWebhookIntake:
    """ASGI middleware: Twilio's form posts to its webhook URLs are answered here; everything else by `app`."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        match = TWILIO_HOOK_PATH.match(scope["path"]) if scope["type"] == "http" else None
        headers = _headers(scope) if match else {}
        if match is None or scope["method"] != "POST" or _media_type(headers) != FORM_TYPE:
            await self.app(scope, receive, send)
            return
        status, content_type, body = await _answer(scope, receive, headers, hook=match["hook"], key=match["key"])
        if status == 0:  # the client went away before its body was read
            return
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", content_type.encode("latin-1")),
                    (b"content-length", str(len(body)).encode("ascii")),
                    (b"x-content-type-options", b"nosniff"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _headers(scope: dict[str, Any]) -> dict[str, str]:
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope.get("headers", [])}


def _media_type(headers: dict[str, str]) -> str:
    return headers.get("content-type", "").split(";", 1)[0].strip().lower()


TEXT = "text/plain; charset=utf-8"


async def _read_body(receive: Any, headers: dict[str, str]) -> bytes | int:
    """The request's body, or the status that answers it instead (413: too large; 0: the client left)."""
    length = headers.get("content-length", "")
    if length and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
        return 413
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return 0
        body += message.get("body", b"")
        if len(body) > MAX_BODY_BYTES:
            return 413
        if not message.get("more_body"):
            return bytes(body)


async def _answer(
    scope: dict[str, Any], receive: Any, headers: dict[str, str], *, hook: str, key: str
) -> tuple[int, str, bytes]:
    body = await _read_body(receive, headers)
    if body == 0:
        return 0, TEXT, b""
    if isinstance(body, int):
        return body, TEXT, b"Too large."
    try:
        params = QueryDict(body, encoding=settings.DEFAULT_CHARSET)
    except TooManyFieldsSent:
        return 400, TEXT, b"Too many fields."
    # The URL Twilio signed: the public address (SITE_URL) and the path, as Django's get_full_path() gives it.
    query = scope.get("query_string", b"").decode("latin-1")
    url = f"{settings.SITE_URL}{escape_uri_path(scope['path'])}" + (f"?{iri_to_uri(query)}" if query else "")
    client = scope.get("client") or ("?", 0)
    try:
        response = await database_sync_to_async(twilio_hook_answer)(
            hook=hook,
            key=key,
            url=url,
            params=params,
            signature=headers.get("x-twilio-signature", ""),
            client=client[0],
        )
    except Exception:
        logger.exception("twilio %s webhook: could not be answered", hook)
        return 500, TEXT, b"Server error."
    return response.status_code, response.get("Content-Type", TEXT), response.content
