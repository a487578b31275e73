"""`create_tenant` and `seed_demo`: what they create, their errors, and the demo key's rotation."""

from __future__ import annotations

import io
import re
import sys

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from agents.models import CannedTemplate, Disposition, PauseReason
from chat.models import Widget
from contactcenter.models import ApiKey, Membership, Role, Tenant
from contactcenter.services import apikey_authenticate
from queueing.models import Queue, QueueRoute
from tests.factories import MembershipFactory, TenantFactory

pytestmark = pytest.mark.django_db

PASSWORD = "plum-orchard-47-lantern"


@pytest.fixture
def no_terminal(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))


def run(*args: str, **options) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, **options)
    return out.getvalue()


# --- create_tenant ---------------------------------------------------------------------------------


def test_create_tenant_with_a_password(client):
    out = run("create_tenant", "--name", "Acme Corp", "--email", "Boss@Acme.test", "--password", PASSWORD)
    tenant = Tenant.objects.get(slug="acme-corp")
    membership = Membership.objects.get(tenant=tenant)
    assert (membership.user.username, membership.role) == ("boss@acme.test", Role.ADMIN)
    assert "Created tenant 'Acme Corp'" in out
    assert "/accounts/invite/" not in out
    assert client.login(username="boss@acme.test", password=PASSWORD)


def test_create_tenant_without_a_terminal_prints_a_working_invite_link(client, no_terminal):
    out = run("create_tenant", "--name", "Acme", "--email", "boss@acme.test")
    user = get_user_model().objects.get(username="boss@acme.test")
    assert not user.has_usable_password()
    path = re.search(r"http://127\.0\.0\.1:8000(/accounts/invite/\S+/)", out).group(1)
    page = client.get(path, follow=True)
    assert page.context["validlink"] is True
    response = client.post(page.redirect_chain[-1][0], {"new_password1": PASSWORD, "new_password2": PASSWORD})
    assert response.status_code == 302
    assert client.login(username="boss@acme.test", password=PASSWORD)


def test_create_tenant_prompts_for_the_password_on_a_terminal(monkeypatch, client):
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    answers = iter([PASSWORD, PASSWORD])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    out = run("create_tenant", "--name", "Acme", "--email", "boss@acme.test")
    assert "/accounts/invite/" not in out
    assert client.login(username="boss@acme.test", password=PASSWORD)


def test_create_tenant_invite_flag_skips_the_prompt(monkeypatch):
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr("getpass.getpass", lambda prompt="": pytest.fail("prompted"))
    assert "/accounts/invite/" in run("create_tenant", "--name", "Acme", "--email", "boss@acme.test", "--invite")


def test_create_tenant_refuses_a_duplicate_slug():
    TenantFactory(name="Acme", slug="acme")
    with pytest.raises(CommandError, match="slug 'acme' already exists"):
        run("create_tenant", "--name", "Acme", "--email", "new@acme.test", "--password", PASSWORD)
    assert not get_user_model().objects.filter(username="new@acme.test").exists()


def test_create_tenant_refuses_a_taken_email_and_leaves_nothing_behind(tenant):
    taken = MembershipFactory(tenant=tenant).user.email
    with pytest.raises(CommandError, match="already has an account"):
        run("create_tenant", "--name", "Initech", "--email", taken.upper(), "--password", PASSWORD)
    assert not Tenant.objects.filter(slug="initech").exists()


@pytest.mark.parametrize(("args", "message"), [(["--password", "short"], "too short"), ([], "valid email")])
def test_create_tenant_explains_bad_input(args, message, no_terminal):
    email = "boss@acme.test" if args else "not-an-email"
    with pytest.raises(CommandError, match=message):
        run("create_tenant", "--name", "Acme", "--email", email, *args)
    assert not Tenant.objects.exists()


# --- seed_demo ---------------------------------------------------------------------------------------------


def demo_counts() -> dict[str, int]:
    tenant = Tenant.objects.get(slug="demo")
    return {
        "tenants": Tenant.objects.count(),
        "members": Membership.objects.for_tenant(tenant).count(),
        "widgets": Widget.objects.for_tenant(tenant).count(),
        "queues": Queue.objects.for_tenant(tenant).count(),
        "templates": CannedTemplate.objects.for_tenant(tenant).count(),
        "dispositions": Disposition.objects.for_tenant(tenant).count(),
        "pause_reasons": PauseReason.objects.for_tenant(tenant).count(),
        "keys": ApiKey.objects.for_tenant(tenant).count(),
    }


def printed_key(out: str) -> str:
    return re.search(r'curl -H "Authorization: Bearer (sb_\S+)" http://[\d.:]+/api/v1/conversations/', out).group(1)


