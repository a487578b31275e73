"""Account pages: sign-in rules, POST-only sign-out, password reset and invite acceptance end to end."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from django.contrib.auth import SESSION_KEY, get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.core import mail
from django.urls import reverse

from agents.services import agent_invite
from contactcenter.models import Role
from contactcenter.services import invite_link
from tests.factories import PASSWORD, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "plum-orchard-47-lantern"


def signed_in_as(client) -> int | None:
    value = client.session.get(SESSION_KEY)
    return int(value) if value is not None else None


def link_path(body: str, site_url: str) -> str:
    match = re.search(re.escape(site_url) + r"(/accounts/\S+/)", body)
    assert match, f"no link to {site_url} in:\n{body}"
    return match.group(1)


# --- sign in / sign out --------------------------------------------------------------------------------


def test_sign_in_with_the_email_in_any_case(client, admin):
    page = client.get(reverse("login"))
    assert page.status_code == 200
    assert reverse("password_reset") in page.content.decode()
    response = client.post(reverse("login"), {"username": admin.email.upper(), "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == reverse("home")
    assert signed_in_as(client) == admin.pk


def test_a_wrong_password_is_refused(client, admin):
    response = client.post(reverse("login"), {"username": admin.email, "password": "wrong-password"})
    assert response.status_code == 200
    assert "Enter a correct email and password." in response.content.decode()
    assert response.context["form"]["username"].value() == admin.email
    assert signed_in_as(client) is None


def test_someone_without_a_team_cannot_sign_in(client):
    loner = UserFactory()
    response = client.post(reverse("login"), {"username": loner.email, "password": PASSWORD})
    assert response.status_code == 200
    assert "does not belong to any team" in response.content.decode()
    assert signed_in_as(client) is None


def test_a_superuser_without_a_team_may_sign_in(client):
    root = UserFactory(is_superuser=True, is_staff=True)
    response = client.post(reverse("login"), {"username": root.email, "password": PASSWORD})
    assert response.status_code == 302
    assert signed_in_as(client) == root.pk


def test_sign_out_is_a_post(client, admin):
    client.force_login(admin)
    assert client.get(reverse("logout")).status_code == 405
    assert signed_in_as(client) == admin.pk
    page = client.get(reverse("settings-widgets-list")).content.decode()
    assert re.search(
        r'<form method="post" action="/accounts/logout/"[^>]*>\s*<input type="hidden" name="csrfmiddlewaretoken"', page
    )
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert response["Location"] == reverse("login")
    assert signed_in_as(client) is None


def test_the_top_bar_names_the_user_and_the_tenant(client, admin, tenant):
    client.force_login(admin)
    content = client.get(reverse("settings-widgets-list")).content.decode()
    assert tenant.name in content
    assert admin.get_full_name() in content
    assert "Sign out" in content


# --- password reset --------------------------------------------------------------------------------------


def test_password_reset_end_to_end(client, admin, settings):
    settings.SITE_URL = "https://cc.example.com"
    settings.ALLOWED_HOSTS = ["testserver", "evil.example"]  # even a lax host list never shapes the link
    response = client.post(reverse("password_reset"), {"email": admin.email.upper()}, HTTP_HOST="evil.example")
    assert response.status_code == 302
    assert response["Location"] == reverse("password_reset_done")
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == [admin.email]
    assert "evil.example" not in mail.outbox[0].body
    path = link_path(mail.outbox[0].body, "https://cc.example.com")

    form_page = client.get(path, follow=True)
    assert form_page.context["validlink"] is True
    set_password_url = form_page.redirect_chain[-1][0]
    response = client.post(set_password_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == reverse("password_reset_complete")
    assert client.login(username=admin.email, password=NEW_PASSWORD)

    client.logout()
    used = client.get(path, follow=True)
    assert used.context["validlink"] is False
    assert "This link cannot be used" in used.content.decode()


def test_password_reset_tells_nothing_about_unknown_emails(client):
    response = client.post(reverse("password_reset"), {"email": "nobody@example.com"})
    assert response.status_code == 302
    assert mail.outbox == []


def test_password_reset_refuses_a_weak_password(client, admin):
    client.post(reverse("password_reset"), {"email": admin.email})
    path = link_path(mail.outbox[0].body, "http://127.0.0.1:8000")
    form_page = client.get(path, follow=True)
    response = client.post(form_page.redirect_chain[-1][0], {"new_password1": "12345", "new_password2": "12345"})
    assert response.status_code == 200
    assert "too short" in response.content.decode()
    assert client.login(username=admin.email, password=PASSWORD)


# --- invitations ---------------------------------------------------------------------------------------------


def invite(tenant, admin, django_capture_on_commit_callbacks, email="newbie@example.com", role=Role.AGENT):
    with django_capture_on_commit_callbacks(execute=True):
        membership = agent_invite(tenant=tenant, invited_by=admin, email=email, role=role)
    return membership


def test_invite_end_to_end_through_the_settings_page(client, admin, tenant, django_capture_on_commit_callbacks):
    client.force_login(admin)
    data = {"email": "newbie@example.com", "first_name": "Newbie", "last_name": "", "role": "agent", "max_chats": "2"}
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(reverse("settings-agents-create"), data).status_code == 302
    client.logout()
    (message,) = mail.outbox
    assert message.to == ["newbie@example.com"]
    assert tenant.name in message.subject
    path = link_path(message.body, "http://127.0.0.1:8000")

    page = client.get(path, follow=True)
    assert page.context["validlink"] is True
    content = page.content.decode()
    assert f"Join {tenant.name}" in content
    assert "newbie@example.com" in content
    set_password_url = page.redirect_chain[-1][0]
    assert "set-password" in set_password_url  # the token left the address bar
    response = client.post(set_password_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == reverse("home")
    newbie = get_user_model().objects.get(email="newbie@example.com")
    assert signed_in_as(client) == newbie.pk
    assert newbie.check_password(NEW_PASSWORD)

    client.logout()
    again = client.get(path, follow=True)
    assert again.context["validlink"] is False
    assert "This invitation link is not valid" in again.content.decode()


def test_invite_password_errors_show_next_to_the_field(client, admin, tenant, django_capture_on_commit_callbacks):
    invite(tenant, admin, django_capture_on_commit_callbacks)
    page = client.get(link_path(mail.outbox[0].body, "http://127.0.0.1:8000"), follow=True)
    response = client.post(page.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": "different"})
    assert response.status_code == 200
    assert response.context["form"].errors == {"new_password2": ["The two password fields didn\u2019t match."]}
    assert "didn\u2019t match" in response.content.decode()
    assert signed_in_as(client) is None


def test_an_expired_invite_shows_a_clear_page(client, admin, tenant, django_capture_on_commit_callbacks, monkeypatch):
    membership = invite(tenant, admin, django_capture_on_commit_callbacks)
    past = datetime.now() - timedelta(days=4)
    monkeypatch.setattr(default_token_generator, "_now", lambda: past)
    stale = invite_link(user=membership.user)
    monkeypatch.undo()
    response = client.get(stale.removeprefix("http://127.0.0.1:8000"), follow=True)
    assert response.status_code == 200
    assert response.context["validlink"] is False
    content = response.content.decode()
    assert "This invitation link is not valid" in content
    assert reverse("password_reset") in content  # the way to ask for a new link
    assert "new_password1" not in content


@pytest.mark.parametrize("path", ["/accounts/invite/MTIzNDU/abc-def/", "/accounts/invite/!!!/set-password/"])
def test_a_garbled_invite_shows_a_clear_page(client, path):
    response = client.get(path, follow=True)
    assert response.status_code == 200
    assert "This invitation link is not valid" in response.content.decode()


def test_a_removed_teammates_invite_no_longer_works(client, admin, tenant, django_capture_on_commit_callbacks):
    membership = invite(tenant, admin, django_capture_on_commit_callbacks)
    path = link_path(mail.outbox[0].body, "http://127.0.0.1:8000")
    user = membership.user
    user.is_active = False
    user.save()
    assert client.get(path, follow=True).context["validlink"] is False


def test_an_invitee_who_lost_the_link_gets_a_new_one_by_email(
    client, admin, tenant, django_capture_on_commit_callbacks
):
    invite(tenant, admin, django_capture_on_commit_callbacks)
    mail.outbox.clear()
    client.post(reverse("password_reset"), {"email": "newbie@example.com"})
    (message,) = mail.outbox
    page = client.get(link_path(message.body, "http://127.0.0.1:8000"), follow=True)
    response = client.post(page.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert response.status_code == 302
    assert client.login(username="newbie@example.com", password=NEW_PASSWORD)


def test_a_user_without_a_team_gets_no_reset_link_for_an_unusable_password(client):
    outsider = UserFactory()
    outsider.set_unusable_password()
    outsider.save()
    client.post(reverse("password_reset"), {"email": outsider.email})
    assert mail.outbox == []


def test_a_signed_in_agent_is_not_offered_settings(client, tenant):
    agent = MembershipFactory(tenant=tenant, role=Role.AGENT).user
    client.force_login(agent)
    assert client.get(reverse("settings-home"), follow=True).status_code == 403
