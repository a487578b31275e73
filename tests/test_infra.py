"""The test infrastructure itself: real daphne servers and Celery worker on the test database, and scripts/."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from agents.models import AgentProfile, Presence
from tests.factories import MembershipFactory
from tests.support.servers import DaphneServer, database_url, free_port

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def get_json(url: str) -> tuple[int, dict]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, json.loads(response.read())


def test_free_port_is_bindable():
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_database_url_round_trips_django_settings():
    import dj_database_url

    settings_dict = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "test_switchboard",
        "USER": "post gres",
        "PASSWORD": "p@ss/word",
        "HOST": "127.0.0.1",
        "PORT": 5433,
    }
    parsed = dj_database_url.parse(database_url(settings_dict))
    assert {k: parsed[k] for k in ("NAME", "USER", "PASSWORD", "HOST", "PORT")} == {
        "NAME": "test_switchboard",
        "USER": "post gres",
        "PASSWORD": "p@ss/word",
        "HOST": "127.0.0.1",
        "PORT": 5433,
    }


def test_database_url_refuses_in_memory_sqlite():
    with pytest.raises(RuntimeError, match="postgres"):
        database_url({"ENGINE": "django.db.backends.sqlite3", "NAME": "file:memorydb_default?mode=memory&cache=shared"})


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_both_servers_of_a_pair_are_healthy_on_the_test_database(daphne_pair):
    first, second = daphne_pair
    assert first.port != second.port and first.pid != second.pid
    for server in daphne_pair:
        status, body = get_json(f"{server.url}/healthz")
        assert status == 200
        assert body["checks"] == {"database": "ok", "channel_layer": "ok"}


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_server_stops_by_pid_and_reports_its_log():
    server = DaphneServer(env_overrides={"LOG_LEVEL": "DEBUG"})
    server.start()
    pid = server.pid
    assert server.ws_url == server.url.replace("http://", "ws://")
    server.stop()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{server.url}/healthz", timeout=2)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert server.log_path.exists()


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.celery
@pytest.mark.django_db(transaction=True)
def test_sweep_sent_through_the_broker_runs_on_the_worker(celery_worker, settings):
    from contactcenter.wiring.tasks import sweep

    assert not settings.CELERY_TASK_ALWAYS_EAGER, "this test must go through the real broker"
    # No result backend (sweep ignores its result): the worker proves it ran the task by the row it changes,
    # committed by transactional_db so the worker's own connection sees it.
    agent = MembershipFactory().user
    long_ago = timezone.now() - timedelta(hours=1)
    AgentProfile.objects.filter(user=agent).update(presence=Presence.ONLINE, open_sockets=0, last_heartbeat_at=long_ago)
    sweep.delay()
    deadline = time.monotonic() + 20
    while AgentProfile.objects.get(user=agent).presence != Presence.OFFLINE:
        assert time.monotonic() < deadline, f"the worker never ran the sweep:\n{celery_worker.log_tail()}"
        time.sleep(0.1)
    assert "contactcenter.tasks.sweep" in celery_worker.log_tail(200)


def test_run_tests_fails_fast_when_services_are_required_but_missing():
    env = {**os.environ, "REQUIRE_SERVICES": "1", "SWITCHBOARD_HIDE_SERVICES": "redis"}
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "run_tests.py")], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "REQUIRE_SERVICES=1 but redis-server is not installed" in result.stdout


def test_dotenv_values_yield_to_the_environment(tmp_path):
    (tmp_path / ".env").write_text('# comment\nexport PORT=9000\nHOST="0.0.0.0"\nEMPTY=\n')
    env = {**os.environ, "PORT": "7000"}
    env.pop("HOST", None)
    script = str(SCRIPTS / "with_dotenv.py")
    ask = [sys.executable, script, sys.executable, "-c", "import os; print(os.environ['HOST'], os.environ['PORT'])"]
    result = subprocess.run(ask, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["0.0.0.0", "7000"]
    got = subprocess.run(
        [sys.executable, script, "--get", "HOST", "127.0.0.1"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert got.stdout.strip() == "0.0.0.0"


def test_healthcheck_fresh_reads_the_schedule_file_age(tmp_path):
    schedule = tmp_path / "celerybeat-schedule"
    command = [sys.executable, str(SCRIPTS / "healthcheck.py"), "fresh", str(schedule), "300"]
    assert subprocess.run(command, capture_output=True).returncode == 1
    (tmp_path / "celerybeat-schedule.db").write_bytes(b"")
    assert subprocess.run(command, capture_output=True).returncode == 0
    old = time.time() - 600
    os.utime(tmp_path / "celerybeat-schedule.db", (old, old))
    assert subprocess.run(command, capture_output=True).returncode == 1


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.parametrize(("errcode", "retried"), [("40P01", True), ("55P03", False)])
def test_only_a_deadlocked_flush_is_run_again(errcode, retried):
    """The flush error pytest-django raises wraps Django's error, which wraps psycopg's: a deadlock
    (40P01) raised by PostgreSQL itself is found through the chain; a lock timeout is not a deadlock."""
    from django.core.management.base import CommandError
    from django.db import DatabaseError, connection, transaction

    from tests.conftest import _deadlocked

    with pytest.raises(DatabaseError) as raised, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DO $$ BEGIN RAISE EXCEPTION 'raised here' USING ERRCODE = '{errcode}'; END $$")
    flush_error = CommandError("Database couldn't be flushed")
    flush_error.__cause__ = raised.value
    assert _deadlocked(flush_error) is retried
