"""HTTP handlers: parse, authorise, call the domain (service/operations.py), answer. Nothing else."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service import keys, operations
from service.auth import mint_token, tenant_for_stream, tenant_from_header
from service.dashboard import dashboard_stream
from service.errors import NotReady, ServiceError, ServiceUnavailable
from service.events import feed_stream, job_stream, read_feed_backlog, read_job_backlog
from service.jobs import ACTIVE, CANCELLED, COMPLETED, FAILED, STATUSES, Job, ordered
from service.ocr import PageResult, searchable_pdf
from service.operations import Services
from service.params import header_text, parse_choice, parse_cursor, parse_event_id, parse_int, parse_seconds
from service.uploads import read_submission

MAX_WAIT_S = 25
LIST_LIMIT_DEFAULT = 50
LIST_LIMIT_MAX = 200
NO_STORE = {"Cache-Control": "no-store"}


def services_of(request: Request) -> Services:
    services: Services = request.state.services
    return services


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


async def create_job(request: Request) -> Response:
    services = services_of(request)
    tenant = tenant_from_header(request, services.settings)
    wait_s = _wait_param(request)
    submission = await read_submission(
        request, max_bytes=services.settings.max_upload_bytes, installed_langs=services.installed_langs
    )
    job, cached = await operations.submit(services, tenant, submission)
    location = {"Location": f"/jobs/{job['id']}"}
    if cached:
        body = present(services, tenant, job)
        if wait_s is not None:
            body["result"] = await _load_result(services, job["id"])
        return json_response(body, 200, location)
    if wait_s:
        ended = await _wait_unless_disconnected(request, services, job["id"], wait_s)
        if ended is not None:
            body = present(services, tenant, ended)
            if ended["status"] == COMPLETED:
                body["result"] = await _load_result(services, job["id"])
            return json_response(body, 200, location)
    return json_response(present(services, tenant, job), 202, location)


def _wait_param(request: Request) -> float | None:
    raw = request.query_params.get("wait")
    return None if raw is None else parse_seconds(raw, "wait", 0, MAX_WAIT_S)


async def _wait_unless_disconnected(request: Request, services: Services, job_id: str, wait_s: float) -> Job | None:
    """Wait for the job to end; a client that goes away stops the wait (the job itself carries on)."""
    waiter = asyncio.create_task(operations.wait_for_end(services, job_id, wait_s))
    try:
        while not waiter.done():
            await asyncio.wait({waiter}, timeout=0.5)
            if not waiter.done() and await request.is_disconnected():
                return None
        return waiter.result()
    finally:
        waiter.cancel()


async def get_job(request: Request) -> Response:
    services = services_of(request)
    tenant = tenant_from_header(request, services.settings)
    ref = await services.store.get_for_tenant(request.path_params["job_id"], tenant)
    return json_response(present(services, tenant, ref.job))


async def _load_result(services: Services, job_id: str) -> dict[str, Any]:
    raw = await services.redis.get(keys.result(job_id))
    if raw is None:
        raise NotReady("The result is no longer stored.", code="not_found")
    result: dict[str, Any] = json.loads(raw)
    return result


async def get_result(request: Request) -> Response:
    services = services_of(request)
    tenant = tenant_from_header(request, services.settings)
    ref = await services.store.get_for_tenant(request.path_params["job_id"], tenant)
    formats = ("json", "text", "pdf")
    fmt = parse_choice(request.query_params.get("format", "json"), "format", formats, message="format must be json, text or pdf.")
    job = ref.job
    if job["status"] == FAILED:
        error = job["error"] or {"code": "failed", "message": "The job failed."}
        status_code = 422 if error["code"] in _DOCUMENT_ERROR_CODES else 409
        return json_response({"error": error, "job": present(services, tenant, job)}, status_code, NO_STORE)
    if job["status"] == CANCELLED:
        body = {"error": {"code": "cancelled", "message": "The job was cancelled; it has no result."}}
        return json_response(body | {"job": present(services, tenant, job)}, 409, NO_STORE)
    if job["status"] != COMPLETED:
        body = {"error": {"code": "not_ready", "message": f"The job is {job['status']}; its result is not ready."}}
        return json_response(body | {"job": present(services, tenant, job)}, 409, NO_STORE)
    result = await _load_result(services, job["id"])
    if fmt == "text":
        return Response(result["text"], media_type="text/plain; charset=utf-8", headers=NO_STORE)
    if fmt == "pdf":
        pdf = await _searchable_pdf(services, job["id"], ref.meta["media_type"], result)
        stem = job["filename"].rsplit(".", 1)[0] or "document"
        headers = NO_STORE | {"Content-Disposition": f'attachment; filename="{_ascii(stem)}.searchable.pdf"'}
        return Response(pdf, media_type="application/pdf", headers=headers)
    return json_response(result, headers=NO_STORE)


_DOCUMENT_ERROR_CODES = frozenset(
    {"unprocessable_document", "encrypted_document", "too_many_pages", "unsupported_media_type", "payload_too_large"}
)


def _ascii(name: str) -> str:
    return "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)


async def _searchable_pdf(services: Services, job_id: str, media_type: str, result: dict[str, Any]) -> bytes:
    async with services.redis.pipeline(transaction=False) as pipe:
        pipe.get(keys.document(job_id))
        pipe.hgetall(keys.layers(job_id))
        document, layers = await pipe.execute()
    if document is None:
        raise NotReady("The document is no longer stored.", code="not_found")
    pages = [
        PageResult(
            number=p["number"],
            text=p["text"],
            source=p["source"],
            confidence=p["confidence"],
            rotation=p["rotation"],
            width=p["width"],
            height=p["height"],
            text_pdf=layers.get(str(p["number"]).encode()),
        )
        for p in result["pages"]
    ]
    return await asyncio.to_thread(searchable_pdf, document, media_type, pages)


async def delete_job(request: Request) -> Response:
    services = services_of(request)
    tenant = tenant_from_header(request, services.settings)
    ref = await services.store.get_for_tenant(request.path_params["job_id"], tenant)
    if ref.job["status"] in ACTIVE:
        job = await operations.cancel(services, ref)
        return json_response(present(services, tenant, job), 202)
    await operations.delete(services, ref)
    return Response(status_code=204)


async def list_jobs(request: Request) -> Response:
    services = services_of(request)
    tenant = tenant_from_header(request, services.settings)
    status = request.query_params.get("status")
    if status is not None:
        status = parse_choice(status, "status", STATUSES)
    limit = parse_int(request.query_params.get("limit", str(LIST_LIMIT_DEFAULT)), "limit", 1, LIST_LIMIT_MAX)
    cursor = parse_cursor(request.query_params.get("cursor"))
    jobs, next_cursor = await services.store.list_for_tenant(tenant, status=status, limit=limit, cursor=cursor)
    return json_response(
        {
            "jobs": [present(services, tenant, job) for job in jobs],
            "next": None if next_cursor is None else str(int(next_cursor)),
        }
    )


def _last_event_id(request: Request) -> int | None:
    return parse_event_id(header_text(request.headers, "last-event-id") or request.query_params.get("lastEventId"))


def _event_response(services: Services, content: Any) -> Response:
    return EventSourceResponse(
        content,
        ping=services.settings.sse_ping_s,
        ping_message_factory=lambda: ServerSentEvent(comment="ping", sep="\n"),
        sep="\n",
        # Tell proxies (nginx and peers) not to buffer the stream; SSE is useless if held back.
        headers={"X-Accel-Buffering": "no", "Cache-Control": "no-store"},
    )


async def job_events(request: Request) -> Response:
    services = services_of(request)
    job_id = request.path_params["job_id"]
    tenant = tenant_for_stream(request, services.settings, f"job:{job_id}")
    await services.store.get_for_tenant(job_id, tenant)
    if not services.hub.connected.is_set():
        raise ServiceUnavailable("The event stream is unavailable: Redis is not reachable.", retry_after_s=5)
    last_event_id = _last_event_id(request)
    # Subscribe before reading the backlog: see service/events.py for why this order loses nothing.
    subscription = services.hub.job(job_id)
    try:
        backlog, _ = await read_job_backlog(services.redis, job_id, last_event_id)
        if not backlog and last_event_id is not None:
            ref = await services.store.get(job_id)
            if ref is None or ref.job["status"] not in ACTIVE:
                # The client has seen the end already; 204 tells EventSource to stop reconnecting.
                subscription.close()
                return Response(status_code=204)
    except BaseException:
        subscription.close()
        raise

    async def stream() -> Any:
        try:
            async for event in job_stream(
                subscription=subscription,
                backlog=backlog,
                present=lambda job: present(services, tenant, job),
                retry_ms=services.settings.sse_retry_ms,
            ):
                yield event
        finally:
            subscription.close()

    return _event_response(services, stream())


async def tenant_events(request: Request) -> Response:
    services = services_of(request)
    tenant = tenant_for_stream(request, services.settings, "feed")
    if not services.hub.connected.is_set():
        raise ServiceUnavailable("The event stream is unavailable: Redis is not reachable.", retry_after_s=5)
    last_event_id = _last_event_id(request)

    async def snapshot() -> list[Job]:
        jobs, _ = await services.store.list_for_tenant(tenant, status=None, limit=50, cursor=None)
        return jobs

    subscription = services.hub.tenant(tenant)
    try:
        backlog, seq_now = await read_feed_backlog(services.redis, tenant, last_event_id, snapshot)
    except BaseException:
        subscription.close()
        raise

    async def stream() -> Any:
        try:
            async for event in feed_stream(
                subscription=subscription,
                backlog=backlog,
                seq_now=seq_now,
                present=lambda job: present(services, tenant, job),
                retry_ms=services.settings.sse_retry_ms,
            ):
                yield event
        finally:
            subscription.close()

    return _event_response(services, stream())


async def feed_link(request: Request) -> Response:
    """The tenant's `/events` link with a token, for EventSource (which cannot send headers)."""
    services = services_of(request)
    tenant = tenant_from_header(request, services.settings)
    token = mint_token(tenant, "feed", services.settings.secret_key, services.settings.sse_token_ttl_s)
    return json_response({"tenant": tenant, "links": {"events": f"/events?token={token}"}})


