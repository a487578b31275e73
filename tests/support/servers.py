"""Real server processes for tests: daphne servers and a Celery worker running against the pytest test database.

Use these when a test must cross a process boundary: websocket fan-out between two daphne processes over
the Redis channel layer, Playwright driving a real server, a task going through the real broker. Data must be
committed for a subprocess to see it, so such tests use `transactional_db` (or
`@pytest.mark.django_db(transaction=True)`) and carry the markers of the services they need, e.g.:

    pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

    def test_fan_out(daphne_pair):
        first, second = daphne_pair
        ...connect to f"{first.ws_url}/ws/agent/" and f"{second.ws_url}/ws/agent/"...

Fixtures (session-scoped: each process starts once per run and is stopped by pid at the end, before
pytest-django drops the test database):

    daphne_server   one DaphneServer
    daphne_pair     a tuple of two independent DaphneServers on the same PostgreSQL + Redis
    celery_worker   a CeleryWorker consuming the `switchboard` queue (threads pool, concurrency 2)

Helpers:

    free_port() -> int                                a free TCP port on 127.0.0.1
    database_url(settings_dict) -> str                a DATABASE_URL for Django's connection settings
    DaphneServer(env_overrides=None)                  .start() .stop() .url .ws_url .pid .log_path .log_tail()
    CeleryWorker(env_overrides=None)                  .start() .stop() .pid .log_path .hostname .log_tail()
    start_all(servers) / stop_all(servers)            start several at once (overlapping startups); stop
                                                      them and wait until their DB sessions are gone

A server's environment is this process's environment plus DATABASE_URL (the *test* database), REDIS_URL,
DEBUG=1, ALLOWED_HOSTS=127.0.0.1,localhost and SITE_URL (its own URL), then `env_overrides`. Every process
also dies with pytest (atexit, plus the kernel's parent-death signal when pytest itself is killed), so a
crashed session leaves nothing listening. Logs live in a temporary directory removed at exit; a failed start
raises ServerFailed with the log's tail.
"""

from __future__ import annotations

import atexit
import ctypes
import itertools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
APPLICATION_NAME = "switchboard-test-server"

_live: set[_Process] = set()
_log_dir: Path | None = None
_counter = itertools.count(1)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> Any:
    """Popen `preexec_fn`: the kernel SIGTERMs the child when pytest dies, even by SIGKILL (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)  # loaded before fork: the child must not load libraries
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def database_url(settings_dict: Mapping[str, Any]) -> str:
    """The DATABASE_URL naming the same database as Django's `connection.settings_dict`."""
    engine = str(settings_dict["ENGINE"])
    name = str(settings_dict["NAME"])
    if "sqlite" in engine:
        if name == ":memory:" or name.startswith("file:memorydb") or "mode=memory" in name:
            raise RuntimeError(
                "a subprocess cannot see an in-memory SQLite test database: mark the test "
                "@pytest.mark.postgres so it runs only when DATABASE_URL is PostgreSQL"
            )
        return f"sqlite:///{Path(name).resolve()}"
    if "postgresql" not in engine:
        raise RuntimeError(f"no URL scheme known for database engine {engine}")
    user = quote(str(settings_dict.get("USER") or ""), safe="")
    password = quote(str(settings_dict.get("PASSWORD") or ""), safe="")
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = str(settings_dict.get("HOST") or "127.0.0.1")
    port = str(settings_dict.get("PORT") or "5432")
    return f"postgres://{credentials}{host}:{port}/{quote(name, safe='')}"


def _test_database_url(application_name: str = "") -> str:
    from django.db import connection

    url = database_url(connection.settings_dict)
    # Tags the servers' sessions, so teardown can wait for exactly those to end (see stop_all).
    return f"{url}?application_name={application_name}" if application_name and "postgres" in url else url


def _wait_for_server_sessions_to_end(timeout: float = 10.0) -> None:
    """A stopped server's PostgreSQL sessions end a moment after it exits; until they have, pytest-django's
    DROP DATABASE of the test database fails ("is being accessed by other users")."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [APPLICATION_NAME])
            (count,) = cursor.fetchone()
        if not count:
            return
        time.sleep(0.05)


QUIESCE_LIMIT = 15.0
QUIET_CHECKS = 5


def servers_quiesce(limit: float = QUIESCE_LIMIT) -> None:
    """Until no other session on the test database has been mid-statement or mid-transaction for
    QUIET_CHECKS checks in a row, 50 ms apart (bounded by `limit`). A test's last socket close reaches the
    server a moment after the test ends; the flush that follows must not truncate under its writes."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    deadline = time.monotonic() + limit
    quiet = 0
    while quiet < QUIET_CHECKS and time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND state IN ('active', 'idle in transaction')"
            )
            (busy,) = cursor.fetchone()
        quiet = 0 if busy else quiet + 1
        time.sleep(0.05)


def _logs() -> Path:
    global _log_dir
    if _log_dir is None:
        _log_dir = Path(tempfile.mkdtemp(prefix="switchboard-test-servers-"))
    return _log_dir


@atexit.register
def _kill_leftovers() -> None:
    for process in list(_live):
        process.stop(timeout=3)
    if _log_dir is not None:
        for path in _log_dir.iterdir():
            path.unlink(missing_ok=True)
        _log_dir.rmdir()


class ServerFailed(RuntimeError):
    """A test server did not come up; the message carries the end of its log."""


