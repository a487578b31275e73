"""An agent's reminder preferences: the service (agents.services.agent_reminders_set), the console's endpoint
`POST /console/api/preferences` (docs/protocol.md §7) and the console page that hands them to the console."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client

from agents.models import AgentProfile, ReminderMode
from agents.services import REMINDER_SECONDS_MAX, REMINDER_SECONDS_MIN, agent_reminders_set
from contactcenter.errors import ApplicationError
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

URL = "/console/api/preferences"


def _profile(user) -> AgentProfile:
    return AgentProfile.objects.get(user=user)


def _post(client: Client, body: object, **headers: str):
    return client.post(URL, data=json.dumps(body), content_type="application/json", headers=headers)


def _error(response, status: int) -> dict:
    assert response.status_code == status, response.content
    return response.json()["error"]


@pytest.fixture
def signed_in(agent) -> Client:
    client = Client()
    client.force_login(agent)
    return client


# --- the service -------------------------------------------------------------------------------------------


def test_a_new_profile_reminds_on_every_message_after_a_minute(agent):
    profile = _profile(agent)
    assert (profile.reminder_mode, profile.reminder_seconds) == (ReminderMode.EVERY_MESSAGE, 60)


@pytest.mark.parametrize("mode", ReminderMode.values)
def test_each_mode_is_kept(agent, tenant, mode):
    agent_reminders_set(tenant_id=tenant.pk, user=agent, mode=mode, seconds=90)
    profile = _profile(agent)
    assert (profile.reminder_mode, profile.reminder_seconds) == (mode, 90)


def test_leaving_the_seconds_out_keeps_the_wait_chosen_before(agent, tenant):
    agent_reminders_set(tenant_id=tenant.pk, user=agent, mode=ReminderMode.AFTER_FIRST_MESSAGE, seconds=120)
    agent_reminders_set(tenant_id=tenant.pk, user=agent, mode=ReminderMode.OFF)
    profile = _profile(agent)
    assert (profile.reminder_mode, profile.reminder_seconds) == (ReminderMode.OFF, 120)


@pytest.mark.parametrize("seconds", [REMINDER_SECONDS_MIN, REMINDER_SECONDS_MAX])
def test_the_wait_limits_are_inclusive(agent, tenant, seconds):
    agent_reminders_set(tenant_id=tenant.pk, user=agent, mode=ReminderMode.AFTER_FIRST_MESSAGE, seconds=seconds)
    assert _profile(agent).reminder_seconds == seconds


def test_an_unknown_mode_is_refused_naming_the_choices(agent, tenant):
    with pytest.raises(ApplicationError) as refused:
        agent_reminders_set(tenant_id=tenant.pk, user=agent, mode="sometimes")
    assert refused.value.code == "invalid"
    assert "every_message" in refused.value.fields["reminder_mode"][0]
    assert _profile(agent).reminder_mode == ReminderMode.EVERY_MESSAGE


@pytest.mark.parametrize("seconds", [0, REMINDER_SECONDS_MAX + 1, -5])
def test_a_wait_out_of_range_is_refused_and_nothing_changes(agent, tenant, seconds):
    with pytest.raises(ApplicationError) as refused:
        agent_reminders_set(tenant_id=tenant.pk, user=agent, mode=ReminderMode.AFTER_FIRST_MESSAGE, seconds=seconds)
    assert refused.value.fields["reminder_seconds"] == [
        f"The wait is between {REMINDER_SECONDS_MIN} and {REMINDER_SECONDS_MAX} seconds."
    ]
    profile = _profile(agent)
    assert (profile.reminder_mode, profile.reminder_seconds) == (ReminderMode.EVERY_MESSAGE, 60)


def test_another_tenants_member_is_not_found_through_this_tenant(agent, other_tenant):
    with pytest.raises(ApplicationError) as refused:
        agent_reminders_set(tenant_id=other_tenant.pk, user=agent, mode=ReminderMode.OFF)
    assert refused.value.status == 403
    assert _profile(agent).reminder_mode == ReminderMode.EVERY_MESSAGE


# --- the endpoint ------------------------------------------------------------------------------------------


def test_the_agent_sets_their_own_reminders_and_the_console_page_brings_them_back(signed_in, agent):
    response = _post(signed_in, {"reminder_mode": "after_first_message", "reminder_seconds": 45})
    assert response.status_code == 200
    assert response.json() == {"preferences": {"reminder_mode": "after_first_message", "reminder_seconds": 45}}
    profile = _profile(agent)
    assert (profile.reminder_mode, profile.reminder_seconds) == ("after_first_message", 45)

    page = signed_in.get("/console/")
    boot = re.search(r'<script id="cc-boot" type="application/json">(.*?)</script>', page.content.decode(), re.S)
    assert boot is not None
    assert json.loads(boot.group(1))["reminders"] == {"mode": "after_first_message", "seconds": 45}
    assert '<option value="after_first_message" selected>' in page.content.decode()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"reminder_mode": "loudly"}, "reminder_mode"),
        ({}, "reminder_mode"),
        ({"reminder_mode": 1}, "reminder_mode"),
        ({"reminder_mode": "after_first_message", "reminder_seconds": 0}, "reminder_seconds"),
        ({"reminder_mode": "after_first_message", "reminder_seconds": 3601}, "reminder_seconds"),
        ({"reminder_mode": "after_first_message", "reminder_seconds": "60"}, "reminder_seconds"),
        ({"reminder_mode": "after_first_message", "reminder_seconds": 1.5}, "reminder_seconds"),
        ({"reminder_mode": "after_first_message", "reminder_seconds": True}, "reminder_seconds"),
    ],
)
def test_a_bad_mode_or_wait_is_a_400_naming_the_field(signed_in, agent, body, field):
    error = _error(_post(signed_in, body), 400)
    assert error["code"] == "invalid"
    assert list(error["fields"]) == [field]
    assert _profile(agent).reminder_mode == ReminderMode.EVERY_MESSAGE


def test_a_body_that_is_not_a_json_object_is_refused(signed_in):
    assert _error(signed_in.post(URL, data="[1]", content_type="application/json"), 400)["code"] == "invalid"
    assert _error(signed_in.post(URL, data="{", content_type="application/json"), 400)["code"] == "bad_json"


def test_another_users_profile_cannot_be_named(signed_in, agent, tenant):
    colleague = MembershipFactory(tenant=tenant).user
    error = _error(_post(signed_in, {"reminder_mode": "off", "user_id": colleague.pk}), 400)
    assert error["fields"] == {"user_id": ["Not a preference."]}
    assert _profile(colleague).reminder_mode == ReminderMode.EVERY_MESSAGE
    assert _profile(agent).reminder_mode == ReminderMode.EVERY_MESSAGE

    # Only the signed-in agent's own row changes.
    assert _post(signed_in, {"reminder_mode": "off"}).status_code == 200
    assert _profile(agent).reminder_mode == ReminderMode.OFF
    assert _profile(colleague).reminder_mode == ReminderMode.EVERY_MESSAGE


def test_only_post_is_allowed(signed_in):
    assert _error(signed_in.get(URL), 405)["code"] == "method_not_allowed"


def test_without_a_session_it_is_a_401(client):
    assert _error(_post(client, {"reminder_mode": "off"}), 401)["code"] == "not_authenticated"


def test_a_user_without_a_membership_is_a_403(db):
    client = Client()
    client.force_login(UserFactory())
    assert _error(_post(client, {"reminder_mode": "off"}), 403)["code"] == "forbidden"


def test_a_write_needs_the_csrf_token(agent):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(agent)
    error = _error(_post(browser, {"reminder_mode": "off"}), 403)
    assert error["code"] == "csrf_failed"
    assert _profile(agent).reminder_mode == ReminderMode.EVERY_MESSAGE

    # The console page sets the cookie; its value in X-CSRFToken lets the write through.
    assert browser.get("/console/").status_code == 200
    token = browser.cookies["csrftoken"].value
    assert _post(browser, {"reminder_mode": "off"}, X_CSRFToken=token).status_code == 200
    assert _profile(agent).reminder_mode == ReminderMode.OFF
