"""The JSON endpoints' edge: bodies Django refuses, routes and methods no view takes, crashes and text that
cannot be stored all answer in the one error shape (contactcenter.middleware, the API's parsers)."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from django.test import Client

from chat.tokens import visitor_token_issue
from contactcenter.models import Contact
from tests.api.test_errors import error_of
from tests.factories import ConversationFactory, WidgetFactory

pytestmark = pytest.mark.django_db

NUL = json.dumps({"name": "Ada\x00"})
SURROGATE = '{"name": "Ada \\ud800"}'


# --- bodies Django refuses to read ------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["api", "widget"])
def test_a_multipart_body_without_a_boundary_is_a_400_in_the_error_shape(api_client, tenant, where):
    url, headers = "/api/v1/contacts/", {}
    if where == "widget":
        widget = WidgetFactory(tenant=tenant)
        url = f"/widget/api/{widget.public_key}/uploads"
        token = visitor_token_issue(tenant_id=tenant.pk, widget_id=widget.pk, visitor_id="v1")
        headers = {"HTTP_X_VISITOR_TOKEN": token}
    response = api_client.generic("POST", url, b"--x\r\n", content_type="multipart/form-data", **headers)
    error = error_of(response, 400)
    assert error["code"] == "invalid" and "boundary" in error["message"]


def test_a_body_over_the_memory_limit_is_a_413_in_the_error_shape(api_client, settings):
    body = json.dumps({"name": "A" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)})
    response = api_client.generic("POST", "/api/v1/contacts/", body, content_type="application/json")
    assert error_of(response, 413)["code"] == "too_large"
    assert not Contact.objects.exists()


def test_too_many_form_fields_is_a_400_in_the_error_shape(api_client, settings):
    body = urlencode([(f"f{i}", "x") for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1000)])
    response = api_client.generic("POST", "/api/v1/contacts/", body, content_type="application/x-www-form-urlencoded")
    assert error_of(response, 400)["code"] == "too_many_fields"


def test_json_nested_past_the_parsers_recursion_is_bad_json(api_client):
    response = api_client.generic("POST", "/api/v1/contacts/", "[" * 100_000, content_type="application/json")
    error = error_of(response, 400)
    assert error["code"] == "bad_json" and "nested" in error["message"]
    error = error_of(api_client.generic("POST", "/api/v1/contacts/", "{", content_type="application/json"), 400)
    assert error["code"] == "bad_json"


# --- routes, methods, CSRF and crashes outside the views -------------------------------------------------------


def test_a_405_on_the_widget_api_is_json_and_keeps_allow(client, tenant):
    widget = WidgetFactory(tenant=tenant)
    response = client.get(f"/widget/api/{widget.public_key}/sessions")
    error = error_of(response, 405)
    assert error["code"] == "method_not_allowed"
    assert response["Allow"] == "POST"


@pytest.mark.parametrize("path", ["/widget/api/wk_x/nothing-here", "/console/api/nothing-here"])
def test_an_unknown_widget_or_console_path_is_a_json_404(client, path):
    assert error_of(client.get(path), 404)["code"] == "not_found"


def test_a_console_write_without_the_csrf_token_is_a_json_403(agent, tenant):
    conversation = ConversationFactory(tenant=tenant)
    csrf = Client(enforce_csrf_checks=True)
    csrf.force_login(agent)
    response = csrf.post(f"/console/api/conversations/{conversation.pk}/uploads", data={})
    error = error_of(response, 403)
    assert error["code"] == "csrf_failed" and "X-CSRFToken" in error["message"]


def test_a_crash_is_a_json_500(client, tenant, monkeypatch):
    widget = WidgetFactory(tenant=tenant)

    def broken(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("chat.widget_api.widget_admission", broken)
    client.raise_request_exception = False
    error = error_of(client.get(f"/widget/api/{widget.public_key}/config"), 500)
    assert error["code"] == "server_error" and "boom" not in error["message"]


def test_pages_outside_the_json_prefixes_keep_their_html(client):
    response = client.get("/settings/no-such-page/")
    assert response.status_code == 404 and not response["Content-Type"].startswith("application/json")


# --- text that cannot be stored ------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [NUL, SURROGATE], ids=["nul", "surrogate"])
def test_unstorable_json_text_is_invalid_input_naming_the_field(api_client, body):
    response = api_client.generic("POST", "/api/v1/contacts/", body, content_type="application/json")
    error = error_of(response, 400)
    assert error["code"] == "invalid_text" and list(error["fields"]) == ["name"]
    assert not Contact.objects.exists()


def test_unstorable_text_deep_in_a_body_is_named_by_its_path(api_client):
    body = '{"name": "Shop", "survey_fields": [{"key": "k", "label": "L\\u0000"}]}'
    error = error_of(api_client.generic("POST", "/api/v1/widgets/", body, content_type="application/json"), 400)
    assert error["code"] == "invalid_text" and list(error["fields"]) == ["survey_fields.0.label"]


@pytest.mark.parametrize("method", ["POST", "PATCH"])
@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "multipart/form-data"])
def test_a_nul_in_form_data_is_invalid_input(api_client, tenant, method, content_type):
    contact = Contact.objects.create(tenant=tenant, name="Ada")
    url = "/api/v1/contacts/" if method == "POST" else f"/api/v1/contacts/{contact.pk}/"
    if content_type == "multipart/form-data":
        response = getattr(api_client, method.lower())(url, {"name": "Ada\x00"}, format="multipart")
    else:
        response = api_client.generic(method, url, "name=Ada%00", content_type=content_type)
    error = error_of(response, 400)
    assert error["code"] == "invalid_text" and list(error["fields"]) == ["name"]
    assert list(Contact.objects.values_list("name", flat=True)) == ["Ada"]


def test_a_nul_in_the_query_string_is_invalid_input(api_client):
    error = error_of(api_client.get("/api/v1/conversations/?status=open%00"), 400)
    assert error["code"] == "invalid_text" and list(error["fields"]) == ["status"]


def test_a_nul_in_a_settings_page_form_is_a_form_error(client, admin):
    """Settings pages are HTML forms: Django's CharField refuses NUL (ProhibitNullCharactersValidator)."""
    client.force_login(admin)
    response = client.post("/settings/templates/new/", {"name": "Hi\x00", "body": "Hello"})
    assert response.status_code == 200
    assert "Null characters are not allowed." in response.content.decode()


