"""The operations view: `/dashboard`, fed live by `/ops/events` (SSE), for people replacing Flower.

The figures are aggregates across tenants (workers alive, queue depth, jobs per minute, failures),
the same as /metrics exposes, so like /metrics the stream needs no API key.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette import ServerSentEvent

from service.events import sse
from service.metrics import read_snapshot
from service.operations import Services

SAMPLE_INTERVAL_S = 2.0
RATE_WINDOW_S = 60.0


def _rates(samples: deque[tuple[float, dict[str, float]]], now: float, counters: dict[str, float]) -> dict[str, float]:
    """Per-minute rates of the job counters over the last minute of samples."""
    samples.append((now, counters))
    while len(samples) > 2 and now - samples[0][0] > RATE_WINDOW_S:
        samples.popleft()
    then, old = samples[0]
    span_min = max(now - then, SAMPLE_INTERVAL_S) / 60
    return {
        "completed_per_minute": round((counters.get("jobs_completed", 0) - old.get("jobs_completed", 0)) / span_min, 1),
        "failed_per_minute": round((counters.get("jobs_failed", 0) - old.get("jobs_failed", 0)) / span_min, 1),
    }


async def dashboard_stream(services: Services) -> AsyncIterator[ServerSentEvent]:
    samples: deque[tuple[float, dict[str, float]]] = deque()
    sequence = 0
    while True:
        snapshot = await read_snapshot(services.redis, services.hub.clients)
        counters = snapshot.counters
        sequence += 1
        figures: dict[str, Any] = {
            "workers_alive": snapshot.workers,
            "queue_depth": snapshot.queue_depth,
            "oldest_queued_s": round(snapshot.oldest_age_s, 1),
            "jobs": {status: int(counters.get(f"jobs_{status}", 0)) for status in
                     ("queued", "completed", "failed", "cancelled")},
            "pages": {"ocr": int(counters.get("pages_ocr", 0)), "text-layer": int(counters.get("pages_text-layer", 0))},
            "sse_clients": snapshot.sse,
            **_rates(samples, time.monotonic(), counters),
        }
        yield sse(sequence, "stats", figures, services.settings.sse_retry_ms if sequence == 1 else None)
        await asyncio.sleep(SAMPLE_INTERVAL_S)
