"""Every page gets a Content-Security-Policy from one builder; views with needs of their own keep theirs."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from tests.factories import MembershipFactory, WidgetFactory

pytestmark = pytest.mark.django_db


def policy(response) -> dict[str, str]:
    header = response.get("Content-Security-Policy")
    assert header, f"no CSP on {response.request['PATH_INFO']} ({response.status_code})"
    return {part.split(" ", 1)[0]: part.split(" ", 1)[1] for part in (p.strip() for p in header.split(";")) if part}


def assert_default_policy(response) -> None:
    directives = policy(response)
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"  # no inline script, no eval
    assert directives["style-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert directives["base-uri"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"


@pytest.mark.parametrize(
    "path",
    [
        "/accounts/login/",
        "/accounts/password-reset/",
        "/accounts/password-reset/sent/",
        "/accounts/reset/x/y/",
        "/demo/",
        "/api/docs/",
        "/api/docs/?script=",
        "/no-such-page/",  # Django's error page
        "/admin/login/",
        "/favicon.ico",
    ],
)
def test_anonymous_pages_get_the_default_policy(client, path):
    assert_default_policy(client.get(path))


def test_settings_pages_get_the_default_policy(client, tenant):
    client.force_login(MembershipFactory(tenant=tenant, role="admin").user)
    for name in ("settings-widgets-list", "settings-agents-list", "settings-apikeys-list"):
        assert_default_policy(client.get(reverse(name)))


def test_the_console_and_the_widget_keep_their_own_policy_from_the_same_builder(client, tenant):
    client.force_login(MembershipFactory(tenant=tenant).user)
    console = policy(client.get("/console/"))
    assert console["connect-src"] == "'self' ws://testserver"
    assert console["script-src"] == "'self'" and console["frame-ancestors"] == "'none'"

    widget = WidgetFactory(tenant=tenant, allowed_origins=["https://shop.example.com"])
    frame = policy(Client().get(f"/widget/{widget.public_key}/"))
    assert frame["frame-ancestors"] == "'self' https://shop.example.com"
    assert frame["form-action"] == "'none'"
    assert frame["connect-src"] == "'self' ws://testserver"
    assert frame["script-src"] == "'self'"


def test_pages_of_ours_have_no_inline_script_or_style(client):
    for path in ("/accounts/login/", "/demo/", "/api/docs/"):
        html = client.get(path).content.decode()
        assert "<style" not in html, path
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), path
        assert not re.search(r"\son[a-z]+=", html), path  # no inline event handlers
    docs = client.get("/api/docs/").content.decode()
    assert "/api/docs/?script=" in docs  # Swagger's start-up script is a file of its own


def test_debug_error_pages_may_style_themselves(client, settings):
    settings.DEBUG = True
    directives = policy(client.get("/no-such-page/"))
    assert directives["style-src"] == "'self' 'unsafe-inline'"
    assert_default_policy(client.get("/accounts/login/"))  # a page of ours stays strict even then
