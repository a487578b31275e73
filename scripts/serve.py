#!/usr/bin/env python3
"""Runs daphne as `make run` does: one "ready on URL" line once it listens; per-request access log only on demand.

    serve.py [DAPHNE ARGS...]      e.g. serve.py -b 127.0.0.1 -p 8000 contactcenter.asgi:application

Daphne's own start-up says nothing at the log level we run it with, and its access log (one line per static
file, 304 and websocket handshake) would scroll the demo's sign-ins and API key away: it is written only
when ACCESS_LOG is 1/true/yes/on (to stdout, as `daphne -v 1` does).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from daphne.cli import CommandLineInterface  # noqa: E402 - after the path line: run as a script
from daphne.server import Server  # noqa: E402

from contactcenter.siteurl import browser_host  # noqa: E402

TRUE = {"1", "true", "yes", "on"}


def access_log_on(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    return environ.get("ACCESS_LOG", "").strip().lower() in TRUE


class ReadyServer(Server):
    """Daphne's server, quiet unless asked, announcing each address it actually listens on."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if not access_log_on():
            kwargs["action_logger"] = None
        super().__init__(*args, **kwargs)

    def listen_success(self, port: Any) -> None:
        super().listen_success(port)
        address = port.getHost()
        if hasattr(address, "host") and hasattr(address, "port"):
            url = f"http://{browser_host(str(address.host))}:{address.port}/"
            public = os.environ.get("SITE_URL", "").strip()
            extra = f" (public address {public})" if public and public.rstrip("/") + "/" != url else ""
            print(f"Switchboard is ready on {url}{extra}", flush=True)


class ReadyCommandLineInterface(CommandLineInterface):
    server_class = ReadyServer


if __name__ == "__main__":
    ReadyCommandLineInterface().run(sys.argv[1:])
