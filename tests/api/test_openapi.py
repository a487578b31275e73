"""The OpenAPI document: valid without a warning, every route in it, examples and errors; docs served locally."""

from __future__ import annotations

import re

import pytest
import yaml
from django.contrib.staticfiles import finders
from django.core.management import call_command

from tests.api.test_isolation import ROUTES, Route

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def schema(tmp_path_factory) -> dict:
    """Generated and validated by the management command, failing on any warning."""
    out = tmp_path_factory.mktemp("openapi") / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    return yaml.safe_load(out.read_text())


def schema_path(route: Route) -> str:
    """`^contacts/(?P<contact_pk>[^/.]+)/identities/$` → `/api/v1/contacts/{contact_pk}/identities/`."""
    from contactcenter.wiring import api_urls

    (pattern,) = [
        p for p in api_urls.urlpatterns if p.name == route.name and "format" not in p.pattern.regex.groupindex
    ]
    # drf-spectacular names the row's own key after the model's primary key: `id`.
    path = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: "{id}" if m[1] == "pk" else "{" + m[1] + "}", str(pattern.pattern))
    return "/api/v1/" + path.strip("^$")


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.name)
def test_every_route_and_method_is_documented(schema, route):
    operations = schema["paths"][schema_path(route)]
    assert set(route.methods) <= set(operations)


def operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_every_operation_documents_its_errors_in_the_one_shape(schema):
    for path, method, operation in operations(schema):
        expected = {"401", "403", "429"} | ({"400", "409"} if method in ("post", "put", "patch") else set())
        if "{" in path:
            expected.add("404")
        assert expected <= set(operation["responses"]), (method, path)
        for code in expected:
            content = operation["responses"][code]["content"]["application/json"]
            assert content["schema"] == {"$ref": "#/components/schemas/Error"}
    assert set(schema["components"]["schemas"]["Error"]["properties"]) == {"error"}


def test_conflicts_and_duplicates_are_described(schema):
    create_template = schema["paths"]["/api/v1/templates/"]["post"]
    assert "A duplicate" in create_template["responses"]["400"]["description"]
    assert "`in_use`" in create_template["responses"]["409"]["description"]


@pytest.mark.parametrize(
    "path, method",
    [
        ("/api/v1/contacts/", "post"),
        ("/api/v1/contacts/{contact_pk}/identities/", "post"),
        ("/api/v1/widgets/", "post"),
        ("/api/v1/queues/", "post"),
        ("/api/v1/queues/{queue_pk}/members/", "post"),
        ("/api/v1/agents/", "post"),
        ("/api/v1/agents/{id}/", "patch"),
        ("/api/v1/templates/", "post"),
        ("/api/v1/api-keys/", "post"),
        ("/api/v1/channels/", "post"),
        ("/api/v1/conversations/{id}/messages/", "get"),
    ],
)
def test_main_operations_carry_examples(schema, path, method):
    operation = schema["paths"][path][method]
    bodies = [operation.get("requestBody", {}).get("content", {}).get("application/json", {})]
    bodies += [r.get("content", {}).get("application/json", {}) for r in operation["responses"].values()]
    assert any(body.get("examples") for body in bodies)
    assert operation["summary"]


def test_conversation_filters_and_the_cursor_are_parameters(schema):
    listed = {p["name"] for p in schema["paths"]["/api/v1/conversations/"]["get"]["parameters"]}
    assert {"status", "channel", "agent", "contact", "created_after", "created_before"} <= listed
    paged = {p["name"] for p in schema["paths"]["/api/v1/conversations/{id}/messages/"]["get"]["parameters"]}
    assert {"after", "limit"} <= paged


def test_the_schema_is_served(client):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    assert b"/api/v1/conversations/{id}/messages/" in response.content


def test_the_docs_page_loads_everything_from_this_server(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in assets
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui.css" in assets
    for asset in assets:
        if asset == "/api/docs/?script=":  # the split view's start-up script: no inline script on the page
            script = client.get(asset)
            assert script.status_code == 200 and "javascript" in script["Content-Type"]
            assert "cdn" not in script.content.decode().lower()
            continue
        assert asset.startswith("/static/"), asset
        assert finders.find(asset.removeprefix("/static/")), f"{asset} is not among the static files"
    assert "cdn" not in page.lower()


def test_every_operation_shows_an_example_of_its_success_and_of_its_request_body(schema):
    missing = []
    for path, method, operation in operations(schema):
        for code, response in operation["responses"].items():
            examples = response.get("content", {}).get("application/json", {}).get("examples")
            if code.startswith("2") and "content" in response and not examples:
                missing.append(f"{method.upper()} {path} {code}")
        body = operation.get("requestBody", {}).get("content", {})
        if body and not body.get("application/json", {}).get("examples"):
            missing.append(f"{method.upper()} {path} request")
    assert not missing, missing


def test_a_subscriptions_rotation_time_is_documented_as_nullable(schema):
    """Null until a rotation (found by Schemathesis: the document said a string and every new subscription was null)."""
    for name in ("WebhookSubscription", "WebhookSubscriptionCreated"):
        assert schema["components"]["schemas"][name]["properties"]["rotation_expires_at"]["nullable"] is True
