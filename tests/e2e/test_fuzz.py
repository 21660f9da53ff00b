"""Property-based tests of the HTTP API from its own OpenAPI schema: no 5xx, every error in the documented shape."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from service.api.openapi import SPEC
from tests.conftest import Service


@schemathesis.serializer("application/pdf", "image/png")
def _raw_bytes(ctx: schemathesis.SerializationContext, value: object) -> bytes:
    """Documents go as raw bodies: whatever hypothesis generated, as bytes."""
    return value if isinstance(value, bytes) else str(value).encode()


# The tenant feed never ends by itself; everything else answers (a job stream of an unknown id is a 404).
schema = schemathesis.openapi.from_dict(SPEC).exclude(path="/events")


@pytest.fixture
def base_url(live_service: Service) -> str:
    return live_service.url


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_documented_error_bodies(case: schemathesis.Case, base_url: str) -> None:
    response = case.call(base_url=base_url, timeout=30)
    assert response.status_code < 500 or response.status_code == 503, (case.method, case.path, response.text)
    if response.status_code >= 400:
        body = response.json()
        assert set(body) >= {"error"} and set(body["error"]) >= {"code", "message"}, body
        assert body["error"]["code"].replace("_", "").isalpha()
