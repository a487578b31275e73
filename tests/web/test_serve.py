"""`make run`'s commands on a non-default port: one ready line, no access log by default, links on that port.

Runs the commands `make -n run PORT=...` lists (migrate, seed_demo, then the server) on a throwaway SQLite
file and a free port, with no SITE_URL, then signs in as the demo admin over HTTP.
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import free_port
from tests.test_settings_env import clean_env

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 60.0


def make_run_env(tmp_path: Path, port: int, **extra: str) -> dict[str, str]:
    # No SITE_URL, DATABASE_URL or REDIS_URL: the embedded mode a fresh clone gets.
    env = clean_env(HOST="127.0.0.1", PORT=str(port), SQLITE_PATH=str(tmp_path / "db.sqlite3"), **extra)
    env.pop("ACCESS_LOG", None)
    env.update(extra)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def make_run_commands(port: int) -> list[list[str]]:
    """migrate, seed_demo and the server, as the Makefile's `run` target would run them."""
    dry = subprocess.run(
        ["make", "-n", "run", "HOST=127.0.0.1", f"PORT={port}"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert dry.returncode == 0, dry.stderr
    commands = [shlex.split(line) for line in dry.stdout.splitlines() if "with_dotenv.py" in line]
    # The Makefile's interpreter is .venv's; this test's may be another (CI, a copy without .venv).
    commands = [[sys.executable if word.endswith("bin/python") else word for word in c] for c in commands]
    assert len(commands) == 3, dry.stdout
    return commands


def run_command(command: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    return result.stdout


class Served:
    """scripts/serve.py started as `make run` starts it; stopped by pid."""

    def __init__(self, command: list[str], env: dict[str, str], port: int, log: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self) -> str:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            for line in self.output().splitlines():
                if "ready on" in line:
                    return line
            assert self.process.poll() is None, f"the server exited:\n{self.output()}"
            time.sleep(0.1)
        raise AssertionError(f"no ready line in {READY_TIMEOUT:.0f} s:\n{self.output()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)


class Browser:
    """Cookies and CSRF tokens over urllib: enough to sign in and post a settings form."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        try:
            with self.opener.open(self.base + path, timeout=20) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def post_form(self, path: str, fields: dict[str, str]) -> tuple[int, str]:
        _, _, page = self.get(path)
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert token, page[:500]
        body = urllib.parse.urlencode({**fields, "csrfmiddlewaretoken": token.group(1).decode()}).encode()
        request = urllib.request.Request(self.base + path, data=body, headers={"Referer": self.base + path})
        with self.opener.open(request, timeout=20) as response:
            return response.status, response.read().decode()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, str]]:
    tmp_path = tmp_path_factory.mktemp("make-run")
    port = free_port()
    env = make_run_env(tmp_path, port)
    migrate, seed, serve = make_run_commands(port)
    run_command(migrate, env)
    seeded = run_command(seed, env)
    server = Served(serve, env, port, tmp_path / "serve.log")
    try:
        server.wait_ready()
        yield server, seeded
    finally:
        server.stop()


def test_make_run_prints_one_ready_line_with_the_real_port(served):
    server, seeded = served
    assert f"http://127.0.0.1:{server.port}/demo/" in seeded
    ready = [line for line in server.output().splitlines() if "ready on" in line]
    assert ready == [f"Switchboard is ready on http://127.0.0.1:{server.port}/"]


def test_settings_snippet_and_invite_links_follow_the_port(served):
    server, _ = served
    browser = Browser(server.url)
    status, _ = browser.post_form("/accounts/login/", {"username": "admin@demo.test", "password": "demo-admin-pass"})
    assert status == 200
    _, _, listing = browser.get("/settings/widgets/")
    widget_path = re.search(rb'href="(/settings/widgets/\d+/)"', listing)
    assert widget_path, listing[:1000]
    _, _, page = browser.get(widget_path.group(1).decode())
    assert f"http://127.0.0.1:{server.port}/static/widget/loader.js".encode() in page
    assert b":8000" not in page

    invite = {"email": "newcomer@demo.test", "first_name": "New", "last_name": "Comer", "role": "agent"}
    browser.post_form("/settings/agents/invite/", {**invite, "max_chats": "3"})
    deadline = time.monotonic() + READY_TIMEOUT
    while "newcomer@demo.test" not in server.output() and time.monotonic() < deadline:
        time.sleep(0.1)
    mail = server.output()  # the console e-mail backend prints to the server's output
    assert f"http://127.0.0.1:{server.port}/accounts/invite/" in mail
    assert "127.0.0.1:8000" not in mail


def test_requests_are_not_logged_by_default_and_the_favicon_is_served(served):
    server, _ = served
    browser = Browser(server.url)
    status, headers, body = browser.get("/favicon.ico")
    assert status == 200
    assert body.startswith(b"\x00\x00\x01\x00")  # an ICO file
    assert "icon" in headers["Content-Type"]
    assert browser.get("/healthz")[0] == 200
    assert browser.get("/static/css/app.css")[0] == 200
    assert browser.get("/no-such-page/")[0] == 404
    server.stop()  # flushes whatever it would have written
    output = server.output()
    assert '"GET /healthz' not in output
    assert "GET /static/" not in output
    assert "favicon" not in output


def test_access_log_on_demand(tmp_path):
    port = free_port()
    env = make_run_env(tmp_path, port, ACCESS_LOG="1")
    migrate, _, serve = make_run_commands(port)
    run_command(migrate, env)
    server = Served(serve, env, port, tmp_path / "serve.log")
    try:
        server.wait_ready()
        assert Browser(server.url).get("/healthz")[0] == 200
    finally:
        server.stop()
    assert '"GET /healthz' in server.output()
