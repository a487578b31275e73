"""Smoke: the embedded mode boots, migrates and answers its health check."""

import pytest

pytestmark = [pytest.mark.smoke, pytest.mark.django_db]


def test_health_endpoint_answers_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "channel_layer": "ok"}


def test_sweep_task_runs_in_process():
    from contactcenter.wiring.tasks import sweep

    # apply() runs the task here whatever the broker: with Redis configured, delay() would queue it for a worker.
    assert sweep.apply().get() == {
        "sockets_cleared": 0,
        "agents_offline": 0,
        "offers_withdrawn": 0,
        "offers_missed": 0,
        "waiting_offered": 0,
        "queue_left": 0,
        "queue_unserved": 0,
        "deliveries_retriggered": 0,
        "deliveries_reconciled": 0,
        "media_retriggered": 0,
        "media_released": 0,
        "inbound_retriggered": 0,
        "chats_moved_after_lost_connection": 0,
        "webhooks_retriggered": 0,
        "webhook_disabled_notices": 0,
        "idempotency_keys_expired": 0,
    }


def test_home_signs_out_a_user_without_a_team(client):
    from tests.factories import UserFactory

    user = UserFactory()
    client.force_login(user)
    response = client.get("/", follow=True)
    assert response.redirect_chain[-1][0].startswith("/accounts/login/")
    assert "not part of a team" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_home_sends_admins_to_settings_and_agents_to_the_console(client, admin, agent):
    client.force_login(admin)
    assert client.get("/")["Location"] == "/settings/"
    client.force_login(agent)
    assert client.get("/")["Location"] == "/console/"
