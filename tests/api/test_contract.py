"""The OpenAPI document and the API's behaviour agree: every rule enforced is documented, nothing undocumented
is accepted (ranges, formats, per-tenant uniqueness, paging parameters, real booleans)."""

from __future__ import annotations

import pytest

from agents.models import CannedTemplate, Disposition
from tests.api.test_errors import error_of
from tests.api.test_openapi import schema  # noqa: F401 - the module-scoped, validated document
from tests.factories import CannedTemplateFactory

pytestmark = pytest.mark.django_db


def component(schema, name):  # noqa: F811
    return schema["components"]["schemas"][name]["properties"]


def parameters(schema, path, method="get"):  # noqa: F811
    return {p["name"]: p for p in schema["paths"][path][method].get("parameters", [])}


# --- max_chats: 1 to 50 --------------------------------------------------------------------------------------


def test_max_chats_range_is_in_the_schema(schema):  # noqa: F811
    for name in ("AgentInviteRequest", "PatchedAgentUpdateRequest"):
        max_chats = component(schema, name)["max_chats"]
        assert (max_chats["minimum"], max_chats["maximum"]) == (1, 50), name


@pytest.mark.parametrize("value", [0, 51, 2.5, "three"])
def test_max_chats_outside_the_schema_is_a_400_on_it(api_client, value):
    response = api_client.post("/api/v1/agents/", {"email": "new@example.com", "max_chats": value}, format="json")
    assert list(error_of(response, 400)["fields"]) == ["max_chats"]


# --- formats and uniqueness ------------------------------------------------------------------------------------


def test_email_and_phone_formats_are_in_the_schema(schema):  # noqa: F811
    assert component(schema, "AgentInviteRequest")["email"]["format"] == "email"
    value = component(schema, "ContactIdentityRequest")["value"]["description"]
    assert "E.164" in value and "email" in value


@pytest.mark.parametrize(
    "request_component",
    ["TemplateRequest", "DispositionRequest", "PauseReasonRequest", "QueueRequest", "WidgetRequest"],
)
def test_names_unique_per_tenant_say_so_in_the_schema(schema, request_component):  # noqa: F811
    assert "Unique in your tenant" in component(schema, request_component)["name"]["description"]


def test_a_duplicate_that_slips_past_the_check_is_a_409_not_a_500(api_client, tenant, monkeypatch):
    """Two creates in the same instant both pass the service's check; the constraint refuses the second."""
    api_client.post("/api/v1/templates/", {"name": "Hi", "body": "Hello"}, format="json")
    monkeypatch.setattr(CannedTemplate, "validate_constraints", lambda self, exclude=None: None)
    response = api_client.post("/api/v1/templates/", {"name": "Hi", "body": "Hello again"}, format="json")
    assert error_of(response, 409)["code"] == "duplicate"
    assert CannedTemplate.objects.count() == 1


# --- paging: whole numbers or a 400 --------------------------------------------------------------------------


def test_limit_and_offset_ranges_are_in_the_schema(schema):  # noqa: F811
    listed = parameters(schema, "/api/v1/templates/")
    assert listed["limit"]["schema"] == {"type": "integer", "minimum": 1}
    assert listed["offset"]["schema"] == {"type": "integer", "minimum": 0}
    assert "400" in schema["paths"]["/api/v1/templates/"]["get"]["responses"]


@pytest.mark.parametrize(
    "query, field",
    [
        ("limit=abc", "limit"),
        ("limit=1.5", "limit"),
        ("limit=0", "limit"),
        ("limit=-1", "limit"),
        ("limit=", "limit"),
        ("offset=x", "offset"),
        ("offset=-1", "offset"),
        ("offset=%EF%BC%91", "offset"),  # a full-width digit: isdigit() but not ASCII
    ],
)
def test_a_paging_parameter_that_is_not_a_whole_number_is_a_400(api_client, query, field):
    assert list(error_of(api_client.get(f"/api/v1/templates/?{query}"), 400)["fields"]) == [field]


def test_paging_within_range_and_a_limit_above_the_maximum(api_client, tenant):
    CannedTemplateFactory.create_batch(3, tenant=tenant)
    page = api_client.get("/api/v1/templates/?limit=2&offset=1").json()
    assert (page["count"], len(page["results"])) == (3, 2)
    assert len(api_client.get("/api/v1/templates/?limit=100000").json()["results"]) == 3  # counts as 200


# --- booleans: true or false ------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["false", "False", 0, 1, "yes", None])
def test_a_boolean_field_takes_only_json_true_or_false(api_client, value):
    response = api_client.post("/api/v1/dispositions/", {"name": "Solved", "is_active": value}, format="json")
    assert list(error_of(response, 400)["fields"]) == ["is_active"]
    assert not Disposition.objects.exists()


def test_a_real_boolean_is_taken(api_client):
    response = api_client.post("/api/v1/dispositions/", {"name": "Solved", "is_active": False}, format="json")
    assert response.status_code == 201 and response.json()["is_active"] is False


@pytest.mark.parametrize("value, status", [("false", 201), ("true", 201), ("False", 400), ("0", 400), ("on", 400)])
def test_a_form_body_says_true_or_false_in_lower_case(api_client, value, status):
    response = api_client.post(
        "/api/v1/pause-reasons/", f"name=Lunch&paid={value}", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == status, response.content
    if status == 201:
        assert response.json()["paid"] is (value == "true")


def test_a_nested_boolean_is_strict_too(api_client):
    survey = [{"key": "name", "label": "Name", "required": "yes"}]
    response = api_client.post("/api/v1/widgets/", {"name": "Shop", "survey_fields": survey}, format="json")
    assert list(error_of(response, 400)["fields"]) == ["survey_fields.0.required"]


def test_a_channel_connectors_enabled_flag_is_strict(api_client):
    body = {"kind": "sms", "provider": "twilio", "from_address": "+442079460958", "enabled": "no"}
    response = api_client.post("/api/v1/channels/", body, format="json")
    assert "enabled" in error_of(response, 400)["fields"]
