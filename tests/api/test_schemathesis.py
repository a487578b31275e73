"""Schemathesis against /api/schema/ with a real API key: no 5xx on any generated input, every response as the
document says, every error in the one shape.

Runs on the test database through Django's WSGI app (same thread, same transaction as the test). Bounded: a
few examples per operation, so the whole pass takes about a minute on a small machine.
"""

from __future__ import annotations

import json
import os

import pytest
import schemathesis
from django.core.cache import cache
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from contactcenter.services import apikey_create
from tests.factories import TenantFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

# A deeper run by hand: SCHEMATHESIS_MAX_EXAMPLES=100 (the CI pass keeps it short).
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "12"))


def error_in_the_one_shape(ctx, response, case) -> bool | None:
    """Every 4xx answers `{"error": {"code", "message", "fields"}}` (a 5xx is not_a_server_error's)."""
    if not 400 <= response.status_code < 500:
        return None
    body = json.loads(response.content)
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "fields"}, body
    assert isinstance(error["code"], str) and error["code"], body
    assert isinstance(error["message"], str) and error["message"], body
    assert isinstance(error["fields"], dict), body
    assert all(isinstance(v, list) and all(isinstance(m, str) for m in v) for v in error["fields"].values()), body
    return True


@pytest.fixture
def key(db) -> str:
    return apikey_create(tenant=TenantFactory(), name="schemathesis").plaintext


@pytest.fixture
def wsgi_app():
    """Django's WSGI app on the test's own connection: the handler would close it after each request (as
    Django's test client, keep it open: the test's transaction lives on it)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield get_wsgi_application()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(key, settings_override, wsgi_app):
    app = wsgi_app
    loaded = schemathesis.openapi.from_wsgi("/api/schema/", app, headers={"Authorization": f"Bearer {key}"})
    # Revoking the key the run authenticates with would turn every later call into a 401.
    return loaded.exclude(path_regex=r"^/api/v1/api-keys/\{id\}/$", method="DELETE")


@pytest.fixture
def settings_override(settings):
    settings.API_RATE_LIMIT = "1000000/min"
    cache.clear()
    return settings


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_the_api_keeps_its_document(api_schema, key, mode):
    """Every operation, `MAX_EXAMPLES` generated requests each; failures are collected, then reported together."""
    failures: dict[str, str] = {}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 40

    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],  # no shrinking: the first failing input is reported as is
        )
        def run(case):
            # A request valid by the document may still break a rule JSON Schema does not express (a channel's
            # `kind` decides which fields it needs; an account must fit its channel): the 400 is documented.
            excluded = [positive_data_acceptance]
            if case.media_type != "application/json":
                # A form body cannot carry most invalid values (null, [], {} become an absent or empty field, which
                # DRF's form semantics read as "use the default"): rejection of invalid data is checked on JSON.
                excluded.append(negative_data_rejection)
            case.call_and_validate(
                headers={"Authorization": f"Bearer {key}"},
                additional_checks=[error_in_the_one_shape],
                excluded_checks=excluded,
            )

        try:
            run()
        except Exception as exc:
            failures[operation.label] = str(exc)[:3000]
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
