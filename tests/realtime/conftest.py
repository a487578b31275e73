"""Protocol tests fail when a server process logged a traceback while they ran (a consumer crash is a bug),
and end only once the servers' in-flight database work is done (the flush that follows would deadlock with it)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from django.db import connection

QUIESCE_LIMIT = 15.0


def wait_for_servers_to_quiesce() -> None:
    """Until no other session on the test database is mid-statement or mid-transaction (bounded)."""
    deadline = time.monotonic() + QUIESCE_LIMIT
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND state IN ('active', 'idle in transaction')"
            )
            (busy,) = cursor.fetchone()
        if not busy:
            return
        time.sleep(0.05)


@pytest.fixture(autouse=True)
def servers_log_no_tracebacks(request: pytest.FixtureRequest) -> Iterator[None]:
    names = [name for name in ("daphne_server", "daphne_pair") if name in request.fixturenames]
    servers = []
    for name in names:
        value = request.getfixturevalue(name)
        servers += list(value) if isinstance(value, tuple) else [value]
    offsets = {server: server.log_path.stat().st_size if server.log_path.exists() else 0 for server in servers}
    yield
    if servers and connection.vendor == "postgresql":
        wait_for_servers_to_quiesce()
    for server, offset in offsets.items():
        with server.log_path.open("rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
        assert "Traceback" not in text, f"daphne on {server.url} logged:\n{text[-4000:]}"
