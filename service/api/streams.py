"""The event streams: a job's (`/jobs/<id>/events`) and a tenant's feed (`/events`).

Each stream subscribes to the process's hub before it reads its backlog from Redis, so nothing
published in between is lost (service/jobs/events.py says why); events seen twice are skipped by id.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from sse_starlette import ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response

from service.api.auth import mint_token, tenant_for_stream, tenant_from_header
from service.api.context import Services, services_of
from service.api.present import json_response, present
from service.api.sse import comment, event_response, sse
from service.errors import ServiceUnavailable
from service.jobs.events import (
    FEED_SNAPSHOT_JOBS,
    Present,
    Subscription,
    read_feed_backlog,
    read_job_backlog,
)
from service.jobs.page_events import PAGE
from service.jobs.record import ACTIVE, TERMINAL, Job
from service.params import header_text, parse_event_id


def _last_event_id(request: Request) -> int | None:
    return parse_event_id(header_text(request.headers, "last-event-id") or request.query_params.get("lastEventId"))


def _require_hub(services: Services) -> None:
    if not services.hub.connected.is_set():
        raise ServiceUnavailable("The event stream is unavailable: Redis is not reachable.", retry_after_s=5)


def _subscribe(
    services: Services, tenant: str, subscribe: Callable[[], Subscription]
) -> tuple[Subscription, Callable[[], None]]:
    """A stream's slot and its hub subscription, taken before its backlog is read (see the module's
    docstring), and the one function that gives both back."""
    give_back = services.streams.take(tenant)
    subscription = subscribe()

    def close() -> None:
        subscription.close()
        give_back()

    return subscription, close


def _respond(services: Services, content: AsyncIterator[ServerSentEvent], on_close: Callable[[], None]) -> Response:
    return event_response(
        content,
        ping_s=services.settings.sse_ping_s,
        send_timeout_s=services.settings.sse_send_timeout_s,
        on_close=on_close,
    )


async def job_events(request: Request) -> Response:
    services = services_of(request)
    job_id = request.path_params["job_id"]
    tenant = tenant_for_stream(request, services.settings, f"job:{job_id}")
    await services.store.get_for_tenant(job_id, tenant)
    _require_hub(services)
    last_event_id = _last_event_id(request)
    subscription, close = _subscribe(services, tenant, lambda: services.hub.job(job_id))
    try:
        backlog, _ = await read_job_backlog(services.redis, job_id, last_event_id)
        if not backlog and last_event_id is not None:
            ref = await services.store.get(job_id)
            if ref is None or ref.job["status"] not in ACTIVE:
                # The client has seen the end already; 204 tells EventSource to stop reconnecting.
                close()
                return Response(status_code=204)
    except BaseException:
        close()
        raise
    events = job_stream(
        subscription=subscription,
        backlog=backlog,
        present=lambda job: present(services, tenant, job),
        retry_ms=services.settings.sse_retry_ms,
    )
    return _respond(services, events, close)


async def tenant_events(request: Request) -> Response:
    services = services_of(request)
    tenant = tenant_for_stream(request, services.settings, "feed")
    _require_hub(services)
    last_event_id = _last_event_id(request)

    async def snapshot() -> list[Job]:
        jobs, _ = await services.store.list_for_tenant(tenant, status=None, limit=FEED_SNAPSHOT_JOBS, cursor=None)
        return jobs

    subscription, close = _subscribe(services, tenant, lambda: services.hub.tenant(tenant))
    try:
        backlog, seq_now = await read_feed_backlog(services.redis, tenant, last_event_id, snapshot)
    except BaseException:
        close()
        raise
    events = feed_stream(
        subscription=subscription,
        backlog=backlog,
        seq_now=seq_now,
        present=lambda job: present(services, tenant, job),
        retry_ms=services.settings.sse_retry_ms,
    )
    return _respond(services, events, close)


async def feed_link(request: Request) -> Response:
    """The tenant's `/events` link with a token, for EventSource (which cannot send headers)."""
    services = services_of(request)
    tenant = tenant_from_header(request, services.settings)
    token = mint_token(tenant, "feed", services.settings.secret_key, services.settings.sse_token_ttl_s)
    return json_response({"tenant": tenant, "links": {"events": f"/events?token={token}"}})


async def job_stream(
    *,
    subscription: Subscription,
    backlog: list[tuple[int, str, Any]],
    present: Present,
    retry_ms: int,
) -> AsyncIterator[ServerSentEvent]:
    """The events of one job: the backlog, then live events, until its terminal event. A page event's
    data goes out as it is; the others carry the job, presented."""
    last_sent = 0
    first = True
    for seq, name, payload in backlog:
        yield sse(seq, name, payload if name == PAGE else present(payload), retry_ms if first else None)
        first = False
        last_sent = seq
        if name != PAGE and payload["status"] in TERMINAL:
            return
    while True:
        event = await subscription.next()
        if event is None:
            return
        if event.seq <= last_sent and event.name != "deleted":
            continue
        if event.name == "deleted":
            yield sse(max(last_sent + 1, event.seq), "deleted", {"id": event.job_id}, retry_ms if first else None)
            return
        data = event.data if event.data is not None else event.present_with(present)
        yield sse(event.seq, event.name, data, retry_ms if first else None)
        first = False
        last_sent = event.seq
        if event.terminal:
            return


async def feed_stream(
    *,
    subscription: Subscription,
    backlog: list[tuple[int, str, Any]],
    seq_now: int,
    present: Present,
    retry_ms: int,
) -> AsyncIterator[ServerSentEvent]:
    """Every change to any of a tenant's jobs; it ends only when the hub drops it."""
    last_sent = seq_now if not backlog else 0
    first = True
    for seq, name, payload in backlog:
        data: dict[str, Any]
        if name == "snapshot":
            data = {"jobs": [present(job) for job in payload["jobs"]]}
        elif name == "deleted":
            data = {"id": payload["id"]}
        else:
            data = present(payload)
        yield sse(seq, name, data, retry_ms if first else None)
        first = False
        last_sent = max(last_sent, seq)
    if first:
        # Nothing to replay: a comment still tells the client the stream is open, and the retry field
        # rides on it.
        yield comment("connected", retry_ms)
    while True:
        event = await subscription.next()
        if event is None:
            return
        if event.tseq <= last_sent:
            continue
        data = {"id": event.job_id} if event.name == "deleted" else event.present_with(present)
        yield sse(event.tseq, event.name, data)
        last_sent = event.tseq
