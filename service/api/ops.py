"""Operations over HTTP: health, readiness, Prometheus metrics, and the dashboard's live figures.

Like /metrics, these show aggregates across tenants only, so they need no API key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from service.api.context import services_of
from service.api.present import json_response
from service.api.sse import EventStream, IteratorSource, jittered, sse
from service.ops.metrics import WORKER_ALIVE_S, exposition, read_snapshot, workers_alive


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    services = services_of(request)
    try:
        await services.redis.ping()
        workers = await workers_alive(services.redis)
    except (RedisError, OSError):
        return json_response({"status": "unavailable", "reason": "Redis is not reachable"}, 503, {"Retry-After": "5"})
    if workers == 0:
        reason = f"no worker has sent a heartbeat in the last {WORKER_ALIVE_S} s"
        return json_response({"status": "unavailable", "reason": reason}, 503, {"Retry-After": "5"})
    return json_response({"status": "ready", "workers_seen": workers})


async def metrics(request: Request) -> Response:
    services = services_of(request)
    body, content_type = exposition(await read_snapshot(services.redis, services.stream_counts))
    return Response(body, media_type=content_type)


async def ops_events(request: Request) -> Response:
    """`/ops/events`: the dashboard's figures as a stream."""
    services = services_of(request)

    settings = services.settings

    async def stream() -> AsyncIterator[bytes]:
        sequence = 0
        async for figures in services.dashboard.stream():
            sequence += 1
            yield sse(sequence, "stats", figures, jittered(settings.sse_retry_ms) if sequence == 1 else None)

    return EventStream(
        b"",
        IteratorSource(stream()),
        ping_s=settings.sse_ping_s,
        send_timeout_s=settings.sse_send_timeout_s,
        on_close=lambda: None,
    )
