"""Settings pages: access by role, tenant isolation, CSRF, escaping, and create/edit/delete through the real forms."""

from __future__ import annotations

import hashlib
import hmac
import html
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from django.test.html import Element, parse_html
from django.urls import resolve, reverse
from django.utils.html import escape

from agents.models import AgentProfile, CannedTemplate, Disposition, PauseReason
from agents.services import TEMPLATE_PLACEHOLDERS
from chat.models import ConversationStatus, Widget
from contactcenter.models import ApiKey, Membership, Role
from contactcenter.services import apikey_authenticate
from queueing.models import Queue, QueueMember, QueueRoute
from tests.factories import (
    ApiKeyFactory,
    CannedTemplateFactory,
    ChannelConnectorFactory,
    ConversationFactory,
    DispositionFactory,
    MembershipFactory,
    PauseReasonFactory,
    QueueFactory,
    QueueRouteFactory,
    UserFactory,
    WhatsAppTemplateFactory,
    WidgetFactory,
)

pytestmark = pytest.mark.django_db

MB = 1024 * 1024
XSS = '<script>alert("x")</script>'

# (URL name, which object of the `objects` fixture its pk comes from, or None)
PAGES = [
    ("settings-widgets-list", None),
    ("settings-widgets-create", None),
    ("settings-widgets-edit", "widget"),
    ("settings-widgets-survey", "widget"),
    ("settings-widgets-switching", "widget"),
    ("settings-widgets-hours", "widget"),
    ("settings-widgets-identity", "widget"),
    ("settings-widgets-delete", "widget"),
    ("settings-channels-list", None),
    ("settings-channels-create", None),
    ("settings-channels-edit", "connector"),
    ("settings-channels-delete", "connector"),
    ("settings-whatsapp-templates-list", None),
    ("settings-whatsapp-templates-create", None),
    ("settings-whatsapp-templates-edit", "whatsapp_template"),
    ("settings-whatsapp-templates-delete", "whatsapp_template"),
    ("settings-queues-list", None),
    ("settings-queues-create", None),
    ("settings-queues-edit", "queue"),
    ("settings-queues-delete", "queue"),
    ("settings-agents-list", None),
    ("settings-agents-create", None),
    ("settings-agents-edit", "membership"),
    ("settings-agents-delete", "membership"),
    ("settings-templates-list", None),
    ("settings-templates-create", None),
    ("settings-templates-edit", "template"),
    ("settings-templates-delete", "template"),
    ("settings-dispositions-list", None),
    ("settings-dispositions-create", None),
    ("settings-dispositions-edit", "disposition"),
    ("settings-dispositions-delete", "disposition"),
    ("settings-pause-reasons-list", None),
    ("settings-pause-reasons-create", None),
    ("settings-pause-reasons-edit", "pause_reason"),
    ("settings-pause-reasons-delete", "pause_reason"),
    ("settings-apikeys-list", None),
    ("settings-apikeys-create", None),
    ("settings-apikeys-revoke", "api_key"),
]
OBJECT_PAGES = [page for page in PAGES if page[1] is not None]
NAV = ["Widgets", "Channels", "Queues", "Agents", "Templates", "Dispositions", "Pause reasons", "API keys"]


def make_objects(tenant) -> dict:
    return {
        "widget": WidgetFactory(tenant=tenant),
        "queue": QueueFactory(tenant=tenant),
        "membership": MembershipFactory(tenant=tenant, role=Role.AGENT),
        "template": CannedTemplateFactory(tenant=tenant),
        "disposition": DispositionFactory(tenant=tenant),
        "pause_reason": PauseReasonFactory(tenant=tenant),
        "api_key": ApiKeyFactory(tenant=tenant),
        "connector": ChannelConnectorFactory(tenant=tenant),
        "whatsapp_template": WhatsAppTemplateFactory(tenant=tenant),
    }


@pytest.fixture
def objects(tenant):
    return make_objects(tenant)


@pytest.fixture
def foreign(other_tenant):
    MembershipFactory(tenant=other_tenant, role=Role.ADMIN)
    return make_objects(other_tenant)


@pytest.fixture
def admin_client(client, admin):
    client.force_login(admin)
    return client


def page_url(name: str, key: str | None, objects: dict) -> str:
    return reverse(name, kwargs={"pk": objects[key].pk}) if key else reverse(name)


# --- a little HTML reading: errors must sit next to their field ---------------------------------------


def walk(element: Element) -> Iterator[Element]:
    yield element
    for child in element.children:
        if isinstance(child, Element):
            yield from walk(child)


