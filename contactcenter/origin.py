"""The one origin check of every websocket handshake (the core: both sockets sit behind it, see wiring/routing.py)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

Origin = tuple[str, str, int]  # scheme, host, port: what "same origin" compares
DEFAULT_PORTS = {"http": 80, "https": 443}


def parse_origin(value: str) -> Origin | None:
    """`scheme://host[:port]` as (scheme, host, port) with the scheme's default port filled in; None if not one."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme]


def _header(scope: Any, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _request_scheme(scope: Any) -> str:
    """http or https: what the browser used, as the socket's own scheme or a trusted TLS proxy says."""
    proxy = settings.SECURE_PROXY_SSL_HEADER
    if proxy:
        header, secure_value = proxy
        name = header.lower().removeprefix("http_").replace("_", "-").encode("latin-1")
        forwarded = _header(scope, name)
        if forwarded is not None:
            return "https" if forwarded.split(",")[0].strip() == secure_value else "http"
    return "https" if scope.get("scheme") in ("wss", "https") else "http"


def own_origins(scope: Any) -> set[Origin]:
    """The server's own origins for this handshake: the one the browser addressed (scheme + Host header, when the
    host is one of ALLOWED_HOSTS), SITE_URL's, and CSRF_TRUSTED_ORIGINS without wildcards."""
    origins: set[Origin] = set()
    host = _header(scope, b"host")
    if host and validate_host(split_domain_port(host)[0], settings.ALLOWED_HOSTS):
        addressed = parse_origin(f"{_request_scheme(scope)}://{host}")
        if addressed is not None:
            origins.add(addressed)
    for configured in [settings.SITE_URL, *settings.CSRF_TRUSTED_ORIGINS]:
        if "*" not in configured:
            parsed = parse_origin(configured)
            if parsed is not None:
                origins.add(parsed)
    return origins


def _wildcard_match(origin: Origin) -> bool:
    """CSRF_TRUSTED_ORIGINS entries like `https://*.example.com`: same scheme and port, any subdomain."""
    scheme, host, port = origin
    for configured in settings.CSRF_TRUSTED_ORIGINS:
        if "://*." not in configured:
            continue
        pattern = parse_origin(configured.replace("://*.", "://", 1))
        if pattern is not None and pattern[0] == scheme and pattern[2] == port and host.endswith("." + pattern[1]):
            return True
    return False


def origin_allowed(scope: Any) -> bool:
    """The handshake's Origin is one of the server's own origins: scheme, host and port all equal."""
    raw = _header(scope, b"origin")
    origin = parse_origin(raw) if raw else None
    if origin is None:
        return False
    return origin in own_origins(scope) or _wildcard_match(origin)


class SameOriginOnly:
    """Refuses (HTTP 403 at the handshake) a websocket whose Origin is not one of the server's own origins.

    Both sockets are opened by pages Switchboard serves (the console; the widget runs in Switchboard's own
    iframe), so a socket from any other origin, even another port or scheme of the same host name, is a
    page of someone else's riding on the browser's cookies (docs/protocol.md §1).
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not origin_allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.app(scope, receive, send)
