"""HTTP requests served by daphne leave no database connection behind (contactcenter/dbconnections.py): each
runs on a thread of its own, so a persistent connection opened there would stay open, unused, until PostgreSQL
refused new clients under a burst of webhooks."""

from __future__ import annotations

import urllib.request

import pytest
from django.db import connection

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def server_connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return int(cursor.fetchone()[0])


def test_a_burst_of_http_requests_leaves_no_connection_open(daphne_server):
    def hit() -> None:
        with urllib.request.urlopen(f"{daphne_server.url}/healthz", timeout=10) as response:
            assert response.status == 200

    hit()  # the server's own long-lived connections (the socket thread's, the sweeper's) are made by now
    before = server_connections()
    for _ in range(40):
        hit()
    assert server_connections() <= before + 2  # without the fix: one more per request (40)
