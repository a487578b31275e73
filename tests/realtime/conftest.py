"""Protocol tests fail when a server process logged a traceback while they ran (a consumer crash is a bug),
and end only once the servers' in-flight database work is done (the flush that follows would deadlock with it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.servers import servers_quiesce


@pytest.fixture(autouse=True)
def servers_log_no_tracebacks(request: pytest.FixtureRequest) -> Iterator[None]:
    names = [name for name in ("daphne_server", "daphne_pair") if name in request.fixturenames]
    servers = []
    for name in names:
        value = request.getfixturevalue(name)
        servers += list(value) if isinstance(value, tuple) else [value]
    offsets = {server: server.log_path.stat().st_size if server.log_path.exists() else 0 for server in servers}
    yield
    if servers:
        servers_quiesce()
    for server, offset in offsets.items():
        with server.log_path.open("rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
        assert "Traceback" not in text, f"daphne on {server.url} logged:\n{text[-4000:]}"
