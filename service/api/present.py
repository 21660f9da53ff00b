"""How the web answers: job objects with their links, JSON bodies, and the error body."""

from __future__ import annotations

from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Send

from service.api.auth import mint_token
from service.api.context import Services
from service.errors import AnswerCut, ServiceError
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


class StreamedAnswer(StreamingResponse):
    """A body sent as it is read (results, page listings), a batch of pages at a time.

    Its status goes out before the rest is read, so an error on the way (the job deleted or expired
    while it is sent, Redis lost) can no longer be an error answer, and ending the body as usual would
    pass a short answer off as whole. It becomes AnswerCut, and the edge closes the connection without
    the body's end: the client sees an incomplete answer (curl: "transfer closed"; httpx: an
    incomplete chunked read), as it would from a server that died."""

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        except (ServiceError, RedisConnectionError, RedisTimeoutError) as exc:
            raise AnswerCut(str(exc) or type(exc).__name__) from exc
