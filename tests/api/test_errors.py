"""The one error shape, `{"error": {"code", "message", "fields"}}`, for every status the API answers with."""

from __future__ import annotations

import pytest
from django.test import override_settings

from contactcenter.models import Role
from tests.factories import (
    ConversationFactory,
    DispositionFactory,
    MembershipFactory,
    QueueRouteFactory,
    WidgetFactory,
)

pytestmark = pytest.mark.django_db


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"]
    error = body["error"]
    assert set(error) == {"code", "message", "fields"}
    assert isinstance(error["message"], str) and error["message"]
    return error


def test_400_names_every_field_at_fault(api_client):
    error = error_of(api_client.post("/api/v1/templates/", {}, format="json"), 400)
    assert error["code"] == "invalid"
    assert set(error["fields"]) == {"name", "body"}
    assert error["message"] == error["fields"]["name"][0]


def test_400_names_a_nested_field_by_its_path(api_client):
    survey = [{"key": "name", "label": "Name"}, {"key": "order", "label": "", "kind": "colour"}]
    response = api_client.post("/api/v1/widgets/", {"name": "Shop", "survey_fields": survey}, format="json")
    error = error_of(response, 400)
    assert set(error["fields"]) == {"survey_fields.1.label", "survey_fields.1.kind"}


def test_400_from_a_service_keeps_its_code(api_client, tenant):
    contact = api_client.post("/api/v1/contacts/", {"name": "Ada"}, format="json").json()
    response = api_client.post(
        f"/api/v1/contacts/{contact['id']}/identities/", {"kind": "phone", "value": "12"}, format="json"
    )
    error = error_of(response, 400)
    assert error["code"] == "invalid_phone"
    assert list(error["fields"]) == ["value"]


def test_a_duplicate_name_is_a_400_on_the_name(api_client, tenant):
    DispositionFactory(tenant=tenant, name="Solved")
    error = error_of(api_client.post("/api/v1/dispositions/", {"name": "Solved"}, format="json"), 400)
    assert error["code"] == "invalid"
    assert list(error["fields"]) == ["name"]


def test_a_reference_to_another_tenants_row_is_a_400_on_the_field(api_client, other_tenant):
    widget = WidgetFactory(tenant=other_tenant)
    response = api_client.post("/api/v1/queues/", {"name": "Sales", "widgets": [widget.pk]}, format="json")
    assert list(error_of(response, 400)["fields"]) == ["widgets"]


def test_401(client):
    assert error_of(client.get("/api/v1/contacts/"), 401)["code"] == "not_authenticated"


def test_403(agent_session, tenant):
    contact = agent_session.post("/api/v1/contacts/", {"name": "Ada"}, format="json").json()
    error = error_of(agent_session.delete(f"/api/v1/contacts/{contact['id']}/"), 403)
    assert error == {"code": "forbidden", "message": "Your role does not allow this.", "fields": {}}


@pytest.mark.parametrize(
    "url", ["/api/v1/contacts/999999/", "/api/v1/contacts/not-a-number/", "/api/v1/queues/999999/members/"]
)
def test_404(api_client, url):
    assert error_of(api_client.get(url), 404)["code"] == "not_found"


def test_405(api_client, tenant):
    conversation = ConversationFactory(tenant=tenant)
    error = error_of(api_client.put(f"/api/v1/conversations/{conversation.pk}/", {}, format="json"), 405)
    assert error["code"] == "method_not_allowed"


def test_409_when_other_rows_still_use_it(api_client, tenant):
    route = QueueRouteFactory(tenant=tenant)
    error = error_of(api_client.delete(f"/api/v1/queues/{route.queue_id}/"), 409)
    assert error["code"] == "queue_in_use"


def test_409_for_a_contact_with_conversations(api_client, tenant):
    conversation = ConversationFactory(tenant=tenant)
    error = error_of(api_client.delete(f"/api/v1/contacts/{conversation.contact_id}/"), 409)
    assert error["code"] == "in_use"
    assert api_client.get(f"/api/v1/contacts/{conversation.contact_id}/").status_code == 200


def test_409_for_an_email_already_on_the_team(api_client, tenant):
    """Only your own team: an account in another tenant answers like a new address (tests/api/test_invites.py)."""
    taken = MembershipFactory(tenant=tenant, role=Role.AGENT).user.email
    error = error_of(api_client.post("/api/v1/agents/", {"email": taken.upper()}, format="json"), 409)
    assert error["code"] == "email_taken"


@override_settings(API_RATE_LIMIT="1/min")
def test_429(api_client):
    api_client.get("/api/v1/contacts/")
    response = api_client.get("/api/v1/contacts/")
    assert error_of(response, 429)["code"] == "rate_limited"
    assert response["Retry-After"]


@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_an_unknown_api_path_answers_in_the_error_shape(api_client, method):
    error = error_of(getattr(api_client, method)("/api/v1/no-such-thing/"), 404)
    assert error == {"code": "not_found", "message": "No such API endpoint.", "fields": {}}


def test_a_missing_trailing_slash_is_named_not_redirected(api_client):
    error = error_of(api_client.post("/api/v1/contacts", {"name": "Ada"}, format="json"), 404)
    assert error["message"] == "No such API endpoint; did you mean /api/v1/contacts/ (with the trailing slash)?"


def test_an_unknown_api_path_says_the_same_without_credentials(client):
    response = client.get("/api/v1/no-such-thing/")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