# --- numbers past what the database stores ---------------------------------------------------------------------

HUGE = str(10**20)  # past PostgreSQL's bigint


@pytest.mark.parametrize(
    "url",
    [
        f"/api/v1/conversations/?agent={HUGE}",
        f"/api/v1/conversations/?contact={HUGE}",
        f"/api/v1/contacts/{HUGE}/",
        f"/api/v1/templates/?offset={HUGE}",
        f"/api/v1/contacts/?limit={HUGE}",
        f"/api/v1/templates/?limit={HUGE}",
        f"/api/v1/queues/{HUGE}/members/",
    ],
)
def test_a_number_past_bigint_never_reaches_the_database_as_a_500(api_client, url):
    response = api_client.get(url)
    assert response.status_code in (200, 400, 404), response.content
    assert response["Content-Type"] == "application/json"


def test_a_message_cursor_past_bigint(api_client, tenant):
    conversation = ConversationFactory(tenant=tenant)
    response = api_client.get(f"/api/v1/conversations/{conversation.pk}/messages/?after={HUGE}")
    assert response.status_code in (200, 400), response.content


@pytest.mark.parametrize("query", [f"before={HUGE}", f"limit={HUGE}", "before=-1", "limit=abc", "before=%00"])
def test_console_history_parameters_never_give_a_500(agent, tenant, query):
    conversation = ConversationFactory(tenant=tenant, assignee=agent)
    client = Client()
    client.force_login(agent)
    response = client.get(f"/console/api/conversations/{conversation.pk}/history?{query}")
    assert response.status_code in (200, 400), response.content
    assert response["Content-Type"] == "application/json"


@pytest.mark.parametrize("query", ["q=a%00b", "contact=a%00b"])
def test_a_nul_in_a_pages_query_string_is_a_400_not_a_500(agent, query):
    client = Client(raise_request_exception=False)
    client.force_login(agent)
    response = client.get(f"/console/conversations/?{query}")
    assert response.status_code == 400
    assert b"cannot be stored" in response.content
