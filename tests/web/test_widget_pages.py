"""Server-rendered pages of the widget and the console: CSP, tenancy, login and escaping."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from agents.models import Presence
from contactcenter.models import Role
from tests.factories import (
    AttachmentFactory,
    ContactFactory,
    ContactIdentityFactory,
    ConversationFactory,
    MembershipFactory,
    MessageFactory,
    TenantFactory,
    UserFactory,
    WidgetFactory,
)

pytestmark = pytest.mark.django_db

XSS = '<img src=x onerror="alert(1)">'


def csp_directives(response) -> dict[str, list[str]]:
    policy = response["Content-Security-Policy"]
    directives: dict[str, list[str]] = {}
    for part in policy.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def boot_data(response, element_id: str) -> dict:
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', response.content.decode())
    assert match, f"no #{element_id} in the page"
    return json.loads(match.group(1))


# --- the widget's iframe page ------------------------------------------------------------------------


def test_widget_frame_allows_exactly_the_widgets_origins_as_ancestors(client, tenant):
    widget = WidgetFactory(tenant=tenant, allowed_origins=["https://shop.example.com", "https://www.example.org:8443"])

    response = client.get(reverse("widget-frame", args=[widget.public_key]))

    assert response.status_code == 200
    directives = csp_directives(response)
    assert directives["frame-ancestors"] == ["'self'", "https://shop.example.com", "https://www.example.org:8443"]
    # The global X-Frame-Options: DENY would forbid every embedding; the CSP is what restricts here.
    assert "X-Frame-Options" not in response


def test_widget_frame_has_a_strict_policy_for_its_own_content(client, tenant):
    widget = WidgetFactory(tenant=tenant)

    directives = csp_directives(client.get(reverse("widget-frame", args=[widget.public_key])))

    assert directives["default-src"] == ["'self'"]
    assert directives["script-src"] == ["'self'"]
    assert directives["img-src"] == ["'self'", "data:", "blob:"]
    assert directives["connect-src"] == ["'self'", "ws://testserver"]


def test_widget_frame_with_no_allowed_origins_is_embeddable_only_by_switchboard(client, tenant):
    widget = WidgetFactory(tenant=tenant, allowed_origins=[])

    directives = csp_directives(client.get(reverse("widget-frame", args=[widget.public_key])))

    assert directives["frame-ancestors"] == ["'self'"]


def test_widget_frame_unknown_key_is_404(client, tenant):
    WidgetFactory(tenant=tenant)

    assert client.get(reverse("widget-frame", args=["wk_does-not-exist"])).status_code == 404


def test_widget_frame_talks_only_to_an_allowed_parent_origin(client, tenant):
    widget = WidgetFactory(tenant=tenant, allowed_origins=["https://shop.example.com"])
    url = reverse("widget-frame", args=[widget.public_key])

    allowed = boot_data(client.get(url, {"origin": "https://shop.example.com"}), "sb-boot")
    forged = boot_data(client.get(url, {"origin": "https://evil.example.net"}), "sb-boot")

    assert allowed["parentOrigin"] == "https://shop.example.com"
    assert allowed["publicKey"] == widget.public_key
    assert forged["parentOrigin"] == ""


def test_widget_frame_escapes_the_widget_title(client, tenant):
    widget = WidgetFactory(tenant=tenant, title=XSS)

    body = client.get(reverse("widget-frame", args=[widget.public_key])).content.decode()

    assert XSS not in body
    assert "&lt;img src=x" in body


# --- the demo host page ----------------------------------------------------------------------------


def test_demo_page_embeds_the_demo_tenants_first_widget_only(client):
    other = WidgetFactory(tenant=TenantFactory(slug="acme"), name="Acme support")
    demo = TenantFactory(slug="demo", name="Demo Co")
    first = WidgetFactory(tenant=demo, name="Website")
    second = WidgetFactory(tenant=demo, name="Another")

    body = client.get(reverse("demo-host")).content.decode()

    assert f'data-widget="{first.public_key}"' in body
    assert "/static/widget/loader.js" in body
    assert second.public_key not in body
    assert other.public_key not in body
    assert "Acme support" not in body


def test_demo_page_without_the_demo_tenant_says_how_to_seed_it(client):
    WidgetFactory(tenant=TenantFactory(slug="acme"))

    response = client.get(reverse("demo-host"))

    assert response.status_code == 200
    body = response.content.decode()
    assert "data-widget=" not in body
    assert "seed_demo" in body


# --- the console and its pages -------------------------------------------------------------------------


def test_console_requires_login(client):
    response = client.get(reverse("console"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("role", [Role.AGENT, Role.SUPERVISOR, Role.ADMIN])
def test_console_opens_for_every_role(client, tenant, role):
    user = MembershipFactory(tenant=tenant, role=role).user
    client.force_login(user)

    response = client.get(reverse("console"))

    assert response.status_code == 200
    boot = boot_data(response, "cc-boot")
    assert boot["userId"] == user.pk
    assert boot["presence"] == Presence.OFFLINE
    assert csp_directives(response)["script-src"] == ["'self'"]


def test_console_refuses_a_user_without_a_tenant(client):
    client.force_login(UserFactory())

    assert client.get(reverse("console")).status_code == 403


def test_console_pages_require_login(client, tenant):
    contact = ContactFactory(tenant=tenant)

    for url in (reverse("console-contact", args=[contact.pk]), reverse("console-conversations")):
        response = client.get(url)
        assert response.status_code == 302, url


def test_contact_page_shows_identities_with_their_verification(client, tenant, agent):
    contact = ContactFactory(tenant=tenant, name="Ada Lovelace")
    ContactIdentityFactory(tenant=tenant, contact=contact, kind="email", value="ada@example.org", verified=True)
    ContactIdentityFactory(tenant=tenant, contact=contact, kind="phone", value="+447700900123", verified=False)
    conversation = ConversationFactory(tenant=tenant, contact=contact)
    MessageFactory(tenant=tenant, conversation=conversation, body="Where is my order?")
    client.force_login(agent)

    response = client.get(reverse("console-contact", args=[contact.pk]))

    assert response.status_code == 200
    body = response.content.decode()
    assert "Ada Lovelace" in body
    verified = body.index("ada@example.org")
    unverified = body.index("+447700900123")
    assert body.index("Verified", verified) < unverified  # the badge follows its own identity
    assert "Unverified" in body[unverified:]
    assert "Where is my order?" in body


def test_another_tenants_contact_is_404(client, agent, other_tenant):
    foreign = ContactFactory(tenant=other_tenant)
    client.force_login(agent)

    assert client.get(reverse("console-contact", args=[foreign.pk])).status_code == 404


def test_user_text_is_escaped_on_the_contact_page(client, tenant, agent, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    contact = ContactFactory(tenant=tenant, name=XSS)
    ContactIdentityFactory(tenant=tenant, contact=contact, value=f"{XSS}@example.org")
    survey = [{"key": "order", "label": "Order number", "value": f"#1 {XSS}"}]
    conversation = ConversationFactory(tenant=tenant, contact=contact, survey=survey)
    message = MessageFactory(tenant=tenant, conversation=conversation, body=f"hi {XSS}")
    attachment = AttachmentFactory(tenant=tenant, conversation=conversation, message=message, filename=f"{XSS}.txt")
    client.force_login(agent)

    body = client.get(reverse("console-contact", args=[contact.pk])).content.decode()

    assert XSS not in body
    escaped = "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;"
    for shown in (f"{escaped}</h1>", f"{escaped}@example.org", f"#1 {escaped}", f"hi {escaped}", f"{escaped}.txt"):
        assert shown in body
    # Files open through the permission-checked download view, never from /media/.
    assert f'href="/console/api/attachments/{attachment.pk}/"' in body


def test_conversations_search_by_contact_and_by_text(client, tenant, supervisor, other_tenant):
    ada = ContactFactory(tenant=tenant, name="Ada Lovelace")
    ContactIdentityFactory(tenant=tenant, contact=ada, value="ada@example.org")
    grace = ContactFactory(tenant=tenant, name="Grace Hopper")
    ada_chat = ConversationFactory(tenant=tenant, contact=ada)
    MessageFactory(tenant=tenant, conversation=ada_chat, body="My parcel never arrived")
    grace_chat = ConversationFactory(tenant=tenant, contact=grace)
    MessageFactory(tenant=tenant, conversation=grace_chat, body="Invoice question")
    foreign = ConversationFactory(tenant=other_tenant, contact=ContactFactory(tenant=other_tenant, name="Ada Foreign"))
    MessageFactory(tenant=other_tenant, conversation=foreign, body="My parcel is foreign")
    client.force_login(supervisor)
    url = reverse("console-conversations")

    def listed(**params) -> set[int]:
        page = client.get(url, params).context["page"]
        return {conversation.pk for conversation in page.object_list}

    assert listed() == {ada_chat.pk, grace_chat.pk}
    assert listed(contact="ada") == {ada_chat.pk}
    assert listed(contact="ada@example") == {ada_chat.pk}
    assert listed(q="parcel") == {ada_chat.pk}
    assert listed(q="invoice") == {grace_chat.pk}
    assert listed(contact="grace", q="parcel") == set()


def test_an_agent_lists_the_conversations_they_took_part_in(client, tenant, agent):
    taken = ConversationFactory(tenant=tenant, assignee=agent)
    joined = ConversationFactory(tenant=tenant)
    joined.participants.add(agent)
    ConversationFactory(tenant=tenant, assignee=MembershipFactory(tenant=tenant).user)
    client.force_login(agent)

    page = client.get(reverse("console-conversations")).context["page"]

    assert {conversation.pk for conversation in page.object_list} == {taken.pk, joined.pk}


def test_user_text_is_escaped_in_the_conversations_list(client, tenant, agent):
    contact = ContactFactory(tenant=tenant, name=XSS)
    conversation = ConversationFactory(tenant=tenant, contact=contact, assignee=agent)
    MessageFactory(tenant=tenant, conversation=conversation, body=f"look {XSS}")
    client.force_login(agent)

    body = client.get(reverse("console-conversations"), {"q": "look"}).content.decode()

    assert XSS not in body
    assert "&lt;img src=x" in body
