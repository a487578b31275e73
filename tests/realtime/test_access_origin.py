"""The websocket Origin check compares scheme, host and port with the server's own origins (docs/protocol.md §1)."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.exceptions import InvalidStatus

from contactcenter.origin import origin_allowed
from tests.realtime.test_protocol import WAIT, make_setup, open_conversation, open_socket, session_cookie, visitor_token

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def test_only_the_servers_own_scheme_host_and_port_open_a_socket(daphne_server):
    setup = make_setup()
    conversation = open_conversation(setup)
    token = visitor_token(setup.widget, conversation.visitor_id)
    cookie = session_cookie(setup.agents[0])
    own = daphne_server.url  # http://127.0.0.1:<port>
    other_port = f"http://127.0.0.1:{daphne_server.port + 1}"
    other_scheme = f"https://127.0.0.1:{daphne_server.port}"
    default_port = "http://127.0.0.1"
    other_name = f"http://localhost:{daphne_server.port}"  # an allowed host name, but not the one addressed

    async def status(path: str, origin: str) -> int:
        try:
            ws = await open_socket(daphne_server, path, cookie=cookie, origin=origin)
        except InvalidStatus as exc:
            return exc.response.status_code
        hello = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
        await ws.close()
        return 101 if hello["type"] == "hello" else 0

    async def scenario() -> dict[str, list[int]]:
        results: dict[str, list[int]] = {}
        for path in (f"/ws/visitor/conversations/{conversation.pk}/?token={token}", "/ws/agent/"):
            results[path.split("/")[2]] = [
                await status(path, origin) for origin in (other_port, other_scheme, default_port, other_name, own)
            ]
        return results

    assert asyncio.run(scenario()) == {"visitor": [403, 403, 403, 403, 101], "agent": [403, 403, 403, 403, 101]}


def _scope(origin: str | None, host: str = "chat.example.com", scheme: str = "ws", **headers: str) -> dict:
    pairs = [(b"host", host.encode())] + [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    if origin is not None:
        pairs.append((b"origin", origin.encode()))
    return {"type": "websocket", "scheme": scheme, "headers": pairs}


def test_the_origin_rule_behind_tls_and_with_configured_origins(settings):
    settings.ALLOWED_HOSTS = ["chat.example.com"]
    settings.SITE_URL = "https://switchboard.example.com"
    settings.CSRF_TRUSTED_ORIGINS = ["https://*.example.org", "https://admin.example.net:8443"]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # Behind the TLS proxy the browser used https: only that scheme is same-origin.
    assert origin_allowed(_scope("https://chat.example.com", x_forwarded_proto="https"))
    assert origin_allowed(_scope("https://chat.example.com:443", x_forwarded_proto="https"))
    assert not origin_allowed(_scope("http://chat.example.com", x_forwarded_proto="https"))
    assert origin_allowed(_scope("https://chat.example.com", scheme="wss"))
    assert not origin_allowed(_scope("https://chat.example.com"))  # plain ws: the browser used http
    # Configured origins, exactly (port included), and wildcard subdomains of CSRF_TRUSTED_ORIGINS.
    assert origin_allowed(_scope("https://switchboard.example.com"))
    assert not origin_allowed(_scope("https://switchboard.example.com:8443"))
    assert origin_allowed(_scope("https://admin.example.net:8443"))
    assert not origin_allowed(_scope("https://admin.example.net"))
    assert origin_allowed(_scope("https://shop.example.org"))
    assert not origin_allowed(_scope("http://shop.example.org"))
    # A Host that is not allowed makes nothing same-origin; no Origin, or a malformed one, is refused.
    assert not origin_allowed(_scope("http://evil.example:80", host="evil.example"))
    assert not origin_allowed(_scope(None))
    assert not origin_allowed(_scope("null"))
    assert not origin_allowed(_scope("http://chat.example.com:99999"))
