#!/usr/bin/env python3
"""Runs docker-compose.yml's migrate, web, worker and beat outside Docker: same commands, same environment.

There is no Docker engine on CI, so this proves the production shape another way. It reads the compose
file, interpolates `${VAR:-default}` as compose does (with a generated SECRET_KEY and POSTGRES_PASSWORD, as
a real .env would give), points the `postgres`/`redis` host names at throwaway servers on 127.0.0.1, maps the
container paths (MEDIA_ROOT, STATIC_ROOT, /tmp) into a temporary directory and web's port 8000 to free ports,
and then checks:
  - settings refuse to start without SECRET_KEY (DEBUG=0 is in the compose environment);
  - migrate exits 0, collectstatic (the Dockerfile's build step) exits 0;
  - every web replica passes its compose healthcheck (/healthz answers 200);
  - the worker passes its healthcheck (`celery -A contactcenter inspect ping -d celery@$HOSTNAME`);
  - beat is alive, logged "Sending due task ... contactcenter.tasks.sweep", and passes its healthcheck;
  - the worker ran that sweep (beat -> Redis -> worker, end to end).
Everything is stopped by pid and the temporary directory removed, also on Ctrl-C or SIGTERM.
Needs the project's virtualenv (PyYAML reads the compose file); the servers come from scripts/testservices.py.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from testservices import ServiceFailed, ServiceUnavailable, ThrowawayServices, free_port, stop_processes

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
APP_SERVICES = ("migrate", "web", "worker", "beat")
SERVICE_PORTS = {"postgres": 5432, "redis": 6379}
TIMEOUT = 90.0

_INTERPOLATION = re.compile(
    r"\$\$|\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


class SmokeFailed(RuntimeError):
    pass


def log(message: str) -> None:
    # stdout may go away (`| head`, a closed CI log): the cleanup in `finally` must still run.
    with suppress(OSError):
        print(f"[compose_smoke] {message}", flush=True)


@contextmanager
def phase(name: str) -> Iterator[None]:
    started = time.monotonic()
    log(f"{name} ...")
    try:
        yield
    finally:
        log(f"{name}: {time.monotonic() - started:.1f}s")


def interpolate(value: str, variables: Mapping[str, str]) -> str:
    """Compose's interpolation: ${X}, ${X:-default}, ${X-default}, ${X:?error}, ${X?error}, $X and $$."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("braced") or match.group("bare")
        op, arg = match.group("op") or "", match.group("arg") or ""
        value = variables.get(name, "")
        # With a colon, empty counts as unset (compose's rule).
        missing = (not value) if op.startswith(":") else (name not in variables)
        if op and missing:
            if op.endswith("?"):
                raise SmokeFailed(f"compose requires {name}: {arg}")
            return arg
        return value

    return _INTERPOLATION.sub(replace, value)


def as_env(environment: Any) -> dict[str, str]:
    """A service's `environment`, in either of compose's forms (mapping or list of NAME=value)."""
    if isinstance(environment, dict):
        return {str(k): "" if v is None else str(v) for k, v in environment.items()}
    result = {}
    for item in environment or []:
        name, _, value = str(item).partition("=")
        result[name] = value
    return result


def as_argv(command: Any) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


