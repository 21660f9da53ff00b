"""`/jobs`: submit (with the optional synchronous wait), read, list, cancel and delete jobs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from service.api.auth import tenant_from_header
from service.api.context import Services, services_of
from service.api.present import StreamedAnswer, json_response, present
from service.api.uploads import read_submission
from service.jobs import control
from service.jobs.record import ACTIVE, COMPLETED, STATUSES, Job
from service.jobs.results import open_result
from service.jobs.submit import submit
from service.params import parse_choice, parse_cursor, parse_int, parse_seconds

MAX_WAIT_S = 25
LIST_LIMIT_DEFAULT = 50
LIST_LIMIT_MAX = 200


async def create_job(request: Request) -> Response:
    services = services_of(request)
    tenant = tenant_from_header(request, services.settings)
    wait_s = _wait_param(request)
    submission = await read_submission(
        request, max_bytes=services.settings.max_upload_bytes, installed_langs=services.installed_langs
    )
    submitted = await submit(services.settings, services.store, services.cache, tenant, submission)
    job = submitted.job
    location = {"Location": f"/jobs/{job['id']}"}
    if submitted.cached:
        if wait_s is not None:
            return await _with_result(services, present(services, tenant, job), location)
        return json_response(present(services, tenant, job), 200, location)
    if submitted.replayed:
        # A retried submission (its Idempotency-Key): 200 with the first job, waited for as asked.
        if job["status"] in ACTIVE and wait_s:
            job = await _wait_unless_disconnected(request, services, job["id"], wait_s) or job
        if job["status"] == COMPLETED and wait_s is not None:
            return await _with_result(services, present(services, tenant, job), location)
        return json_response(present(services, tenant, job), 200, location)
    if wait_s:
        ended = await _wait_unless_disconnected(request, services, job["id"], wait_s)
        if ended is not None:
            if ended["status"] == COMPLETED:
                return await _with_result(services, present(services, tenant, ended), location)
            return json_response(present(services, tenant, ended), 200, location)
    return json_response(present(services, tenant, job), 202, location)


async def _with_result(services: Services, body: dict[str, Any], headers: dict[str, str]) -> Response:
    """The job object with its result under "result", streamed: the result is never built in one piece."""
    result = await open_result(services.redis, body["id"])

    async def chunks() -> AsyncIterator[bytes]:
        yield json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()[:-1] + b',"result":'
        async for chunk in result.json():
            yield chunk
        yield b"}"

    return StreamedAnswer(chunks(), media_type="application/json", headers=headers)


def _wait_param(request: Request) -> float | None:
    raw = request.query_params.get("wait")
    return None if raw is None else parse_seconds(raw, "wait", 0, MAX_WAIT_S)


async def _wait_unless_disconnected(request: Request, services: Services, job_id: str, wait_s: float) -> Job | None:
    """Wait for the job to end; a client that goes away stops the wait (the job itself carries on)."""
    waiter = asyncio.create_task(control.wait_for_end(services.hub, services.store, job_id, wait_s))
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


async def delete_job(request: Request) -> Response:
    services = services_of(request)
    tenant = tenant_from_header(request, services.settings)
    ref = await services.store.get_for_tenant(request.path_params["job_id"], tenant)
    if ref.job["status"] in ACTIVE:
        job = await control.cancel(services.store, ref)
        return json_response(present(services, tenant, job), 202)
    await control.delete(services.store, services.cache, ref)
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
            "next": None if next_cursor is None else f"{next_cursor[0]}-{next_cursor[1]}",
        }
    )