def attrs(element: Element) -> dict:
    return dict(element.attributes)


def classes(element: Element) -> list[str]:
    return (attrs(element).get("class") or "").split()


def text(element: Element) -> str:
    return " ".join(child if isinstance(child, str) else text(child) for child in element.children)


def controls(element: Element, name: str) -> list[Element]:
    return [e for e in walk(element) if e.name in ("input", "select", "textarea") and attrs(e).get("name") == name]


def container(response, name: str, tag: str = "div", css: str = "field") -> Element:
    """The innermost `<tag class="css">` holding the control called `name`."""
    found = None
    for element in walk(parse_html(response.content.decode())):
        if element.name == tag and (css is None or css in classes(element)) and controls(element, name):
            found = element
    assert found is not None, f"no {tag}.{css} around a control named {name!r}"
    return found


def errors_in(element: Element) -> list[str]:
    return [text(e).strip() for e in walk(element) if e.name == "p" and "error" in classes(e)]


def assert_error_next_to(response, name: str, message: str, tag: str = "div", css: str = "field") -> Element:
    block = container(response, name, tag, css)
    found = errors_in(block)
    assert any(message in error for error in found), f"{message!r} not next to {name!r}; there: {found}"
    return block


def value_of(response, name: str) -> str | None:
    """What the page shows in the control `name`: an input's value, a textarea's text, a select's choice."""
    (control, *_) = controls(container(response, name, tag="form", css=None), name)
    if control.name == "textarea":  # read raw: the HTML parser folds the line breaks
        raw = re.search(rf'<textarea[^>]*name="{name}"[^>]*>(.*?)</textarea>', response.content.decode(), re.S)
        return html.unescape(raw.group(1)).strip()
    if control.name == "select":
        chosen = [attrs(o).get("value") for o in walk(control) if o.name == "option" and "selected" in attrs(o)]
        return chosen[0] if chosen else None
    return attrs(control).get("value")


def checked(response, name: str) -> set[str]:
    form = container(response, name, tag="form", css=None)
    return {attrs(c).get("value") or "on" for c in controls(form, name) if "checked" in attrs(c)}


def page_errors(response) -> list[str]:
    root = parse_html(response.content.decode())
    return [text(e).strip() for e in walk(root) if "alert-error" in classes(e)]


# --- access -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "key"), PAGES)
def test_every_page_renders_for_an_admin(admin_client, objects, name, key):
    response = admin_client.get(page_url(name, key, objects))
    assert response.status_code == 200
    content = response.content.decode()
    for label in NAV:
        assert f">{label}</a>" in content
    assert 'aria-current="page"' in content
    # No dead links or buttons: every address the page points at is served.
    targets = re.findall(r'(?:href|action)="(/[^"]*)"', content)
    assert targets
    for target in targets:
        path = urlsplit(html.unescape(target)).path
        if not path.startswith(settings.STATIC_URL):
            resolve(path)  # raises Resolver404 for a dead link


@pytest.mark.parametrize("role", [Role.AGENT, Role.SUPERVISOR])
@pytest.mark.parametrize(("name", "key"), PAGES)
def test_agents_and_supervisors_get_403(client, tenant, objects, role, name, key):
    client.force_login(MembershipFactory(tenant=tenant, role=role).user)
    response = client.get(page_url(name, key, objects))
    assert response.status_code == 403
    assert "Only admins can change settings" in response.content.decode()


@pytest.mark.parametrize(("name", "key"), PAGES)
def test_anonymous_people_are_sent_to_sign_in(client, objects, name, key):
    url = page_url(name, key, objects)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={url}"


def test_posts_are_refused_to_agents_too(client, tenant, objects):
    client.force_login(MembershipFactory(tenant=tenant, role=Role.AGENT).user)
    template = objects["template"]
    response = client.post(reverse("settings-templates-delete", kwargs={"pk": template.pk}))
    assert response.status_code == 403
    assert CannedTemplate.objects.filter(pk=template.pk).exists()


def test_settings_home_opens_the_widgets(admin_client):
    response = admin_client.get(reverse("settings-home"))
    assert response.status_code == 302
    assert response["Location"] == reverse("settings-widgets-list")


@pytest.mark.parametrize(("name", "key"), OBJECT_PAGES)
def test_another_tenants_ids_are_404(admin_client, objects, foreign, name, key):
    url = page_url(name, key, foreign)
    assert admin_client.get(url).status_code == 404
    if name.endswith(("-delete", "-revoke", "-edit")):
        assert admin_client.post(url, {"name": "Mine now"}).status_code == 404
    model = type(foreign[key])
    assert model.objects.filter(pk=foreign[key].pk).exists()
    assert ApiKey.objects.get(pk=foreign["api_key"].pk).revoked_at is None


