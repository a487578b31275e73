"""A loopback stand-in for Twilio's Messages API, for processes a test cannot patch (a Celery worker, `make bench`).

It speaks the shapes of the real API (docs: shared/PROVIDERS.md): `POST /2010-04-01/Accounts/{sid}/Messages.json`
(form-encoded, HTTP basic auth with the account SID and auth token) answers 201 with `sid`, `status`,
`num_segments`; `GET` on the same path lists what it holds, filtered by `To` and `From`, as Twilio's paged
list. A script of plans decides each POST in turn: "accept", an HTTP status to fail with, "hang" (hold the
request without taking the message) or "accept-hang" (take the message, then hold the answer), so a test
can kill a worker mid-call on either side of the provider's commit.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Held:
    sid: str
    to: str
    from_: str
    body: str
    created: datetime = field(default_factory=lambda: datetime.now(UTC))

    def as_json(self, account_sid: str) -> dict[str, Any]:
        return {
            "sid": self.sid,
            "account_sid": account_sid,
            "to": self.to,
            "from": self.from_,
            "body": self.body,
            "status": "queued",
            "num_segments": "1",
            "date_created": self.created.strftime("%a, %d %b %Y %H:%M:%S +0000"),
        }


class FakeTwilio:
    def __init__(self, account_sid: str, auth_token: str) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.held: list[Held] = []
        self.posts = 0  # POSTs received (whatever became of them)
        self.plans: list[str | int] = []
        self.release = threading.Event()  # lets held requests go (at teardown)
        self.arrived = threading.Event()  # set when a "hang" plan has taken hold of a request
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def script(self, plans: Iterable[str | int]) -> None:
        with self._lock:
            self.plans = list(plans)

    def start(self) -> FakeTwilio:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()

    def copies_to(self, to: str) -> list[Held]:
        with self._lock:
            return [held for held in self.held if held.to == to]

    def _next_plan(self) -> str | int:
        with self._lock:
            self.posts += 1
            return self.plans.pop(0) if self.plans else "accept"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self
        path = f"/2010-04-01/Accounts/{fake.account_sid}/Messages.json"

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self, status: int, payload: dict[str, Any]) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _authorised(self) -> bool:
                expected = base64.b64encode(f"{fake.account_sid}:{fake.auth_token}".encode()).decode()
                if self.headers.get("Authorization") == f"Basic {expected}":
                    return True
                self._answer(401, {"code": 20003, "message": "Authenticate", "status": 401})
                return False

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path != path:
                    self._answer(404, {"code": 20404, "message": "Not found", "status": 404})
                    return
                if not self._authorised():
                    return
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                with fake._lock:
                    found = [
                        h.as_json(fake.account_sid)
                        for h in reversed(fake.held)
                        if h.to == query.get("To", h.to) and h.from_ == query.get("From", h.from_)
                    ]
                size = int(query.get("PageSize", "50"))
                self._answer(
                    200,
                    {"messages": found[:size], "next_page_uri": None, "page": 0, "page_size": size, "uri": path},
                )

            def do_POST(self) -> None:
                if urlsplit(self.path).path != path:
                    self._answer(404, {"code": 20404, "message": "Not found", "status": 404})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if not self._authorised():
                    return
                plan = fake._next_plan()
                if isinstance(plan, int):
                    self._answer(plan, {"code": 20000 + plan, "message": f"Planned {plan}", "status": plan})
                    return
                if plan == "hang":
                    fake.arrived.set()
                    fake.release.wait()
                    return
                held = Held(
                    sid="SM" + secrets.token_hex(16),
                    to=form.get("To", ""),
                    from_=form.get("From", form.get("MessagingServiceSid", "")),
                    body=form.get("Body", ""),
                )
                with fake._lock:
                    fake.held.append(held)
                if plan == "accept-hang":
                    fake.arrived.set()
                    fake.release.wait()
                    return
                self._answer(201, held.as_json(fake.account_sid))

        return Handler
