"""Sign-in against password guessing: per account and address, per address, per account (much higher)."""

from __future__ import annotations

import types

import pytest
from django.contrib.auth import SESSION_KEY
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from contactcenter import ratelimit
from tests.factories import PASSWORD, MembershipFactory

pytestmark = pytest.mark.django_db

START = 1_900_000_800.0  # the start of a 15-minute window


@pytest.fixture
def clock(monkeypatch, settings):
    settings.SIGNIN_FAILURE_RATE = "5/15min"
    settings.SIGNIN_FAILURE_RATE_ADDRESS = "30/15min"
    settings.SIGNIN_FAILURE_RATE_ACCOUNT = "100/hour"
    cache.clear()
    now = [START]
    monkeypatch.setattr(ratelimit, "time", types.SimpleNamespace(time=lambda: now[0]))
    yield now
    cache.clear()


def sign_in(client: Client, email: str, password: str, address: str = "198.51.100.7"):
    return client.post(reverse("login"), {"username": email, "password": password}, REMOTE_ADDR=address)


def signed_in(client: Client) -> bool:
    return SESSION_KEY in client.session


def test_after_five_wrong_passwords_even_the_right_one_waits(clock, tenant):
    user = MembershipFactory(tenant=tenant).user
    guesser = Client()
    for _ in range(5):
        response = sign_in(guesser, user.email, "wrong-password")
        assert response.status_code == 200
        assert "Enter a correct email and password." in response.content.decode()

    refused = sign_in(guesser, user.email, PASSWORD)
    assert refused.status_code == 429
    assert not signed_in(guesser)
    page = refused.content.decode()
    assert "Too many failed sign-in attempts" in page
    assert "Try again in 15 minutes" in page
    assert reverse("password_reset") in page
    assert int(refused["Retry-After"]) == 900
    # Other spellings of the same account are the same account.
    assert sign_in(guesser, user.email.upper(), PASSWORD).status_code == 429

    # The colleague at their own desk is not locked out by it.
    colleague = Client()
    assert sign_in(colleague, user.email, PASSWORD, address="203.0.113.20").status_code == 302
    assert signed_in(colleague)

    # Once the window is over, the right password works from the guesser's address too.
    clock[0] = START + 15 * 60
    assert sign_in(guesser, user.email, PASSWORD).status_code == 302
    assert signed_in(guesser)


def test_the_wait_counts_down(clock, tenant):
    user = MembershipFactory(tenant=tenant).user
    for _ in range(5):
        sign_in(Client(), user.email, "wrong-password")
    clock[0] = START + 14 * 60 + 30
    refused = sign_in(Client(), user.email, PASSWORD)
    assert "Try again in 1 minute," in refused.content.decode()
    assert refused["Retry-After"] == "30"


def test_a_right_password_forgets_the_typos(clock, tenant):
    user = MembershipFactory(tenant=tenant).user
    for _ in range(4):
        sign_in(Client(), user.email, "wrong-password")
    assert sign_in(Client(), user.email, PASSWORD).status_code == 302
    for _ in range(4):
        sign_in(Client(), user.email, "wrong-password")
    assert sign_in(Client(), user.email, PASSWORD).status_code == 302


def test_one_address_trying_many_accounts_is_stopped(clock, tenant):
    users = [MembershipFactory(tenant=tenant).user for _ in range(8)]
    for user in users:
        for _ in range(4):  # below the per-account-and-address limit every time
            sign_in(Client(), user.email, "wrong-password")
    # 32 failures from this address: a ninth account is refused from here, not from elsewhere.
    last = MembershipFactory(tenant=tenant).user
    assert sign_in(Client(), last.email, PASSWORD).status_code == 429
    assert sign_in(Client(), last.email, PASSWORD, address="203.0.113.20").status_code == 302


def test_guessing_one_account_from_many_addresses_is_stopped(clock, tenant, settings):
    settings.SIGNIN_FAILURE_RATE_ACCOUNT = "12/hour"
    user = MembershipFactory(tenant=tenant).user
    for i in range(12):
        sign_in(Client(), user.email, "wrong-password", address=f"192.0.2.{i}")
    assert sign_in(Client(), user.email, PASSWORD, address="203.0.113.20").status_code == 429
    clock[0] = START + 3600
    assert sign_in(Client(), user.email, PASSWORD, address="203.0.113.20").status_code == 302


def test_guessing_from_many_addresses_never_locks_the_owner_out_of_their_own_desk(clock, tenant, settings):
    settings.SIGNIN_FAILURE_RATE_ACCOUNT = "12/hour"
    user = MembershipFactory(tenant=tenant).user
    desk = "203.0.113.20"
    assert sign_in(Client(), user.email, PASSWORD, address=desk).status_code == 302
    for i in range(12):
        sign_in(Client(), user.email, "wrong-password", address=f"192.0.2.{i}")
    # A colleague typing wrong passwords from a few machines does not lock the owner out at their desk...
    assert sign_in(Client(), user.email, PASSWORD, address=desk).status_code == 302
    # ...while a new address (the guesser's next one) is still stopped by the per-account limit.
    assert sign_in(Client(), user.email, PASSWORD, address="198.51.100.99").status_code == 429
    # The desk's own typos still count against that desk's pair limit.
    for _ in range(5):
        sign_in(Client(), user.email, "wrong-password", address=desk)
    assert sign_in(Client(), user.email, PASSWORD, address=desk).status_code == 429


def test_a_refused_team_less_account_is_not_counted_as_a_guess(clock):
    from tests.factories import UserFactory

    loner = UserFactory()
    for _ in range(8):
        response = sign_in(Client(), loner.email, PASSWORD)
        assert "does not belong to any team" in response.content.decode()