def test_another_tenants_teammate_cannot_be_sent_an_invite(admin_client, foreign, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("settings-agents-resend", kwargs={"pk": foreign["membership"].pk}))
    assert response.status_code == 404
    assert mail.outbox == []


def test_csrf_is_enforced_on_the_forms(admin):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin)
    url = reverse("settings-templates-create")
    refused = client.post(url, {"name": "Hello", "body": "Hi there"})
    assert refused.status_code == 403
    assert not CannedTemplate.objects.filter(name="Hello").exists()

    page = client.get(url)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    accepted = client.post(url, {"name": "Hello", "body": "Hi there", "csrfmiddlewaretoken": token})
    assert accepted.status_code == 302
    assert CannedTemplate.objects.filter(name="Hello").exists()


def test_user_text_is_escaped_on_the_pages(admin_client, tenant):
    tenant.name = XSS
    tenant.save()
    WidgetFactory(tenant=tenant, name=XSS, title=XSS)
    CannedTemplateFactory(tenant=tenant, name=XSS, body=XSS)
    QueueFactory(tenant=tenant, name=XSS, description=XSS)
    for name in ("settings-widgets-list", "settings-templates-list", "settings-queues-list", "settings-agents-list"):
        content = admin_client.get(reverse(name)).content.decode()
        assert XSS not in content, name
        assert escape(XSS) in content, name


# --- widgets ----------------------------------------------------------------------------------------------

WIDGET_DATA = {
    "name": "Shop",
    "title": "Talk to us",
    "greeting": "Hello there",
    "accent_color": "#FF5500",
    "offline_message": "We are away.",
    "allowed_origins": "https://shop.example.com/\nhttp://localhost:3000",
    "max_upload_mb": "5",
    "allowed_file_types": "image/png\napplication/pdf",
    "agent_external_url": "https://crm.example.com/lookup",
}


def test_create_a_widget_then_see_its_snippet(admin_client, tenant):
    response = admin_client.post(reverse("settings-widgets-create"), WIDGET_DATA)
    widget = Widget.objects.for_tenant(tenant).get(name="Shop")
    assert response.status_code == 302
    assert response["Location"] == reverse("settings-widgets-edit", kwargs={"pk": widget.pk})
    assert widget.allowed_origins == ["https://shop.example.com", "http://localhost:3000"]
    assert widget.max_upload_bytes == 5 * MB
    assert widget.allowed_file_types == ["image/png", "application/pdf"]
    assert widget.accent_color == "#ff5500"
    assert (widget.title, widget.greeting, widget.agent_external_url) == (
        "Talk to us",
        "Hello there",
        "https://crm.example.com/lookup",
    )

    page = admin_client.get(response["Location"])
    content = page.content.decode()
    snippet = (
        f'<script src="{settings.SITE_URL}/static/widget/loader.js" data-widget="{widget.public_key}" async></script>'
    )
    assert escape(snippet) in content
    assert snippet not in content  # shown as text, never executed on the settings page
    assert value_of(page, "allowed_origins") == "https://shop.example.com\nhttp://localhost:3000"
    assert value_of(page, "max_upload_mb") == "5"


def test_a_refused_widget_keeps_what_was_typed(admin_client, tenant):
    data = {**WIDGET_DATA, "name": "Typed name", "allowed_origins": "https://ok.example.com\nftp://bad.example.com/x"}
    response = admin_client.post(reverse("settings-widgets-create"), data)
    assert response.status_code == 200
    assert_error_next_to(response, "allowed_origins", "Not an origin")
    assert value_of(response, "name") == "Typed name"
    assert value_of(response, "allowed_origins") == "https://ok.example.com\nftp://bad.example.com/x"
    assert value_of(response, "greeting") == "Hello there"
    assert not Widget.objects.for_tenant(tenant).exists()

    response = admin_client.post(reverse("settings-widgets-create"), {**WIDGET_DATA, "accent_color": "red"})
    assert_error_next_to(response, "accent_color", "#rrggbb")
    assert value_of(response, "name") == "Shop"


def test_blocked_file_types_are_shown_next_to_the_field(admin_client, objects):
    widget = objects["widget"]
    url = reverse("settings-widgets-edit", kwargs={"pk": widget.pk})
    response = admin_client.post(url, {**WIDGET_DATA, "allowed_file_types": "text/html"})
    assert_error_next_to(response, "allowed_file_types", "Never allowed")
    widget.refresh_from_db()
    assert "text/html" not in widget.allowed_file_types