def test_seed_demo_builds_the_demo_tenant(client, monkeypatch):
    monkeypatch.setenv("HOST", "127.0.0.1")
    monkeypatch.setenv("PORT", "8123")
    out = run("seed_demo")
    tenant = Tenant.objects.get(slug="demo")
    roles = sorted(Membership.objects.for_tenant(tenant).values_list("role", flat=True))
    assert roles == [Role.ADMIN, Role.AGENT, Role.AGENT, Role.SUPERVISOR]

    widget = Widget.objects.for_tenant(tenant).get(name="Website")
    assert set(widget.allowed_origins) >= {"http://127.0.0.1:8123", "http://localhost:8123"}
    assert widget.survey_enabled
    survey = {f["label"]: (f["kind"], f["required"]) for f in widget.survey_fields}
    assert survey["Your name"] == ("name", True)
    assert survey["Email"] == ("email", False)
    assert survey["Phone"] == ("phone", False)
    assert survey["Order number"] == ("text", False)

    queue = Queue.objects.for_tenant(tenant).get(name="Support")
    assert QueueRoute.objects.get(widget=widget).queue == queue
    member_roles = sorted(m.membership.role for m in queue.members.all())
    assert member_roles == [Role.AGENT, Role.AGENT, Role.SUPERVISOR]
    assert all("{" in t.body for t in CannedTemplate.objects.for_tenant(tenant))
    assert CannedTemplate.objects.for_tenant(tenant).count() == 3
    assert {"Resolved", "Follow-up needed", "Spam"} <= set(
        Disposition.objects.for_tenant(tenant).values_list("name", flat=True)
    )
    assert dict(PauseReason.objects.for_tenant(tenant).values_list("name", "paid")) == {
        "Lunch": False,
        "Training": True,
        "Meeting": True,
    }

    for path in ("/settings/", "/console/", "/demo/", "/api/docs/", "/healthz"):
        assert f"http://127.0.0.1:8123{path}" in out
    logins = re.findall(r"(admin|supervisor|agent)\s+(\S+@\S+)\s+password: (\S+)", out)
    assert sorted(role for role, _, _ in logins) == ["admin", "agent", "agent", "supervisor"]
    for _, email, password in logins:
        assert len(password) >= 10
        assert client.login(username=email, password=password), email
    key = apikey_authenticate(plaintext=printed_key(out))
    assert key is not None
    assert (key.tenant, key.name) == (tenant, "demo")


def test_seed_demo_twice_keeps_the_data_and_rotates_the_key(monkeypatch):
    monkeypatch.delenv("HOST", raising=False)
    monkeypatch.delenv("PORT", raising=False)
    first = run("seed_demo")
    counts = demo_counts()
    old_key = printed_key(first)
    assert "http://127.0.0.1:8000/settings/" in first

    second = run("seed_demo")
    new_key = printed_key(second)
    assert new_key != old_key
    assert apikey_authenticate(plaintext=old_key) is None
    assert apikey_authenticate(plaintext=new_key) is not None
    assert demo_counts() == {**counts, "keys": counts["keys"] + 1}
    tenant = Tenant.objects.get(slug="demo")
    assert ApiKey.objects.for_tenant(tenant).filter(revoked_at__isnull=True).count() == 1
    assert "already present" in second


def test_seed_demo_on_another_port_lets_the_widget_load_there(monkeypatch):
    monkeypatch.setenv("PORT", "8000")
    run("seed_demo")
    monkeypatch.setenv("PORT", "9000")
    out = run("seed_demo")
    widget = Widget.objects.get(tenant__slug="demo", name="Website")
    assert {"http://127.0.0.1:8000", "http://127.0.0.1:9000", "http://localhost:9000"} <= set(widget.allowed_origins)
    assert "http://127.0.0.1:9000/demo/" in out


def test_seed_demo_leaves_other_tenants_alone(tenant, api_key):
    run("seed_demo")
    assert apikey_authenticate(plaintext=api_key) is not None
    assert Tenant.objects.filter(pk=tenant.pk).exists()


def test_seed_demo_prints_the_public_site_url_when_one_is_set(monkeypatch):
    monkeypatch.setenv("SITE_URL", "https://chat.example.com/")
    monkeypatch.setenv("PORT", "8791")
    out = run("seed_demo")
    assert "https://chat.example.com/demo/" in out
    assert "https://chat.example.com/api/v1/conversations/" in out
    assert ":8000" not in out
    widget = Widget.objects.get(tenant__slug="demo", name="Website")
    assert {"https://chat.example.com", "http://127.0.0.1:8791"} <= set(widget.allowed_origins)
