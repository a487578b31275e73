"""Throwaway PostgreSQL and Redis servers on loopback for the test runner and the compose smoke (stdlib only).

Usage:

    with ThrowawayServices() as services:     # raises ServiceUnavailable when a binary is missing
        env["DATABASE_URL"] = services.database_url
        env["REDIS_URL"] = services.redis_url

Everything lives in one temporary directory that is removed on stop; every process is stopped by its pid.
`SWITCHBOARD_HIDE_SERVICES=postgres,redis` makes the lookups below pretend a binary is absent, so the
"missing service" paths can be exercised on a machine that has both.
"""

from __future__ import annotations

import atexit
import ctypes
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

DATABASE_NAME = "switchboard"
HIDE_VARIABLE = "SWITCHBOARD_HIDE_SERVICES"


class ServiceUnavailable(RuntimeError):
    """A binary the throwaway services need is not installed."""


class ServiceFailed(RuntimeError):
    """A throwaway service did not come up."""


def _hidden(name: str) -> bool:
    return name in {item.strip() for item in os.environ.get(HIDE_VARIABLE, "").split(",")}


def find_postgres_bin() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres: PATH first, then Debian's versioned directories."""
    if _hidden("postgres"):
        return None
    candidates: list[Path] = []
    on_path = shutil.which("initdb")
    if on_path:
        # Debian symlinks a few binaries into /usr/local/bin; the real directory has postgres and createdb too.
        candidates.append(Path(on_path).resolve().parent)
    # Newest version first: a machine that upgraded keeps the old binaries around.
    versioned = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    candidates.extend(Path(path) for path in versioned)
    for directory in candidates:
        if all((directory / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return directory
    return None


def _version_key(path: str) -> tuple[int, ...]:
    version = Path(path).parent.name
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def find_redis_server() -> str | None:
    if _hidden("redis"):
        return None
    return shutil.which("redis-server")


def missing_binaries() -> list[str]:
    """Human names of what is missing to run the throwaway services; empty when both can start."""
    missing = []
    if find_postgres_bin() is None:
        missing.append("PostgreSQL (initdb/pg_ctl)")
    if find_redis_server() is None:
        missing.append("redis-server")
    return missing


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(
    process: subprocess.Popen[bytes], *, first_signal: int = signal.SIGTERM, timeout: float = 10.0
) -> None:
    """Stops one child by its pid: `first_signal`, then SIGKILL when it outlives `timeout`."""
    stop_processes([process], first_signal=first_signal, timeout=timeout)


def stop_processes(
    processes: list[subprocess.Popen[bytes]], *, first_signal: int = signal.SIGTERM, timeout: float = 10.0
) -> None:
    """Signals every child at once (their shutdowns overlap), then SIGKILLs whoever outlives `timeout`."""
    alive = [process for process in processes if process.poll() is None]
    for process in alive:
        process.send_signal(first_signal)  # by pid; a no-op for a child already reaped
    deadline = time.monotonic() + timeout
    for process in alive:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def die_with_parent(signum: int) -> Callable[[], None] | None:
    """A Popen `preexec_fn` that makes the kernel send `signum` to the child when this process dies.

    The try/finally cleanup cannot run on SIGKILL (an OOM kill, a CI timeout killing the process group);
    this keeps a killed runner from leaving servers behind. Linux only; elsewhere None (no preexec_fn).
    """
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)  # loaded here: the child must not load libraries after fork
    parent = os.getpid()
    pr_set_pdeathsig = 1

    def preexec() -> None:
        libc.prctl(pr_set_pdeathsig, signum, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: nobody would stop us
            os.kill(os.getpid(), signum)

    return preexec


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class ThrowawayServices:
    """One PostgreSQL and one Redis in a temporary directory, on free loopback ports."""

    def __init__(self, *, database: str = DATABASE_NAME, owner: str = "postgres") -> None:
        self.database = database
        self.owner = owner
        self.root: Path | None = None
        self.postgres: subprocess.Popen[bytes] | None = None
        self.redis: subprocess.Popen[bytes] | None = None
        self.postgres_port = 0
        self.redis_port = 0
        self._postgres_log = Path(os.devnull)
        self._redis_log = Path(os.devnull)

    @property
    def database_url(self) -> str:
        return f"postgres://{self.owner}@127.0.0.1:{self.postgres_port}/{self.database}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def __enter__(self) -> ThrowawayServices:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        pg_bin = find_postgres_bin()
        redis_server = find_redis_server()
        missing = missing_binaries()
        if pg_bin is None or redis_server is None:
            raise ServiceUnavailable(" and ".join(missing) + " not found")
        self.root = Path(tempfile.mkdtemp(prefix="switchboard-services-"))
        # For callers that exit without stop() (an exception, sys.exit); a SIGKILL is covered by die_with_parent.
        atexit.register(self.stop)
        try:
            # Launch both before waiting for either: their startups overlap.
            self._launch_redis(redis_server)
            self._launch_postgres(pg_bin)
            self._wait_redis()
            self._wait_postgres(pg_bin)
        except BaseException:
            self.stop()
            raise

    # --- PostgreSQL ---------------------------------------------------------------------------------

    def _postgres_identity(self) -> tuple[int | None, int | None, list[int] | None]:
        """uid, gid and groups that drop root to `postgres` (initdb and postgres refuse to run as root)."""
        if os.geteuid() != 0:
            return None, None, None
        try:
            entry = pwd.getpwnam("postgres")
        except KeyError as exc:
            raise ServiceUnavailable("running as root and there is no `postgres` user to run PostgreSQL as") from exc
        return entry.pw_uid, entry.pw_gid, []

    def _launch_postgres(self, pg_bin: Path) -> None:
        assert self.root is not None
        uid, gid, groups = self._postgres_identity()
        pg_dir = self.root / "pg"
        pg_dir.mkdir()
        if uid is not None and gid is not None:
            # The temp root is 0700 and root's: let `postgres` traverse it and own its own directory.
            self.root.chmod(0o755)
            os.chown(pg_dir, uid, gid)
        data = pg_dir / "data"
        log = pg_dir / "initdb.log"
        env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
        with log.open("wb") as out:
            result = subprocess.run(
                [
                    str(pg_bin / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                    "--no-sync",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=pg_dir,
                check=False,
                user=uid,
                group=gid,
                extra_groups=groups,
            )
        if result.returncode != 0:
            raise ServiceFailed(f"initdb failed (exit {result.returncode}):\n{_tail(log)}")
        self.postgres_port = free_port()
        server_log = pg_dir / "postgres.log"
        self._postgres_log = server_log
        # postgres itself (not pg_ctl) is our child, so its pid is the one we stop; durability is off
        # because the data is thrown away, which makes the suite's many flushes cheap.
        with server_log.open("wb") as out:
            self.postgres = subprocess.Popen(
                [
                    str(pg_bin / "postgres"),
                    "-D",
                    str(data),
                    "-p",
                    str(self.postgres_port),
                    "-h",
                    "127.0.0.1",
                    "-k",
                    str(pg_dir),
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=200",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=pg_dir,
                start_new_session=True,  # a Ctrl-C in the terminal reaches pytest, not the database under it
                preexec_fn=die_with_parent(signal.SIGQUIT),  # SIGQUIT: PostgreSQL's immediate shutdown
                user=uid,
                group=gid,
                extra_groups=groups,
            )

    def _wait_postgres(self, pg_bin: Path) -> None:
        assert self.postgres is not None and self.root is not None
        deadline = time.monotonic() + 60
        pid_file = self.root / "pg" / "data" / "postmaster.pid"
        while True:
            if self.postgres.poll() is not None:
                raise ServiceFailed(f"postgres exited with {self.postgres.returncode}:\n{_tail(self._postgres_log)}")
            try:
                # Line 8 of postmaster.pid turns to "ready" once connections are accepted (what pg_ctl -w reads).
                lines = pid_file.read_text().splitlines()
                if len(lines) >= 8 and lines[7].strip() == "ready":
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise ServiceFailed(f"postgres did not become ready in 60 s:\n{_tail(self._postgres_log)}")
            time.sleep(0.05)
        connect = ["-h", "127.0.0.1", "-p", str(self.postgres_port), "-U", "postgres"]
        commands = [[str(pg_bin / "createdb"), *connect, "-O", self.owner, self.database]]
        if self.owner != "postgres":
            # A role named like production's (docker-compose.yml), so migrations run as the same owner.
            commands.insert(0, [str(pg_bin / "createuser"), *connect, "--createdb", self.owner])
        for command in commands:
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise ServiceFailed(f"{Path(command[0]).name} failed: {result.stderr.strip()}")

    # --- Redis --------------------------------------------------------------------------------------

    def _launch_redis(self, redis_server: str) -> None:
        assert self.root is not None
        redis_dir = self.root / "redis"
        redis_dir.mkdir()
        self.redis_port = free_port()
        self._redis_log = redis_dir / "redis.log"
        with self._redis_log.open("wb") as out:
            self.redis = subprocess.Popen(
                [
                    redis_server,
                    "--port",
                    str(self.redis_port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(redis_dir),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=redis_dir,
                start_new_session=True,
                preexec_fn=die_with_parent(signal.SIGTERM),
            )

    def _wait_redis(self) -> None:
        assert self.redis is not None
        deadline = time.monotonic() + 30
        while True:
            if self.redis.poll() is not None:
                raise ServiceFailed(f"redis-server exited with {self.redis.returncode}:\n{_tail(self._redis_log)}")
            try:
                with socket.create_connection(("127.0.0.1", self.redis_port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise ServiceFailed(f"redis-server did not answer PING in 30 s:\n{_tail(self._redis_log)}")
            time.sleep(0.05)

    # --- stop ---------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stops both servers by pid and removes the temporary directory; safe to call twice."""
        atexit.unregister(self.stop)
        if self.postgres is not None:
            # SIGINT is PostgreSQL's "fast" shutdown: it does not wait for clients to disconnect.
            stop_process(self.postgres, first_signal=signal.SIGINT, timeout=15)
            self.postgres = None
        if self.redis is not None:
            stop_process(self.redis, first_signal=signal.SIGTERM, timeout=10)
            self.redis = None
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