def test_edit_a_widget(admin_client, objects):
    widget = objects["widget"]
    url = reverse("settings-widgets-edit", kwargs={"pk": widget.pk})
    assert value_of(admin_client.get(url), "name") == widget.name
    response = admin_client.post(url, {**WIDGET_DATA, "name": "Renamed"})
    assert response.status_code == 302
    widget.refresh_from_db()
    assert widget.name == "Renamed"


def test_delete_a_widget(admin_client, tenant):
    widget = WidgetFactory(tenant=tenant, name="Old site")
    QueueRouteFactory(tenant=tenant, widget=widget)
    url = reverse("settings-widgets-delete", kwargs={"pk": widget.pk})
    assert "Old site" in admin_client.get(url).content.decode()
    response = admin_client.post(url)
    assert response.status_code == 302
    assert not Widget.objects.filter(pk=widget.pk).exists()
    assert not QueueRoute.objects.filter(widget_id=widget.pk).exists()


def test_a_widget_with_an_open_conversation_is_not_deleted(admin_client, tenant):
    conversation = ConversationFactory(tenant=tenant, status=ConversationStatus.OPEN)
    response = admin_client.post(reverse("settings-widgets-delete", kwargs={"pk": conversation.widget_id}))
    assert response.status_code == 409
    assert any("close them first" in error for error in page_errors(response))
    assert Widget.objects.filter(pk=conversation.widget_id).exists()


# --- pre-chat survey -------------------------------------------------------------------------------------


def survey_post(rows: list[dict], initial: int, enabled: bool = True, **extra: str) -> dict:
    data = {"fields-TOTAL_FORMS": str(len(rows)), "fields-INITIAL_FORMS": str(initial), **extra}
    if enabled:
        data["survey_enabled"] = "on"
    for index, row in enumerate(rows):
        for key, value in row.items():
            if value is True:
                data[f"fields-{index}-{key}"] = "on"
            elif value is not False:
                data[f"fields-{index}-{key}"] = value
    return data


def test_survey_page_lists_the_fields_with_a_blank_row(admin_client, objects):
    widget = objects["widget"]
    response = admin_client.get(reverse("settings-widgets-survey", kwargs={"pk": widget.pk}))
    content = response.content.decode()
    assert value_of(response, "fields-0-key") == "name"
    assert value_of(response, "fields-1-key") == "email"
    assert value_of(response, "fields-2-key") is None  # the blank row that adds a field
    assert 'name="fields-3-key"' not in content
    assert widget.public_key in content  # the snippet is on this tab too


def test_save_the_survey_adding_and_removing_fields(admin_client, objects):
    widget = objects["widget"]
    rows = [
        {"key": "name", "label": "Your name", "kind": "name", "required": True},
        {"key": "email", "label": "Email", "kind": "email", "required": False, "DELETE": True},
        {"key": "order_number", "label": "Order number", "kind": "text", "required": False},
        {"key": "", "label": "", "kind": "text", "required": False},  # untouched blank row
    ]
    url = reverse("settings-widgets-survey", kwargs={"pk": widget.pk})
    response = admin_client.post(url, survey_post(rows, initial=2, enabled=False))
    assert response.status_code == 302
    widget.refresh_from_db()
    assert widget.survey_enabled is False
    assert widget.survey_fields == [
        {"key": "name", "label": "Your name", "kind": "name", "required": True},
        {"key": "order_number", "label": "Order number", "kind": "text", "required": False},
    ]


def test_add_a_row_without_javascript_keeps_the_typed_rows(admin_client, objects):
    widget = objects["widget"]
    before = list(widget.survey_fields)
    rows = [
        {"key": "name", "label": "Name (changed)", "kind": "name", "required": True},
        {"key": "email", "label": "Email", "kind": "email"},
        {"key": "ref", "label": "Reference", "kind": "text", "required": True},
    ]
    url = reverse("settings-widgets-survey", kwargs={"pk": widget.pk})
    response = admin_client.post(url, survey_post(rows, initial=2, add_field="1"))
    assert response.status_code == 200
    assert value_of(response, "fields-0-label") == "Name (changed)"
    assert value_of(response, "fields-2-key") == "ref"
    assert checked(response, "fields-2-required") == {"on"}
    assert value_of(response, "fields-3-key") is None  # the new blank row
    assert checked(response, "survey_enabled") == {"on"}
    assert errors_in(container(response, "fields-2-key", tag="form", css=None)) == []
    widget.refresh_from_db()
    assert widget.survey_fields == before  # nothing saved yet


