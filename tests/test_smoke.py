"""Smoke: the embedded mode boots, migrates and answers its health check."""

import pytest

pytestmark = [pytest.mark.smoke, pytest.mark.django_db]


def test_health_endpoint_answers_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "channel_layer": "ok"}


def test_sweep_task_runs_in_process():
    from contactcenter.tasks import sweep

    assert sweep.delay().get() == {"agents_offline": 0}
