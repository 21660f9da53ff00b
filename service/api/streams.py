"""The event streams: a job's (`/jobs/<id>/events`) and a tenant's feed (`/events`).

Each stream subscribes to the process's hub before it reads its backlog from Redis, so nothing
published in between is lost (service/jobs/events.py says why); events seen twice are skipped by id.
The backlog read is shared by every stream of the same job or feed opening at once
(service/jobs/backlog.py), so a burst of clients costs Redis a few reads, not one each.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from service.api.auth import mint_token, tenant_for_stream, tenant_from_header
from service.api.context import Services, services_of
from service.api.present import json_response, present
from service.api.sse import EventStream, comment, jittered, sse
from service.errors import NotFound, ServiceUnavailable
from service.jobs.backlog import Entry, job_backlog
from service.jobs.events import FEED_SNAPSHOT_JOBS, JOB_EVENTS, Event, Present, Subscription
from service.jobs.page_events import with_page_events
from service.jobs.record import ACTIVE, TERMINAL, Job
from service.params import header_text, parse_event_id


def _last_event_id(request: Request) -> int | None:
    return parse_event_id(header_text(request.headers, "last-event-id") or request.query_params.get("lastEventId"))


def _require_hub(services: Services) -> None:
    if not services.hub.connected.is_set():
        raise ServiceUnavailable("The event stream is unavailable: Redis is not reachable.", retry_after_s=5)


def _payload(name: str, payload: Any, present: Present) -> Any:
    if name in JOB_EVENTS:
        return present(payload)
    if name == "deleted":
        return {"id": payload["id"]}
    return payload


class LiveEvents:
    """A stream's live part: its hub subscription, rendered to the wire, skipping what it has sent."""

    __slots__ = ("last_sent", "present", "retry_ms", "subscription")

    def __init__(self, subscription: Subscription, present: Present, last_sent: int, retry_ms: int | None) -> None:
        self.subscription = subscription
        self.present = present
        self.last_sent = last_sent
        self.retry_ms = retry_ms  # still to be sent, when the backlog sent nothing

    def wait(self, timeout_s: float) -> Awaitable[bool]:
        # The subscription's own wait, not one awaiting it: a frame less per idle stream and per wake.
        return self.subscription.wait(timeout_s)

    def end(self) -> None:
        self.subscription.end()

    def take(self) -> tuple[bytes, bool]:
        body = b""
        while (event := self.subscription.pop()) is not None:
            chunk, last = self.render(event)
            body += chunk
            if last:
                return body, True
        return body, self.subscription.finished

    def render(self, event: Event) -> tuple[bytes, bool]:
        raise NotImplementedError

    def encoded(self, event: Event, kind: str, event_id: int) -> bytes:
        """The event on the wire: made once for all the streams of its kind, unless this one still
        owes its client the `retry:` field."""
        if self.retry_ms is not None:
            retry_ms, self.retry_ms = self.retry_ms, None
            return sse(event_id, event.name, self.data(event), retry_ms)
        wire = event.wire.get(kind)
        if wire is None:
            wire = event.wire[kind] = sse(event_id, event.name, self.data(event))
        return wire

    def data(self, event: Event) -> Any:
        if event.name in JOB_EVENTS:
            return event.present_with(self.present)  # once for all the event's streams
        return _payload(event.name, event.job, self.present)


class JobEvents(LiveEvents):
    """The events of one job, until its terminal event."""

    __slots__ = ()

    def render(self, event: Event) -> tuple[bytes, bool]:
        if event.name == "deleted":
            # Sent with an id past anything this client has (the job's own ids end with its record).
            return sse(max(self.last_sent + 1, event.seq), "deleted", {"id": event.job_id}, self.retry_ms), True
        if event.seq <= self.last_sent:
            return b"", False
        self.last_sent = event.seq
        return self.encoded(event, "job", event.seq), event.terminal


class FeedEvents(LiveEvents):
    """Every change to any of a tenant's jobs; it ends only when the hub drops it."""

    __slots__ = ()

    def render(self, event: Event) -> tuple[bytes, bool]:
        if event.tseq <= self.last_sent:
            return b"", False
        self.last_sent = event.tseq
        return self.encoded(event, "feed", event.tseq), False


class _Release:
    """Gives back a stream's subscription and slot (small objects rather than closures: a process holds
    one of each per open stream)."""

    __slots__ = ("give_back", "subscription")

    def __init__(self, subscription: Subscription, give_back: Callable[[], None]) -> None:
        self.subscription = subscription
        self.give_back = give_back

    def __call__(self) -> None:
        self.subscription.close()
        self.give_back()