def test_survey_errors_show_in_their_row(admin_client, objects):
    widget = objects["widget"]
    rows = [
        {"key": "name", "label": "Your name", "kind": "name", "required": True},
        {"key": "name", "label": "Name again", "kind": "text"},
        {"key": "2bad", "label": "", "kind": "text"},
    ]
    url = reverse("settings-widgets-survey", kwargs={"pk": widget.pk})
    response = admin_client.post(url, survey_post(rows, initial=2))
    assert response.status_code == 200
    assert_error_next_to(response, "fields-2-key", "Letters, digits and _", tag="td", css=None)
    assert_error_next_to(response, "fields-2-label", "This field is required", tag="td", css=None)
    assert value_of(response, "fields-1-label") == "Name again"

    rows[2] = {"key": "other", "label": "Other", "kind": "text"}
    response = admin_client.post(url, survey_post(rows, initial=2))
    assert_error_next_to(response, "fields-1-key", "used by another field", tag="td", css=None)


# --- queues -----------------------------------------------------------------------------------------------


ROUTING = {
    "routing_method": "longest_idle",
    "answer_seconds": 45,
    "capacity_kind": "fixed",
    "capacity": 20,
}  # what the form's two routing fields send


def test_create_a_queue_with_members_and_widgets(admin_client, tenant, admin, agent):
    widget = WidgetFactory(tenant=tenant)
    page = admin_client.get(reverse("settings-queues-create"))
    assert {str(agent.pk), str(admin.pk)} <= {
        attrs(c)["value"] for c in controls(parse_html(page.content.decode()), "members")
    }
    data = {"name": "Billing", "description": "Money", "members": [agent.pk, admin.pk], "widgets": [widget.pk]}
    response = admin_client.post(reverse("settings-queues-create"), {**data, **ROUTING, "routing_method": "least_busy"})
    assert response.status_code == 302
    queue = Queue.objects.for_tenant(tenant).get(name="Billing")
    assert set(queue.members.all()) == {agent, admin}
    assert (queue.routing_method, queue.answer_seconds) == ("least_busy", 45)
    assert QueueRoute.objects.get(widget=widget).queue == queue


def test_edit_a_queue_changes_its_members(admin_client, tenant, admin, agent):
    queue = QueueFactory(tenant=tenant, name="Sales")
    QueueMember.objects.create(tenant=tenant, queue=queue, user=agent)
    url = reverse("settings-queues-edit", kwargs={"pk": queue.pk})
    assert checked(admin_client.get(url), "members") == {str(agent.pk)}
    response = admin_client.post(url, {"name": "Sales EU", "members": [admin.pk], **ROUTING})
    assert response.status_code == 302
    queue.refresh_from_db()
    assert queue.name == "Sales EU"
    assert list(queue.members.all()) == [admin]


def test_a_refused_queue_keeps_what_was_typed(admin_client, tenant, agent):
    QueueFactory(tenant=tenant, name="Support")
    data = {"name": "Support", "description": "Typed text", "members": [agent.pk], **ROUTING}
    response = admin_client.post(reverse("settings-queues-create"), data)
    assert response.status_code == 200
    assert_error_next_to(response, "name", "Queue with this name already exists")
    assert value_of(response, "description") == "Typed text"
    assert checked(response, "members") == {str(agent.pk)}

    response = admin_client.post(reverse("settings-queues-create"), {**data, "name": ""})
    assert_error_next_to(response, "name", "This field is required")
    assert checked(response, "members") == {str(agent.pk)}
    assert Queue.objects.for_tenant(tenant).count() == 1


def test_another_tenants_agent_cannot_join_a_queue(admin_client, tenant, foreign):
    data = {"name": "Mixed", "members": [foreign["membership"].user_id]}
    response = admin_client.post(reverse("settings-queues-create"), data)
    assert response.status_code == 200
    assert container(response, "members")
    assert errors_in(container(response, "members"))
    assert not Queue.objects.for_tenant(tenant).filter(name="Mixed").exists()


def test_delete_a_queue_only_once_its_widgets_go_elsewhere(admin_client, tenant):
    route = QueueRouteFactory(tenant=tenant)
    url = reverse("settings-queues-delete", kwargs={"pk": route.queue_id})
    response = admin_client.post(url)
    assert response.status_code == 409
    assert any("Route this queue's widgets elsewhere" in error for error in page_errors(response))
    route.delete()
    response = admin_client.post(url)
    assert response.status_code == 302
    assert not Queue.objects.filter(pk=route.queue_id).exists()


