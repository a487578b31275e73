"""Invites never tell one tenant's admin about another tenant's users: an address with an account elsewhere is
answered, listed and mailed like a new one (contactcenter.services.membership_invite), over the API and on the
settings page; only an address already on the admin's own team is refused."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.core import mail
from django.test import Client
from django.urls import reverse

from contactcenter.models import Membership, Role
from tests.api.test_errors import error_of
from tests.factories import PASSWORD, MembershipFactory, TenantFactory

pytestmark = pytest.mark.django_db

INVITE = {"email": "grace@example.com", "first_name": "Grace", "last_name": "Hopper", "role": "supervisor"}


def masked(content: bytes) -> bytes:
    """The body with what differs between any two rows (their id and creation time) blanked."""
    content = re.sub(rb'"id":\d+', b'"id":0', content)
    return re.sub(rb'"created_at":"[^"]+"', b'"created_at":""', content)


def invite(client, body=INVITE, callbacks=None):
    with callbacks(execute=True):
        return client.post("/api/v1/agents/", body, format="json")


def test_an_address_with_an_account_elsewhere_is_answered_byte_for_byte_like_a_new_one(
    api_client, other_api_client, other_tenant, django_capture_on_commit_callbacks
):
    new = invite(api_client, callbacks=django_capture_on_commit_callbacks)  # no account yet: one is created
    assert get_user_model().objects.filter(username="grace@example.com").exists()
    elsewhere = invite(other_api_client, callbacks=django_capture_on_commit_callbacks)  # now it has one elsewhere

    assert (new.status_code, elsewhere.status_code) == (201, 201), elsewhere.content
    assert new["Content-Type"] == elsewhere["Content-Type"]
    assert masked(new.content) == masked(elsewhere.content)
    assert new.json()["id"] != elsewhere.json()["id"]
    # Listed and readable in the other tenant exactly like any pending teammate.
    listed = other_api_client.get("/api/v1/agents/").json()["results"]
    assert [(a["email"], a["name"], a["pending"]) for a in listed] == [("grace@example.com", "Grace Hopper", True)]
    detail = other_api_client.get(f"/api/v1/agents/{elsewhere.json()['id']}/")
    assert masked(detail.content) == masked(new.content)


def test_the_owner_of_the_address_is_told_and_nothing_changes_for_their_account(
    api_client, other_api_client, tenant, other_tenant, django_capture_on_commit_callbacks, client
):
    owner = MembershipFactory(tenant=tenant, role=Role.AGENT).user
    invite(other_api_client, {"email": owner.email.upper()}, callbacks=django_capture_on_commit_callbacks)

    (notice,) = mail.outbox
    assert notice.to == [owner.email] and notice.subject == f"You are invited to {other_tenant.name} on Switchboard"
    assert "already has a Switchboard account" in notice.body
    assert "/accounts/invite/" not in notice.body and "http" not in notice.body  # nothing to accept
    assert tenant.name not in notice.body
    # Their account, its one tenant and its sign-in are as they were; the placeholder can never sign in.
    owner.refresh_from_db()
    assert list(Membership.objects.filter(user=owner).values_list("tenant", flat=True)) == [tenant.pk]
    placeholder = Membership.objects.get(tenant=other_tenant, user__email=owner.email).user
    assert placeholder.pk != owner.pk and not placeholder.has_usable_password()
    assert client.login(username=owner.email, password=PASSWORD)
    assert client.session["_auth_user_id"] == str(owner.pk)


def test_resending_to_a_placeholder_sends_the_notice_again_never_a_link(
    other_tenant, django_capture_on_commit_callbacks
):
    owner = MembershipFactory(tenant=TenantFactory(), role=Role.AGENT).user
    admin = Client()
    admin.force_login(MembershipFactory(tenant=other_tenant, role=Role.ADMIN).user)
    with django_capture_on_commit_callbacks(execute=True):
        admin.post(reverse("settings-agents-create"), {**INVITE, "email": owner.email, "max_chats": "3"})
    placeholder = Membership.objects.get(tenant=other_tenant, user__email=owner.email)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin.post(reverse("settings-agents-resend", kwargs={"pk": placeholder.pk}))
    assert response.status_code == 302
    assert [m.to for m in mail.outbox] == [[owner.email], [owner.email]]
    assert all("/accounts/invite/" not in m.body for m in mail.outbox)


def test_only_an_address_already_on_your_own_team_is_refused(
    api_client, other_api_client, tenant, django_capture_on_commit_callbacks
):
    invite(api_client, callbacks=django_capture_on_commit_callbacks)
    assert error_of(invite(api_client, callbacks=django_capture_on_commit_callbacks), 409)["code"] == "email_taken"
    # A placeholder of this team counts as on it too.
    assert invite(other_api_client, callbacks=django_capture_on_commit_callbacks).status_code == 201
    again = invite(other_api_client, callbacks=django_capture_on_commit_callbacks)
    assert error_of(again, 409)["code"] == "email_taken"


def test_the_settings_page_answers_the_same_whatever_exists_elsewhere(other_tenant, django_capture_on_commit_callbacks):
    user = MembershipFactory(tenant=other_tenant, role=Role.ADMIN).user
    taken = MembershipFactory(tenant=TenantFactory(), role=Role.AGENT).user.email
    answers = []
    for email in ("brand.new@example.com", taken):
        admin = Client()  # a session each: the flashed messages of one post only
        admin.force_login(user)
        with django_capture_on_commit_callbacks(execute=True):
            response = admin.post(reverse("settings-agents-create"), {**INVITE, "email": email, "max_chats": "3"})
        flashed = [str(m).replace(email, "EMAIL") for m in get_messages(response.wsgi_request)]
        answers.append((response.status_code, response["Location"], flashed))
    assert answers[0] == answers[1]
    assert answers[0][2] == ["Invitation sent to EMAIL."]
    listing = admin.get(reverse("settings-agents-list")).content.decode()
    assert "brand.new@example.com" in listing and taken in listing
