"""schemathesis over the whole OpenAPI schema: generated requests (bounded) against the app, with
real credentials; no server error, and every documented response matches the schema."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from hive_project.wsgi import application

pytestmark = pytest.mark.django_db

CHECKS = [not_a_server_error, content_type_conformance, response_schema_conformance]


@pytest.fixture
def keep_test_connection_open(admin_headers):
    """As Django's test client does: a request must not close the test's transaction-bound connection."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def admin_headers(personas, acme_task) -> dict[str, str]:
    return {"X-API-Key": personas["admin_key"].client._credentials["HTTP_X_API_KEY"]}


@pytest.fixture
def api_schema(admin_headers, keep_test_connection_open):
    return schemathesis.openapi.from_wsgi("/api/schema/?format=json", application, headers=admin_headers)


def test_api_conforms_to_its_schema(api_schema, admin_headers, keep_test_connection_open):
    """Every operation, up to a bounded number of generated cases each (schemathesis' pytest
    integration needs module-level schemas; the schema needs the test database, so drive it here)."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 15, [op.label for op in operations]
    failures: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        # derandomize: the same bounded examples every run, so CI is reproducible (widen max_examples locally)
        @settings(
            max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True
        )
        def run(case) -> None:
            response = case.call(headers=admin_headers)
            case.validate_response(response, checks=CHECKS)

        try:
            run()
        except BaseException as exc:  # collect every operation's failure, then report them together
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
    assert not failures, "\n\n".join(failures)