# --- agents -----------------------------------------------------------------------------------------------


def test_invite_a_teammate(admin_client, tenant, django_capture_on_commit_callbacks):
    data = {"email": "New.Person@Example.com", "first_name": "New", "last_name": "Person", "role": "supervisor"}
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("settings-agents-create"), {**data, "max_chats": "4"})
    assert response.status_code == 302
    membership = Membership.objects.for_tenant(tenant).get(user__email="new.person@example.com")
    assert membership.role == Role.SUPERVISOR
    assert membership.user.agent_profile.max_chats == 4
    assert [m.to for m in mail.outbox] == [["new.person@example.com"]]
    listing = admin_client.get(reverse("settings-agents-list"))
    row = container(listing, "csrfmiddlewaretoken", tag="tr", css=None)  # the only row with a form: the pending one
    assert "new.person@example.com" in text(row)
    assert "Invite pending" in text(row)


def test_a_refused_invite_keeps_what_was_typed(admin_client, agent, django_capture_on_commit_callbacks):
    data = {"email": agent.email.upper(), "first_name": "Typed", "last_name": "", "role": "agent", "max_chats": "2"}
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("settings-agents-create"), data)
    assert response.status_code == 200
    assert_error_next_to(response, "email", "already has an account")
    assert value_of(response, "first_name") == "Typed"
    assert value_of(response, "max_chats") == "2"
    assert mail.outbox == []

    response = admin_client.post(reverse("settings-agents-create"), {**data, "email": "not-an-email"})
    assert_error_next_to(response, "email", "valid email")


def test_resend_an_invite(admin_client, tenant, django_capture_on_commit_callbacks):
    pending = MembershipFactory(tenant=tenant)
    pending.user.set_unusable_password()
    pending.user.save()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("settings-agents-resend", kwargs={"pk": pending.pk}))
    assert response.status_code == 302
    assert [m.to for m in mail.outbox] == [[pending.user.email]]
    assert "/accounts/invite/" in mail.outbox[0].body


def test_edit_a_teammate(admin_client, tenant):
    membership = MembershipFactory(tenant=tenant, role=Role.AGENT)
    url = reverse("settings-agents-edit", kwargs={"pk": membership.pk})
    page = admin_client.get(url)
    assert value_of(page, "role") == "agent"
    assert membership.user.email in page.content.decode()
    data = {"first_name": "Dana", "last_name": "Lee", "role": "supervisor", "max_chats": "7"}
    response = admin_client.post(url, data)
    assert response.status_code == 302
    membership.refresh_from_db()
    membership.user.refresh_from_db()
    assert membership.role == Role.SUPERVISOR
    assert membership.user.get_full_name() == "Dana Lee"
    assert AgentProfile.objects.get(user=membership.user).max_chats == 7


def test_a_refused_teammate_edit_keeps_what_was_typed(admin_client, admin, tenant):
    url = reverse("settings-agents-edit", kwargs={"pk": admin.membership.pk})
    data = {"first_name": "Typed", "last_name": "Name", "role": "agent", "max_chats": "3"}
    response = admin_client.post(url, data)  # the tenant's only admin
    assert response.status_code == 200
    assert_error_next_to(response, "role", "last admin")
    assert value_of(response, "first_name") == "Typed"
    assert value_of(response, "role") == "agent"

    response = admin_client.post(url, {**data, "role": "admin", "max_chats": "0"})
    assert_error_next_to(response, "max_chats", "greater than or equal to 1")
    admin.membership.refresh_from_db()
    assert admin.membership.role == Role.ADMIN
    assert get_user_model().objects.get(pk=admin.pk).first_name != "Typed"


def test_remove_a_teammate_but_not_the_last_admin(admin_client, admin, tenant):
    agent_membership = MembershipFactory(tenant=tenant, role=Role.AGENT)
    response = admin_client.post(reverse("settings-agents-delete", kwargs={"pk": agent_membership.pk}))
    assert response.status_code == 302
    assert not Membership.objects.filter(pk=agent_membership.pk).exists()
    agent_membership.user.refresh_from_db()
    assert agent_membership.user.is_active is False

    response = admin_client.post(reverse("settings-agents-delete", kwargs={"pk": admin.membership.pk}))
    assert response.status_code == 400
    assert any("at least one admin" in error for error in page_errors(response))
    assert Membership.objects.filter(pk=admin.membership.pk).exists()


# --- templates, dispositions, pause reasons ------------------------------------------------------------


