#!/usr/bin/env python3
"""Runs the whole suite on throwaway PostgreSQL + Redis (when installed), then the embedded-mode smoke pass.

    scripts/run_tests.py [-- PYTEST_ARGS...]

Phases, each timed:
  1. services: start PostgreSQL and Redis in a temporary directory on free loopback ports. When either
     binary is missing the suite runs on SQLite with the in-memory channel layer and the service-only tests
     are skipped; with REQUIRE_SERVICES=1 a missing binary is a failure instead.
  2. main pass: pytest over the whole suite (extra arguments are forwarded to this pass only).
  3. smoke pass: `pytest -m smoke` with DATABASE_URL, REDIS_URL and CELERY_BROKER_URL removed, proving the
     embedded mode (what `make run` gives with nothing installed) still works.
The services are always stopped by pid and their directory removed, also on Ctrl-C or SIGTERM.
SWITCHBOARD_HIDE_SERVICES=postgres (or redis) pretends a binary is absent, to exercise the fallback.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parent))

from testservices import ServiceFailed, ServiceUnavailable, ThrowawayServices, missing_binaries

ROOT = Path(__file__).resolve().parent.parent
SERVICE_VARIABLES = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")
PYTEST_NO_TESTS = 5

_current_child: subprocess.Popen[bytes] | None = None


def log(message: str) -> None:
    # stdout may go away (`| head`, a closed CI log): the cleanup in `finally` must still run.
    with suppress(OSError):
        print(f"[run_tests] {message}", flush=True)


@contextmanager
def phase(name: str) -> Iterator[None]:
    started = time.monotonic()
    log(f"{name} ...")
    try:
        yield
    finally:
        log(f"{name}: {time.monotonic() - started:.1f}s")


def _on_signal(signum: int, frame: FrameType | None) -> None:
    # Turn SIGTERM/SIGINT into an exception so every `finally` (and so the service shutdown) runs. A terminal's
    # Ctrl-C already reached pytest (same process group); a SIGTERM did not: pass it on as SIGINT, on which
    # pytest tears its fixtures (daphne, Celery) down before exiting.
    if signum == signal.SIGTERM and _current_child is not None and _current_child.poll() is None:
        _current_child.send_signal(signal.SIGINT)
    raise KeyboardInterrupt(f"signal {signum}")


def run_pytest(args: list[str], env: dict[str, str]) -> int:
    global _current_child
    command = [sys.executable, "-m", "pytest", *args]
    log("$ " + " ".join(command))
    _current_child = subprocess.Popen(command, cwd=ROOT, env=env)
    try:
        return _current_child.wait()
    finally:
        try:
            _current_child.wait(timeout=30)  # interrupted: give pytest its teardown
        except subprocess.TimeoutExpired:
            _current_child.kill()
            _current_child.wait()
        _current_child = None


def embedded_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in SERVICE_VARIABLES:
        env.pop(name, None)
    return env


def split_args(argv: list[str]) -> list[str]:
    """Everything after `--` (or every argument, when there is no `--`) goes to the main pytest pass."""
    if "--" in argv:
        return argv[argv.index("--") + 1 :]
    return argv


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    extra = split_args(argv)
    require = os.environ.get("REQUIRE_SERVICES", "").strip().lower() in {"1", "true", "yes", "on"}
    started = time.monotonic()
    services: ThrowawayServices | None = None
    failures: list[str] = []
    # Files the tests upload land in a throwaway MEDIA_ROOT (shared with the daphne/Celery subprocesses
    # through the environment) rather than piling up in the checkout's var/media.
    media_root = tempfile.mkdtemp(prefix="switchboard-test-media-")
    try:
        with phase("services"):
            missing = missing_binaries()
            if missing:
                what = " and ".join(missing)
                if require:
                    log(f"FAILED: REQUIRE_SERVICES=1 but {what} is not installed (see .ci/run for the apt packages).")
                    return 2
                log(
                    f"{what} not found: the suite runs on SQLite with the in-memory channel layer, "
                    "and service-only tests (postgres/redis/celery) are skipped."
                )
            else:
                services = ThrowawayServices()
                try:
                    services.start()
                except (ServiceUnavailable, ServiceFailed) as exc:
                    services = None
                    log(f"FAILED to start the throwaway services: {exc}")
                    return 2
                log(f"PostgreSQL at {services.database_url}, Redis at {services.redis_url}")

        main_env = {"MEDIA_ROOT": media_root, **embedded_env()}
        if services is not None:
            main_env["DATABASE_URL"] = services.database_url
            main_env["REDIS_URL"] = services.redis_url
        with phase("main pass"):
            code = run_pytest(extra, main_env)
        if code == PYTEST_NO_TESTS:
            failures.append("main pass collected no tests (pytest exit 5): check the arguments or the markers")
        elif code != 0:
            failures.append(f"main pass failed (pytest exit {code})")

        with phase("smoke pass (embedded: SQLite, in-memory layer, eager Celery)"):
            smoke_env = {"MEDIA_ROOT": media_root, **embedded_env()}
            smoke_env.pop("REQUIRE_SERVICES", None)  # the embedded mode has no services, by design
            smoke_code = run_pytest(["-m", "smoke", "-q"], smoke_env)
        if smoke_code == PYTEST_NO_TESTS:
            failures.append("smoke pass collected no tests (pytest exit 5): no test is marked `smoke`")
        elif smoke_code != 0:
            failures.append(f"smoke pass failed (pytest exit {smoke_code})")
    except KeyboardInterrupt:
        failures.append("interrupted")
    finally:
        # A second Ctrl-C must not cut the shutdown short and leave servers behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if services is not None:
            with phase("stop services"):
                services.stop()
        shutil.rmtree(media_root, ignore_errors=True)
        log(f"total: {time.monotonic() - started:.1f}s")

    for failure in failures:
        log(f"FAILED: {failure}")
    if not failures:
        log("all passes green")
        return 0
    return 130 if "interrupted" in failures else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
