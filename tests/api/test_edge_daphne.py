"""The JSON edge on a real daphne server (ASGI, not the test client): the hostile requests of issue 8 each
get a JSON answer in the error shape, never an empty or HTML page, and never a 500."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlencode

import pytest

from contactcenter.services import apikey_create
from tests.factories import TenantFactory, WidgetFactory

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def send(server, method, path, body=b"", headers=None) -> tuple[int, str, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        raw = response.read()
        content_type = response.getheader("Content-Type", "")
    finally:
        connection.close()
    return response.status, content_type, json.loads(raw) if raw else {}


@pytest.fixture
def site(transactional_db):
    tenant = TenantFactory()
    return {
        "auth": {"Authorization": f"Bearer {apikey_create(tenant=tenant, name='edge').plaintext}"},
        "widget": WidgetFactory(tenant=tenant),
    }


def test_hostile_requests_get_the_error_shape_from_daphne(daphne_server, site):
    auth, key = site["auth"], site["widget"].public_key
    fields = urlencode([(f"f{i}", "x") for i in range(2000)]).encode()
    cases = [
        ("POST", "/api/v1/contacts/", b"--x\r\n", {"Content-Type": "multipart/form-data"}, 400, "invalid"),
        ("POST", f"/widget/api/{key}/uploads", b"--x\r\n", {"Content-Type": "multipart/form-data"}, 400, "invalid"),
        ("POST", "/api/v1/contacts/", b'{"name": "' + b"a" * 3 * 1024 * 1024 + b'"}', {}, 413, "too_large"),
        ("POST", "/api/v1/contacts/", fields, {"Content-Type": "application/x-www-form-urlencoded"}, 400, None),
        ("GET", f"/widget/api/{key}/sessions", b"", {}, 405, "method_not_allowed"),
        ("POST", "/api/v1/contacts/", b'{"name": "A\\u0000"}', {}, 400, "invalid_text"),
        ("POST", f"/widget/api/{key}/sessions", b'{"message": "\\ud800"}', {}, 400, "invalid_text"),
        ("POST", "/api/v1/contacts/", b"[" * 60_000, {}, 400, "bad_json"),
    ]
    for method, path, body, headers, status, code in cases:
        headers = {"Content-Type": "application/json", **headers}
        if path.startswith("/api/"):
            headers.update(auth)
        answer = send(daphne_server, method, path, body, headers)
        assert answer[0] == status and answer[1] == "application/json", (path, answer)
        assert set(answer[2]["error"]) >= {"code", "message", "fields"}, (path, answer)
        if code is not None:
            assert answer[2]["error"]["code"] == code, (path, answer)
    # 2,000 fields: too_many_fields (Django's limit, 1,000) whether the form or the field count is read first.
    assert (
        send(
            daphne_server,
            "POST",
            "/api/v1/contacts/",
            fields,
            {**auth, **{"Content-Type": "application/x-www-form-urlencoded"}},
        )[2]["error"]["code"]
        == "too_many_fields"
    )


def test_a_utc_offset_postgresql_refuses_is_read_in_utc(daphne_server, site):
    status, content_type, body = send(
        daphne_server, "GET", "/api/v1/conversations/?created_after=2025-01-31T00:00:00%2B16:00", headers=site["auth"]
    )
    assert (status, content_type, body["results"]) == (200, "application/json", [])