@dataclass
class Running:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str]
    port: int = 0

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class ComposeSmoke:
    def __init__(self, compose: dict[str, Any]) -> None:
        self.compose = compose
        self.services = compose["services"]
        self.root = Path(tempfile.mkdtemp(prefix="switchboard-compose-smoke-"))
        self.tmp = self.root / "tmp"
        self.tmp.mkdir()
        self.db: ThrowawayServices | None = None
        self.running: list[Running] = []
        # What a production .env would hold: secrets compose refuses to start without.
        self.variables = {"SECRET_KEY": secrets.token_urlsafe(50), "POSTGRES_PASSWORD": secrets.token_urlsafe(16)}
        self.path_map: dict[str, str] = {}
        self.bin_dir = Path(sys.executable).parent

    # --- translation of the compose file to this machine ---------------------------------------------

    def start_databases(self) -> None:
        url = urlsplit(interpolate(self.raw_env("web")["DATABASE_URL"], self.variables))
        self.db = ThrowawayServices(database=url.path.lstrip("/"), owner=url.username or "postgres")
        self.db.start()
        self.host_ports = {"postgres": self.db.postgres_port, "redis": self.db.redis_port}
        log(f"PostgreSQL on 127.0.0.1:{self.db.postgres_port}, Redis on 127.0.0.1:{self.db.redis_port}")

    def raw_env(self, service: str) -> dict[str, str]:
        return as_env(self.services[service].get("environment"))

    def service_env(self, service: str) -> dict[str, str]:
        """The container's environment for `service`, translated to this machine."""
        compose_env = {k: interpolate(v, self.variables) for k, v in self.raw_env(service).items()}
        for name in ("MEDIA_ROOT", "STATIC_ROOT"):
            if name in compose_env and compose_env[name] not in self.path_map:
                local = self.root / name.lower()
                local.mkdir(exist_ok=True)
                self.path_map[compose_env[name]] = str(local)
        self.path_map.setdefault("/tmp", str(self.tmp))  # noqa: S108 (a container path being mapped away)
        translated = {k: self.translate(v) for k, v in compose_env.items()}
        # The image's own environment (Dockerfile ENV), then what compose sets.
        base = {
            "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(self.root),
            "LANG": "C.UTF-8",
            "TMPDIR": str(self.tmp),
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "HOSTNAME": socket.gethostname(),
        }
        return {**base, **translated}

    def translate(self, value: str) -> str:
        """Compose service host names -> the throwaway servers; container paths -> the temp directory."""
        for host, container_port in SERVICE_PORTS.items():
            value = re.sub(
                rf"(?<=[@/]){host}(:{container_port})?(?=[/:]|$)", f"127.0.0.1:{self.host_ports[host]}", value
            )
        for container_path, local in sorted(self.path_map.items(), key=lambda item: -len(item[0])):
            if value == container_path or value.startswith(container_path + "/"):
                return local + value[len(container_path) :]
        return value

    def argv(self, command: list[str], port_map: Mapping[str, str] | None = None) -> list[str]:
        """A compose command for this machine: the venv's executables, loopback, mapped ports and paths."""
        program, *args = command
        if program == "python":
            program = sys.executable
        elif (self.bin_dir / program).exists():
            program = str(self.bin_dir / program)
        result = [program]
        for arg in args:
            arg = interpolate(arg, self.variables)
            arg = "127.0.0.1" if arg == "0.0.0.0" else arg  # noqa: S104 (rewritten away from all interfaces)
            for container_port, local_port in (port_map or {}).items():
                arg = arg if arg != container_port else local_port
                arg = arg.replace(f":{container_port}/", f":{local_port}/")
            result.append(self.translate(arg))
        return result

    def container_port(self, service: str) -> str:
        ports = self.services[service].get("ports") or ["8000"]
        return interpolate(str(ports[0]), self.variables).rsplit(":", 1)[-1].split("/")[0]

    # --- processes ----------------------------------------------------------------------------------

    def run_once(self, name: str, argv: list[str], env: dict[str, str], timeout: float = 300) -> None:
        log(f"$ {shlex.join(argv)}")
        result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            raise SmokeFailed(f"{name} exited {result.returncode}:\n{(result.stdout + result.stderr)[-3000:]}")

    def launch(self, name: str, argv: list[str], env: dict[str, str], port: int = 0) -> Running:
        log_path = self.root / f"{name}.log"
        log(f"$ {shlex.join(argv)}")
        with log_path.open("wb") as out:
            process = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        running = Running(name, process, log_path, env, port)
        self.running.append(running)
        return running

    def healthcheck(self, service: str, running: Running) -> list[str]:
        """The compose healthcheck of `service`, as an argv for this machine."""
        test = as_argv(self.services[service]["healthcheck"]["test"])
        port_map = {self.container_port(service): str(running.port)} if running.port else {}
        if test[0] == "CMD-SHELL":
            # argv() interpolates once, so `$$HOSTNAME` reaches the shell as `$HOSTNAME`, as under compose.
            return ["/bin/sh", "-c", " ".join(self.argv(as_argv(test[1]), port_map))]
        return self.argv(test[1:], port_map)

    def wait_for(self, what: str, running: Running, check: Callable[[], bool], timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if running.process.poll() is not None:
                raise SmokeFailed(f"{running.name} exited {running.process.returncode}:\n{running.tail()}")
            if check():
                log(f"ok: {running.name} {what}")
                return
            time.sleep(0.5)
        raise SmokeFailed(f"{running.name}: {what} not seen in {timeout:.0f} s:\n{running.tail()}")

    def passes(self, argv: list[str], env: dict[str, str]) -> bool:
        try:
            return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, timeout=60, check=False).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    # --- the smoke ----------------------------------------------------------------------------------

    def run(self) -> None:
        with phase("throwaway PostgreSQL + Redis"):
            self.start_databases()
        web_env = self.service_env("web")
        with phase("production refusal"):
            without_key = {k: v for k, v in web_env.items() if k != "SECRET_KEY"}
            probe = [sys.executable, "-c", "import contactcenter.settings"]
            result = subprocess.run(probe, cwd=ROOT, env=without_key, capture_output=True, text=True, check=False)
            if result.returncode == 0 or "SECRET_KEY" not in result.stderr:
                raise SmokeFailed("with DEBUG=0 and no SECRET_KEY the settings should refuse to start")
            log("ok: DEBUG=0 without SECRET_KEY refuses to start, naming SECRET_KEY")
        with phase("migrate (one-shot) + collectstatic (image build step)"):
            self.run_once(
                "migrate", self.argv(as_argv(self.services["migrate"]["command"])), self.service_env("migrate")
            )
            collect = [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"]
            self.run_once("collectstatic", collect, web_env)
        with phase("start web replicas, worker, beat"):
            replicas = int((self.services["web"].get("deploy") or {}).get("replicas", 1))
            container_port = self.container_port("web")
            webs = []
            for index in range(1, replicas + 1):
                port = free_port()
                argv = self.argv(as_argv(self.services["web"]["command"]), {container_port: str(port)})
                webs.append(self.launch(f"web{index}", argv, web_env, port))
            worker = self.launch(
                "worker", self.argv(as_argv(self.services["worker"]["command"])), self.service_env("worker")
            )
            beat = self.launch("beat", self.argv(as_argv(self.services["beat"]["command"])), self.service_env("beat"))
        with phase("healthchecks"):
            for web in webs:
                check = self.healthcheck("web", web)
                self.wait_for(f"healthcheck ({shlex.join(check)})", web, partial(self.passes, check, web.env))
            check = self.healthcheck("worker", worker)
            self.wait_for(f"healthcheck ({shlex.join(check)})", worker, lambda: self.passes(check, worker.env))
        with phase("beat -> broker -> worker"):
            self.wait_for(
                "sent contactcenter.tasks.sweep", beat,
                lambda: "Sending due task" in beat.tail(400) and "contactcenter.tasks.sweep" in beat.tail(400),
            )  # fmt: skip
            self.wait_for(
                "ran contactcenter.tasks.sweep", worker,
                lambda: re.search(r"contactcenter\.tasks\.sweep\[[^\]]+\] succeeded", worker.tail(400)) is not None,
            )  # fmt: skip
            check = self.healthcheck("beat", beat)
            self.wait_for(f"healthcheck ({shlex.join(check)})", beat, lambda: self.passes(check, beat.env))

    def stop(self) -> None:
        stop_processes([running.process for running in self.running], timeout=15)
        self.running.clear()
        if self.db is not None:
            self.db.stop()
            self.db = None
        shutil.rmtree(self.root, ignore_errors=True)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    started = time.monotonic()
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    smoke = ComposeSmoke(compose)
    try:
        smoke.run()
    except (SmokeFailed, ServiceFailed, ServiceUnavailable) as exc:
        log(f"FAILED: {exc}")
        return 1
    except KeyboardInterrupt:
        log("FAILED: interrupted")
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with phase("stop everything"):
            smoke.stop()
        log(f"total: {time.monotonic() - started:.1f}s")
    log("compose smoke green: web x2, worker and beat ran the production commands and environment")
    return 0


if __name__ == "__main__":
    sys.exit(main())