class _Process:
    """One child process with its own log file, stopped by pid (SIGTERM, then SIGKILL)."""

    kind = "process"

    def __init__(self, env_overrides: Mapping[str, str] | None = None) -> None:
        self.env_overrides = dict(env_overrides or {})
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = _logs() / f"{self.kind}-{next(_counter)}.log"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError(f"{self.kind} is not running")
        return self.process.pid

    def base_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("REQUIRE_SERVICES", None)
        env.pop("PYTEST_CURRENT_TEST", None)
        env.update(
            DATABASE_URL=_test_database_url(application_name=APPLICATION_NAME),
            DEBUG="1",
            ALLOWED_HOSTS="127.0.0.1,localhost",
            PYTHONUNBUFFERED="1",  # the log is read while the process runs
        )
        return env

    def _spawn(self, command: list[str], env: Mapping[str, str]) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches pytest, which then stops us in order
                preexec_fn=_die_with_parent(),
            )
        _live.add(self)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log yet)"

    def _check_alive(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise ServerFailed(
                f"{self.kind} exited with {self.process.returncode} while starting; log {self.log_path}:\n"
                f"{self.log_tail()}"
            )

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM, then SIGKILL after `timeout` seconds; safe to call twice."""
        _live.discard(self)
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        try:
            os.kill(process.pid, signal.SIGTERM)
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
        except ProcessLookupError:
            pass

    def __enter__(self) -> _Process:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        self.launch()
        self.wait_ready()

    def launch(self) -> None:
        raise NotImplementedError

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        raise NotImplementedError


class DaphneServer(_Process):
    """`python -m daphne contactcenter.asgi:application` on a free loopback port, ready once /healthz is 200."""

    kind = "daphne"

    def __init__(self, env_overrides: Mapping[str, str] | None = None) -> None:
        super().__init__(env_overrides)
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def launch(self) -> None:
        """Starts the process without waiting; `wait_ready()` waits. Lets several servers boot at once."""
        self.port = free_port()
        env = self.base_env()
        env["SITE_URL"] = self.url
        env.update(self.env_overrides)
        command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port)]
        self._spawn([*command, "contactcenter.asgi:application"], env)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        last_error = "no answer"
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as response:
                    if response.status == 200:
                        return
                    last_error = f"HTTP {response.status}"
            except urllib.error.HTTPError as exc:
                last_error = f"HTTP {exc.code}: {exc.read(300)!r}"
            except (urllib.error.URLError, OSError) as exc:
                last_error = str(exc)
            time.sleep(0.1)
        self.stop()
        raise ServerFailed(
            f"daphne on {self.url} did not answer /healthz with 200 in {timeout:.0f} s ({last_error}); "
            f"log {self.log_path}:\n{self.log_tail()}"
        )


class CeleryWorker(_Process):
    """`celery -A contactcenter worker -Q switchboard`, ready once the broker relays its answer to a ping."""

    kind = "celery"

    def __init__(self, env_overrides: Mapping[str, str] | None = None) -> None:
        super().__init__(env_overrides)
        # A unique node name, so the ping below can only be answered by this worker.
        self.hostname = f"sbtest-{os.getpid()}-{next(_counter)}@localhost"

    def launch(self) -> None:
        env = self.base_env()
        if not env.get("REDIS_URL") and not env.get("CELERY_BROKER_URL"):
            raise RuntimeError("a Celery worker needs a broker: mark the test @pytest.mark.celery (needs REDIS_URL)")
        env.update(self.env_overrides)
        worker = ["-m", "celery", "-A", "contactcenter", "worker", "-l", "info", "-n", self.hostname]
        pool = ["--pool", "threads", "--concurrency", "2", "-Q", "switchboard"]
        # Mingle and gossip only talk to sibling workers, and mingle alone costs seconds at startup.
        quiet = ["--without-mingle", "--without-gossip"]
        self._spawn([sys.executable, *worker, *pool, *quiet], env)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        # The same broadcast `celery -A contactcenter inspect ping -d NAME` sends, without paying for a
        # second interpreter: this process's Celery app is configured on the same broker.
        from contactcenter.celery import app

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            if "ready." in self.log_tail(200):
                replies = app.control.ping(destination=[self.hostname], timeout=1.0)
                if any(self.hostname in reply for reply in replies):
                    return
            time.sleep(0.1)
        self.stop()
        raise ServerFailed(
            f"celery worker {self.hostname} did not answer a ping in {timeout:.0f} s; log {self.log_path}:\n"
            f"{self.log_tail()}"
        )


def start_all(servers: list[_Process]) -> None:
    """Launches every server, then waits for each: their startups overlap. On failure stops them all."""
    try:
        for server in servers:
            server.launch()
        for server in servers:
            server.wait_ready()
    except BaseException:
        stop_all(servers)
        raise


def stop_all(servers: list[_Process]) -> None:
    """Stops every server by pid, then waits until their database sessions are gone (needs DB access)."""
    for server in servers:
        server.stop()
    _wait_for_server_sessions_to_end()


@pytest.fixture(scope="session")
def daphne_server(django_db_setup: None, django_db_blocker: Any) -> Iterator[DaphneServer]:
    server = DaphneServer()
    with django_db_blocker.unblock():
        start_all([server])
    yield server
    with django_db_blocker.unblock():
        stop_all([server])


@pytest.fixture(scope="session")
def daphne_pair(django_db_setup: None, django_db_blocker: Any) -> Iterator[tuple[DaphneServer, DaphneServer]]:
    pair = (DaphneServer(), DaphneServer())
    with django_db_blocker.unblock():
        start_all(list(pair))
    yield pair
    with django_db_blocker.unblock():
        stop_all(list(pair))


@pytest.fixture(scope="session")
def celery_worker(django_db_setup: None, django_db_blocker: Any) -> Iterator[CeleryWorker]:
    worker = CeleryWorker()
    with django_db_blocker.unblock():
        start_all([worker])
    yield worker
    with django_db_blocker.unblock():
        stop_all([worker])