class _Present:
    """A job as the stream's tenant sees it (service/api/present.py)."""

    __slots__ = ("services", "tenant")

    def __init__(self, services: Services, tenant: str) -> None:
        self.services = services
        self.tenant = tenant

    def __call__(self, job: Job) -> dict[str, Any]:
        return present(self.services, self.tenant, job)


def _take_slot(services: Services, tenant: str, subscription: Subscription) -> Callable[[], None]:
    """The stream's slot (or 429, leaving the hub), and the one function that gives both back."""
    try:
        give_back = services.streams.take(tenant)
    except BaseException:
        subscription.close()
        raise
    return _Release(subscription, give_back)


def _backlog_bytes(entries: list[Entry], present: Present, retry_ms: int) -> tuple[bytes, bool]:
    """The backlog on the wire (the first event carries `retry:`), and whether it holds the job's end."""
    chunks: list[bytes] = []
    for seq, name, payload in entries:
        chunks.append(sse(seq, name, _payload(name, payload, present), None if chunks else retry_ms))
        if name == "deleted" or (name in JOB_EVENTS and payload["status"] in TERMINAL):
            return b"".join(chunks), True
    return b"".join(chunks), False


def _respond(services: Services, head: bytes, live: LiveEvents | None, close: Callable[[], None]) -> Response:
    settings = services.settings
    return EventStream(
        head, live, ping_s=settings.sse_ping_s, send_timeout_s=settings.sse_send_timeout_s, on_close=close
    )


async def job_events(request: Request) -> Response:
    services = services_of(request)
    job_id = request.path_params["job_id"]
    tenant = tenant_for_stream(request, services.settings, f"job:{job_id}")
    _require_hub(services)
    last_event_id = _last_event_id(request)
    # Subscribed before the state is read (see the module's docstring); one read for the whole burst.
    subscription = services.hub.job(job_id)
    try:
        state = await services.backlogs.job(job_id)
        if state.job is None or state.tenant is None or not secrets.compare_digest(state.tenant, tenant):
            raise NotFound(f"No job with id {job_id!r}.")
    except BaseException:
        subscription.close()
        raise
    try:
        # The pages its page events name are read for this stream alone: a stream resuming from the
        # start of a long job reads them, the burst of fresh streams (the current state) reads none.
        backlog = await with_page_events(services.redis, job_id, job_backlog(state, last_event_id))
    except BaseException:
        subscription.close()
        raise
    if not backlog and state.job["status"] not in ACTIVE:
        # The client has seen the end already; 204 tells EventSource to stop reconnecting.
        subscription.close()
        return Response(status_code=204)
    close = _take_slot(services, tenant, subscription)
    show = _Present(services, tenant)
    retry_ms = jittered(services.settings.sse_retry_ms)
    head, ended = _backlog_bytes(backlog, show, retry_ms)
    last_sent = backlog[-1][0] if backlog else min(last_event_id or 0, state.seq)
    live = None if ended else JobEvents(subscription, show, last_sent, None if backlog else retry_ms)
    return _respond(services, head, live, close)


async def tenant_events(request: Request) -> Response:
    services = services_of(request)
    tenant = tenant_for_stream(request, services.settings, "feed")
    _require_hub(services)
    last_event_id = _last_event_id(request)

    async def snapshot() -> list[Job]:
        jobs, _ = await services.store.list_for_tenant(tenant, status=None, limit=FEED_SNAPSHOT_JOBS, cursor=None)
        return jobs

    subscription = services.hub.tenant(tenant)
    close = _take_slot(services, tenant, subscription)
    try:
        backlog, seq_now = await services.backlogs.feed(tenant, last_event_id, snapshot)
    except BaseException:
        close()
        raise
    show = _Present(services, tenant)
    retry_ms = jittered(services.settings.sse_retry_ms)
    chunks: list[bytes] = []
    for seq, name, payload in backlog:
        data = {"jobs": [show(job) for job in payload["jobs"]]} if name == "snapshot" else _payload(name, payload, show)
        chunks.append(sse(seq, name, data, None if chunks else retry_ms))
    # Nothing to replay: a comment still tells the client the stream is open, and the retry field rides on it.
    head = b"".join(chunks) or comment("connected", retry_ms)
    last_sent = max((seq for seq, _, _ in backlog), default=seq_now)
    return _respond(services, head, FeedEvents(subscription, show, last_sent, None), close)


async def feed_link(request: Request) -> Response:
    """The tenant's `/events` link with a token, for EventSource (which cannot send headers)."""
    services = services_of(request)
    tenant = tenant_from_header(request, services.settings)
    token = mint_token(tenant, "feed", services.settings.secret_key, services.settings.sse_token_ttl_s)
    return json_response({"tenant": tenant, "links": {"events": f"/events?token={token}"}})