async def cache_stats(request: Request) -> Response:
    services = services_of(request)
    tenant = tenant_from_header(request, services.settings)
    return json_response(await services.cache.stats(tenant))


async def clear_cache(request: Request) -> Response:
    services = services_of(request)
    tenant = tenant_from_header(request, services.settings)
    await services.cache.clear(tenant)
    return Response(status_code=204)


async def ops_events(request: Request) -> Response:
    """The operations view's live figures (aggregates only, like /metrics: no key needed)."""
    services = services_of(request)
    return _event_response(services, dashboard_stream(services))


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


WORKER_HEARTBEAT_MAX_AGE_S = 30


async def readyz(request: Request) -> Response:
    services = services_of(request)
    try:
        await services.redis.ping()
        newest = await services.redis.zrevrange(keys.WORKERS, 0, 0, withscores=True)
    except Exception:  # noqa: BLE001 - whatever stops Redis answering, the process is not ready
        return json_response({"status": "unavailable", "reason": "Redis is not reachable"}, 503, {"Retry-After": "5"})
    if not newest or newest[0][1] < time.time() - WORKER_HEARTBEAT_MAX_AGE_S:
        reason = f"no worker has sent a heartbeat in the last {WORKER_HEARTBEAT_MAX_AGE_S} s"
        return json_response({"status": "unavailable", "reason": reason}, 503, {"Retry-After": "5"})
    return json_response({"status": "ready", "workers_seen": len(newest)})


def error_response(exc: ServiceError) -> Response:
    headers = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s is not None else None
    return json_response({"error": exc.to_dict()}, exc.status_code, headers)
