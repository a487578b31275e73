"""Cursor pagination of the long lists (contacts, conversations): stable pages, no repeats, bad cursors a 400."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlparse

import pytest

from contactcenter.models import Contact
from tests.api.test_errors import error_of
from tests.factories import ContactFactory, ConversationFactory

pytestmark = pytest.mark.django_db


def cursor_of(url: str | None) -> str | None:
    return None if url is None else parse_qs(urlparse(url).query)["cursor"][0]


@pytest.mark.parametrize("path, factory", [("contacts", ContactFactory), ("conversations", ConversationFactory)])
def test_pages_follow_next_without_repeats_or_gaps_even_as_rows_arrive(api_client, tenant, path, factory):
    made = factory.create_batch(5, tenant=tenant)
    seen: list[int] = []
    page = api_client.get(f"/api/v1/{path}/?limit=2").json()
    assert set(page) == {"next", "previous", "results"}
    factory(tenant=tenant)  # newer than the first page: never pushes a row onto the next page twice
    while True:
        seen += [row["id"] for row in page["results"]]
        if page["next"] is None:
            break
        page = api_client.get(f"/api/v1/{path}/?limit=2&cursor={cursor_of(page['next'])}").json()
    assert seen == sorted((row.pk for row in made), reverse=True)


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        base64.b64encode(b"o=0&r=0&p=not-a-date").decode(),
        base64.b64encode(b"o=0&r=0&p=2025-01-01T00:00:00").decode(),  # no time zone
        base64.b64encode(b"o=-5&r=0").decode(),
    ],
)
@pytest.mark.parametrize("path", ["contacts", "conversations"])
def test_a_cursor_the_api_did_not_give_is_a_400_on_cursor(api_client, path, cursor):
    assert list(error_of(api_client.get(f"/api/v1/{path}/?cursor={cursor}"), 400)["fields"]) == ["cursor"]


@pytest.mark.parametrize("query", ["limit=0", "limit=x", "limit=-1", "limit=1.5"])
def test_limit_is_a_whole_number(api_client, query):
    assert list(error_of(api_client.get(f"/api/v1/contacts/?{query}"), 400)["fields"]) == ["limit"]


def test_a_limit_above_the_maximum_counts_as_the_maximum(api_client, tenant):
    Contact.objects.bulk_create([Contact(tenant=tenant, name=str(n)) for n in range(201)])
    assert len(api_client.get("/api/v1/contacts/?limit=100000").json()["results"]) == 200


def test_the_schema_documents_the_cursor(schema):  # noqa: F811
    for path in ("/api/v1/contacts/", "/api/v1/conversations/"):
        operation = schema["paths"][path]["get"]
        names = {p["name"]: p for p in operation["parameters"]}
        assert {"cursor", "limit"} <= set(names), path
        assert "offset" not in names
        assert names["limit"]["schema"]["minimum"] == 1
        assert "400" in operation["responses"]


from tests.api.test_openapi import schema  # noqa: E402, F401 - the module-scoped, validated document