def test_templates_create_edit_delete(admin_client, tenant):
    page = admin_client.get(reverse("settings-templates-create")).content.decode()
    for placeholder in TEMPLATE_PLACEHOLDERS:
        assert "{" + placeholder + "}" in page
    response = admin_client.post(reverse("settings-templates-create"), {"name": "Hi", "body": "Hi {visitor_name}"})
    assert response.status_code == 302
    template = CannedTemplate.objects.for_tenant(tenant).get(name="Hi")
    url = reverse("settings-templates-edit", kwargs={"pk": template.pk})
    assert admin_client.post(url, {"name": "Hello", "body": "Hello!"}).status_code == 302
    template.refresh_from_db()
    assert (template.name, template.body) == ("Hello", "Hello!")
    assert admin_client.post(reverse("settings-templates-delete", kwargs={"pk": template.pk})).status_code == 302
    assert not CannedTemplate.objects.filter(pk=template.pk).exists()


def test_a_duplicate_template_name_shows_next_to_the_name(admin_client, tenant):
    CannedTemplateFactory(tenant=tenant, name="Greeting")
    response = admin_client.post(reverse("settings-templates-create"), {"name": "Greeting", "body": "Typed body"})
    assert response.status_code == 200
    assert_error_next_to(response, "name", "Canned template with this name already exists")
    assert value_of(response, "body") == "Typed body"
    response = admin_client.post(reverse("settings-templates-create"), {"name": "", "body": "Typed body"})
    assert_error_next_to(response, "name", "This field is required")
    assert value_of(response, "body") == "Typed body"


def test_dispositions_create_edit_delete(admin_client, tenant):
    data = {"name": "Resolved", "is_active": "on", "position": "2"}
    assert admin_client.post(reverse("settings-dispositions-create"), data).status_code == 302
    disposition = Disposition.objects.for_tenant(tenant).get(name="Resolved")
    assert (disposition.is_active, disposition.position) == (True, 2)
    url = reverse("settings-dispositions-edit", kwargs={"pk": disposition.pk})
    assert checked(admin_client.get(url), "is_active") == {"on"}
    assert admin_client.post(url, {"name": "Solved", "position": "1"}).status_code == 302
    disposition.refresh_from_db()
    assert (disposition.name, disposition.is_active, disposition.position) == ("Solved", False, 1)
    response = admin_client.post(url, {"name": "Solved", "position": "-1"})
    assert_error_next_to(response, "position", "greater than or equal to 0")
    assert admin_client.post(reverse("settings-dispositions-delete", kwargs={"pk": disposition.pk})).status_code == 302
    assert not Disposition.objects.filter(pk=disposition.pk).exists()


def test_a_disposition_in_use_is_not_deleted(admin_client, tenant):
    disposition = DispositionFactory(tenant=tenant, name="Resolved")
    ConversationFactory(tenant=tenant, status=ConversationStatus.CLOSED, disposition=disposition)
    response = admin_client.post(reverse("settings-dispositions-delete", kwargs={"pk": disposition.pk}))
    assert response.status_code == 409
    assert any("make it inactive" in error for error in page_errors(response))
    assert Disposition.objects.filter(pk=disposition.pk).exists()


def test_pause_reasons_create_edit_delete(admin_client, tenant):
    response = admin_client.post(reverse("settings-pause-reasons-create"), {"name": "Lunch", "is_active": "on"})
    assert response.status_code == 302
    reason = PauseReason.objects.for_tenant(tenant).get(name="Lunch")
    assert (reason.paid, reason.is_active) == (False, True)
    url = reverse("settings-pause-reasons-edit", kwargs={"pk": reason.pk})
    assert checked(admin_client.get(url), "paid") == set()
    assert admin_client.post(url, {"name": "Training", "paid": "on"}).status_code == 302
    reason.refresh_from_db()
    assert (reason.name, reason.paid, reason.is_active) == ("Training", True, False)
    response = admin_client.post(url, {"name": "x" * 81, "paid": "on"})
    assert_error_next_to(response, "name", "at most 80 characters")
    assert admin_client.post(reverse("settings-pause-reasons-delete", kwargs={"pk": reason.pk})).status_code == 302
    assert not PauseReason.objects.filter(pk=reason.pk).exists()


# --- identity verification of a widget --------------------------------------------------------------------------


