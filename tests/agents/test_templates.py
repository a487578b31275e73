"""Canned templates: placeholders are checked on save (settings page and API) and filled without broken
text; template and disposition changes are announced to the tenant's open consoles."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from agents.models import CannedTemplate
from agents.services import (
    TEMPLATE_PLACEHOLDERS,
    disposition_delete,
    disposition_save,
    template_delete,
    template_placeholders_check,
    template_render,
    template_save,
)
from contactcenter import realtime
from contactcenter.errors import ApplicationError
from contactcenter.realtime import tenant_agents_group
from tests.factories import DispositionFactory

pytestmark = pytest.mark.django_db

KNOWN = ", ".join("{" + name + "}" for name in TEMPLATE_PLACEHOLDERS)


@pytest.fixture
def published(monkeypatch):
    """Every (group, event) committed for the channel layer."""
    sent: list[tuple[str, dict]] = []
    monkeypatch.setattr(realtime, "_dispatch", lambda group, event: sent.append((group, event)))
    return sent


# --- placeholders ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, unknown",
    [
        ("Hi {visitor_phone}", "{visitor_phone}"),
        ("Hi {Visitor_Name}", "{Visitor_Name}"),
        ("Hi { visitor_name }, {agent}", "{ visitor_name }, {agent}"),
        ("Hi {visitor.name|there}", "{visitor.name|there}"),
    ],
)
def test_an_unknown_placeholder_is_refused_naming_the_known_ones(tenant, body, unknown):
    with pytest.raises(ApplicationError) as error:
        template_save(tenant=tenant, name="Hi", body=body)
    assert error.value.code == "invalid"
    [message] = error.value.fields["body"]
    assert unknown in message
    assert KNOWN in message
    assert not CannedTemplate.objects.filter(tenant=tenant).exists()


@pytest.mark.parametrize(
    "body",
    [
        "Hi {visitor_name}, this is {agent_name} from {widget_name}: {visitor_email}.",
        "Hi {visitor_name|there}!",
        "Hi {visitor_name|}!",  # an empty fallback: the author chose to leave it out
        "Braces that are no placeholder stay: {:-)} {} {two words}",
    ],
)
def test_known_placeholders_and_fallbacks_are_accepted(tenant, body):
    assert template_save(tenant=tenant, name="Hi", body=body).body == body


def test_a_fallback_has_a_length_limit():
    with pytest.raises(ApplicationError) as error:
        template_placeholders_check("Hi {visitor_name|" + "x" * 101 + "}")
    assert "at most 100 characters" in error.value.fields["body"][0]


def test_a_missing_value_is_never_dropped_silently():
    body = "Thanks {visitor_name|there}! We will follow up at {visitor_email} within one business day."
    rendered = template_render(body=body, context={"visitor_name": "", "visitor_email": "  "})
    # Not "follow up at  within": the placeholder stays, and the caller is told it has no value.
    assert rendered.text == "Thanks there! We will follow up at {visitor_email} within one business day."
    assert rendered.missing == ("{visitor_email}",)
    filled = template_render(body=body, context={"visitor_name": "Jane", "visitor_email": "jane@example.org"})
    assert filled.text == "Thanks Jane! We will follow up at jane@example.org within one business day."
    assert filled.missing == ()


def test_the_settings_page_shows_the_placeholder_error_next_to_the_body(client, admin, tenant):
    client.force_login(admin)
    response = client.post(
        reverse("settings-templates-create"), {"name": "Follow-up", "body": "We write to {visitor_mail}."}
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "Unknown placeholder {visitor_mail}" in page
    assert "{visitor_name|there}" in page  # the help text teaches fallbacks
    assert not CannedTemplate.objects.filter(tenant=tenant).exists()


def test_the_api_refuses_an_unknown_placeholder_in_the_error_shape(api_client: APIClient, tenant):
    response = api_client.post("/api/v1/templates/", {"name": "Hi", "body": "Hi {firstname}"}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert "{firstname}" in error["fields"]["body"][0] and KNOWN in error["fields"]["body"][0]
    created = api_client.post("/api/v1/templates/", {"name": "Hi", "body": "Hi {visitor_name|there}"}, format="json")
    assert created.status_code == 201
    changed = api_client.patch(f"/api/v1/templates/{created.json()['id']}/", {"body": "{oops}"}, format="json")
    assert changed.status_code == 400
    assert "{oops}" in changed.json()["error"]["fields"]["body"][0]
    # A change of the name alone does not look at the body again.
    renamed = api_client.patch(f"/api/v1/templates/{created.json()['id']}/", {"name": "Hello"}, format="json")
    assert renamed.status_code == 200


# --- open consoles are told ----------------------------------------------------------------------------------


def test_template_changes_reach_the_tenants_consoles_after_commit(
    tenant, other_tenant, published, django_capture_on_commit_callbacks
):
    group = tenant_agents_group(tenant.pk)
    with django_capture_on_commit_callbacks(execute=True):
        template = template_save(tenant=tenant, name="Bye", body="Bye {visitor_name|there}")
    assert published == [
        (group, {"type": "template.updated", "template": {"id": template.pk, "name": "Bye", "body": template.body}})
    ]
    published.clear()
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(ApplicationError):
        template_save(tenant=tenant, instance=template, body="Bye {nope}")
    assert published == []  # refused: nothing announced
    template_id = template.pk
    with django_capture_on_commit_callbacks(execute=True):
        template_delete(template=template)
    assert published == [(group, {"type": "template.deleted", "template_id": template_id})]
    assert all(g != tenant_agents_group(other_tenant.pk) for g, _ in published)


def test_disposition_changes_send_the_active_list(tenant, published, django_capture_on_commit_callbacks):
    group = tenant_agents_group(tenant.pk)
    solved = DispositionFactory(tenant=tenant, name="Solved", position=1)
    with django_capture_on_commit_callbacks(execute=True):
        spam = disposition_save(tenant=tenant, name="Spam", position=0)
    assert published == [
        (
            group,
            {
                "type": "dispositions.updated",
                "dispositions": [{"id": spam.pk, "name": "Spam"}, {"id": solved.pk, "name": "Solved"}],
            },
        )
    ]
    published.clear()
    with django_capture_on_commit_callbacks(execute=True):
        disposition_save(tenant=tenant, instance=spam, is_active=False)
    assert published == [
        (group, {"type": "dispositions.updated", "dispositions": [{"id": solved.pk, "name": "Solved"}]})
    ]
    published.clear()
    with django_capture_on_commit_callbacks(execute=True):
        disposition_delete(disposition=solved)
    assert published == [(group, {"type": "dispositions.updated", "dispositions": []})]
