"""How the web answers: job objects with their links, JSON bodies, and the error body."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, Response

from service.api.auth import mint_token
from service.api.context import Services
from service.errors import ServiceError
from service.jobs.record import Job, ordered

NO_STORE = {"Cache-Control": "no-store"}


def present(services: Services, tenant: str, job: Job) -> dict[str, Any]:
    """The job object as clients see it: with links, the events link carrying a token scoped to this job."""
    settings = services.settings
    token = mint_token(tenant, f"job:{job['id']}", settings.secret_key, settings.sse_token_ttl_s)
    return ordered(job) | {
        "links": {
            "self": f"/jobs/{job['id']}",
            "events": f"/jobs/{job['id']}/events?token={token}",
            "result": f"/jobs/{job['id']}/result",
        }
    }


def json_response(payload: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(payload, status_code=status_code, headers=headers)


def error_response(exc: ServiceError) -> Response:
    headers = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s is not None else None
    return json_response({"error": exc.to_dict()}, exc.status_code, headers)