def test_an_identity_secret_is_shown_once_and_verifies_signed_users(admin_client, objects, client):
    widget = objects["widget"]
    url = reverse("settings-widgets-identity", kwargs={"pk": widget.pk})
    page = admin_client.get(url).content.decode()
    assert 'id="identity-status"' in page and "Make a secret" in page
    assert "hash_hmac" in page and "createHmac" in page  # server-side snippets
    made = admin_client.post(url, {"action": "rotate"})
    assert made.status_code == 302 and made["Location"] == url  # a reload of the answer makes no second secret
    assert all("identity_secret" not in str(value) for value in admin_client.session.values())
    response = admin_client.get(url)
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    secret = re.search(r'id="identity-secret">([^<]+)</pre>', response.content.decode()).group(1)
    assert "will not be shown again" in response.content.decode()
    assert all(secret not in str(value) for value in admin_client.session.values())
    again = admin_client.get(url).content.decode()  # the reload
    assert secret not in again and "Replace secret" in again
    widget.refresh_from_db()
    assert secret not in widget.identity_secret_sealed
    signature = hmac.new(secret.encode(), b"user-9", hashlib.sha256).hexdigest()
    identify = client.post(
        f"/widget/api/{widget.public_key}/identify",
        data={"user_id": "user-9", "signature": signature},
        content_type="application/json",
    )
    assert identify.status_code == 200, identify.content

    off = admin_client.post(url, {"action": "remove"})
    assert off.status_code == 302
    widget.refresh_from_db()
    assert widget.identity_secret_sealed == "" and widget.identity_secret_set_at is None
    refused = client.post(
        f"/widget/api/{widget.public_key}/identify",
        data={"user_id": "user-9", "signature": signature},
        content_type="application/json",
    )
    assert refused.json()["error"]["code"] == "identity_not_enabled"


def test_agents_cannot_make_an_identity_secret(client, tenant, objects):
    client.force_login(MembershipFactory(tenant=tenant, role=Role.AGENT).user)
    widget = objects["widget"]
    response = client.post(reverse("settings-widgets-identity", kwargs={"pk": widget.pk}), {"action": "rotate"})
    assert response.status_code == 403
    widget.refresh_from_db()
    assert widget.identity_secret_sealed == ""


# --- API keys -----------------------------------------------------------------------------------------------


def test_create_an_api_key_shows_the_plaintext_once(admin_client, tenant, admin):
    response = admin_client.post(reverse("settings-apikeys-create"), {"name": "CRM sync"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    plaintext = re.search(r'id="apikey-plaintext">([^<]+)</pre>', response.content.decode()).group(1)
    key = apikey_authenticate(plaintext=plaintext)
    assert key is not None
    assert (key.tenant, key.name, key.created_by) == (tenant, "CRM sync", admin)
    assert "will not be shown again" in response.content.decode()
    assert all(plaintext not in str(value) for value in admin_client.session.values())
    listing = admin_client.get(reverse("settings-apikeys-list")).content.decode()
    assert "CRM sync" in listing
    assert key.prefix in listing
    assert plaintext not in listing
    assert key.secret_hash not in listing


def test_an_api_key_needs_a_name(admin_client, tenant):
    response = admin_client.post(reverse("settings-apikeys-create"), {"name": "  "})
    assert response.status_code == 200
    assert_error_next_to(response, "name", "This field is required")
    assert not ApiKey.objects.for_tenant(tenant).exists()


def test_revoke_an_api_key(admin_client, objects):
    key = objects["api_key"]
    url = reverse("settings-apikeys-revoke", kwargs={"pk": key.pk})
    assert "Revoke API key" in admin_client.get(url).content.decode()
    response = admin_client.post(url)
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert "Revoked" in admin_client.get(reverse("settings-apikeys-list")).content.decode()
    assert admin_client.get(url).status_code == 404  # already revoked


# --- Django admin -------------------------------------------------------------------------------------------


def test_django_admin_is_for_superusers_only(admin_client):
    response = admin_client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_django_admin_lists_every_model_and_never_shows_key_hashes(client, objects):
    from django.contrib import admin as django_admin

    client.force_login(UserFactory(is_superuser=True, is_staff=True))
    key = objects["api_key"]
    key.secret_hash = "f" * 64
    key.save()
    registered = {model._meta.label for model in django_admin.site._registry}
    assert {"contactcenter.ApiKey", "chat.Widget", "queueing.Queue", "agents.Disposition"} <= registered
    for model in django_admin.site._registry:
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        assert client.get(url).status_code == 200, url
    change = client.get(reverse("admin:contactcenter_apikey_change", args=[key.pk]))
    assert change.status_code == 200
    assert key.prefix in change.content.decode()
    assert key.secret_hash not in change.content.decode()
    assert "secret_hash" not in change.content.decode()
    assert client.get(reverse("admin:contactcenter_apikey_add")).status_code == 403
