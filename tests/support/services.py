"""pytest plugin: skips service-backed tests whose service is absent, or fails them when REQUIRE_SERVICES=1.

Markers (declared in pyproject.toml) and what each needs:
  postgres  DATABASE_URL is a PostgreSQL URL
  redis     REDIS_URL is set
  celery    REDIS_URL is set (the worker's broker)
  browser   /usr/bin/chromium exists and `playwright` imports

With REQUIRE_SERVICES=1 (CI) a test that would be skipped for a missing service errors instead, naming
what is missing, so a broken CI machine cannot pass by skipping. One line at the end of the run counts the
service-only tests that were skipped.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import pytest

# The server fixtures (daphne_server, daphne_pair, celery_worker) come with this plugin, so every test sees them.
pytest_plugins = ["tests.support.servers"]

CHROMIUM = Path("/usr/bin/chromium")
SERVICE_MARKERS = ("postgres", "redis", "celery", "browser")

_missing_key = pytest.StashKey[str]()
# Per run: marker -> how many tests carrying it could not run; and how many tests in all.
_counts_key = pytest.StashKey[dict[str, int]]()
_total_key = pytest.StashKey[int]()


def require_services() -> bool:
    return os.environ.get("REQUIRE_SERVICES", "").strip().lower() in {"1", "true", "yes", "on"}


@cache
def _playwright_imports() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True


def missing_service(marker: str) -> str | None:
    """Why a test carrying `marker` cannot run here, or None when its service is available."""
    if marker == "postgres":
        scheme = urlsplit(os.environ.get("DATABASE_URL", "")).scheme
        if scheme not in {"postgres", "postgresql", "pgsql", "postgis"}:
            return "DATABASE_URL is not a PostgreSQL URL"
    elif marker in {"redis", "celery"}:
        if not os.environ.get("REDIS_URL", "").strip():
            return "REDIS_URL is not set"
    elif marker == "browser":
        if not CHROMIUM.exists():
            return f"{CHROMIUM} is not installed"
        if not _playwright_imports():
            return "playwright does not import"
    return None


# trylast: `-m`/`-k` deselection has run, so only tests that will really run are counted.
@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    strict = require_services()
    counts: dict[str, int] = {}
    total = 0
    for item in items:
        reasons = []
        for marker in SERVICE_MARKERS:
            if item.get_closest_marker(marker) is None:
                continue
            reason = missing_service(marker)
            if reason:
                reasons.append(f"{marker}: {reason}")
                counts[marker] = counts.get(marker, 0) + 1
        if not reasons:
            continue
        total += 1
        reason_text = "; ".join(reasons)
        if strict:
            item.stash[_missing_key] = reason_text
        else:
            item.add_marker(pytest.mark.skip(reason=f"service-only test ({reason_text})"))
    config.stash[_counts_key] = counts
    config.stash[_total_key] = total


def pytest_runtest_setup(item: pytest.Item) -> None:
    missing = item.stash.get(_missing_key, None)
    if missing is not None:
        pytest.fail(f"REQUIRE_SERVICES=1 but this test cannot run: {missing}", pytrace=False)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    total = config.stash.get(_total_key, 0)
    if not total:
        terminalreporter.write_line("service-only tests: none skipped (every service they need is here)")
        return
    by_marker = ", ".join(f"{marker} {count}" for marker, count in sorted(config.stash[_counts_key].items()))
    verb = "ERRORED (REQUIRE_SERVICES=1)" if require_services() else "skipped"
    terminalreporter.write_line(f"service-only tests {verb} for a missing service: {total} ({by_marker})")
