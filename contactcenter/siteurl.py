"""The server's public base URL, for absolute links: SITE_URL when set, else the HOST/PORT daphne listens on.

Read by settings.py (SITE_URL, used by invite and password-reset e-mails and the widget snippet) and by the
demo seeding and the start-up script, so every absolute URL the project prints or sends names one address.
Pure functions of the environment: importable before Django is configured.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
# Addresses a server binds to but a browser cannot open.
_BIND_ALL = {"0.0.0.0", "::", "[::]", ""}  # noqa: S104 - compared against, never bound


def browser_host(host: str) -> str:
    """The host part of a URL for the address the server listens on (bind-all means this machine)."""
    host = host.strip()
    if host in _BIND_ALL:
        return DEFAULT_HOST
    if ":" in host and not host.startswith("["):  # an IPv6 literal needs brackets in a URL
        return f"[{host}]"
    return host


def server_address(
    host: str | None = None, port: int | str | None = None, environ: Mapping[str, str] | None = None
) -> tuple[str, int]:
    """(browser host, port) from the arguments, else HOST and PORT of the environment, else 127.0.0.1:8000."""
    env = os.environ if environ is None else environ
    raw_host = host or env.get("HOST", "").strip() or DEFAULT_HOST
    raw_port = str(port or env.get("PORT", "").strip() or DEFAULT_PORT)
    try:
        port_number = int(raw_port)
    except ValueError as exc:
        raise ValueError(f"PORT must be a whole number, not {raw_port!r}") from exc
    return browser_host(raw_host), port_number


def site_url(environ: Mapping[str, str] | None = None) -> str:
    """SITE_URL without its trailing slash when set, else http://HOST:PORT of the server itself."""
    env = os.environ if environ is None else environ
    configured = env.get("SITE_URL", "").strip().rstrip("/")
    if configured:
        return configured
    host, port = server_address(environ=env)
    return f"http://{host}:{port}"
