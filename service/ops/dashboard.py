"""The operations view: `/dashboard`, fed live by `/ops/events` (SSE), for people replacing Flower.

The figures are the same as /metrics exposes (workers alive, queue depth, jobs per minute, failures,
pages waiting per tenant and their oldest wait), so like /metrics the stream needs no API key.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from service.jobs.record import CANCELLED, COMPLETED, FAILED, QUEUED
from service.ops.metrics import read_snapshot
from service.ops.stream_counts import StreamCounts

logger = logging.getLogger(__name__)

SAMPLE_INTERVAL_S = 2.0
# The tenants with the most pages waiting that the view lists (/metrics has them all).
TENANTS_SHOWN = 20
RATE_WINDOW_S = 60.0
# Jobs entering `running` are not shown: a resumed range enters it again, so the count says little.
DASHBOARD_STATUSES = (QUEUED, COMPLETED, FAILED, CANCELLED)


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


async def dashboard_figures(redis: Redis, streams: StreamCounts) -> AsyncIterator[dict[str, Any]]:
    """The view's figures, every SAMPLE_INTERVAL_S, for as long as the caller reads them."""
    samples: deque[tuple[float, dict[str, float]]] = deque()
    while True:
        snapshot = await read_snapshot(redis, streams)
        counters = snapshot.counters
        figures: dict[str, Any] = {
            "workers_alive": snapshot.workers,
            "queue_depth": snapshot.queue_depth,
            "oldest_queued_s": round(snapshot.oldest_age_s, 1),
            "jobs": {status: int(counters.get(f"jobs_{status}", 0)) for status in DASHBOARD_STATUSES},
            "pages": {"ocr": int(counters.get("pages_ocr", 0)), "text-layer": int(counters.get("pages_text-layer", 0))},
            # Every web process's streams: the view is the same whichever process serves it.
            "sse_clients": snapshot.streams.everywhere,
            "web_processes": snapshot.streams.processes,
            "pages_held": snapshot.pages_held,
            "tenants_waiting": [
                {
                    "tenant": w.tenant,
                    "priority": w.priority,
                    "pages": w.pages,
                    "oldest_wait_s": round(w.oldest_wait_s, 1),
                }
                for w in sorted(snapshot.waiting, key=lambda w: (-w.pages, w.tenant))[:TENANTS_SHOWN]
            ],
            **_rates(samples, time.monotonic(), counters),
        }
        yield figures
        await asyncio.sleep(SAMPLE_INTERVAL_S)


class SharedFigures:
    """One poll of Redis for every dashboard stream of a process: `/ops/events` needs no key, so its
    streams must not each cost Redis a poll (enough of them would starve the API of connections)."""

    def __init__(self, redis: Redis, streams: StreamCounts) -> None:
        self.redis = redis
        self.streams = streams
        self._latest: dict[str, Any] = {}
        self._version = 0
        self._changed = asyncio.Condition()
        self._readers = 0
        self._poller: asyncio.Task[None] | None = None

    async def stream(self) -> AsyncIterator[dict[str, Any]]:
        """The newest figures as they come; a reader slower than the poll skips to the newest."""
        self._readers += 1
        if self._poller is None:
            self._poller = asyncio.create_task(self._poll(), name="dashboard-poll")
        seen = 0

        def newer() -> bool:
            return self._version > seen

        try:
            while True:
                async with self._changed:
                    await self._changed.wait_for(newer)
                    seen, figures = self._version, self._latest
                yield figures
        finally:
            self._readers -= 1
            if self._readers == 0:
                self.close()

    def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None

    async def _poll(self) -> None:
        while True:
            try:
                async for figures in dashboard_figures(self.redis, self.streams):
                    async with self._changed:
                        self._latest, self._version = figures, self._version + 1
                        self._changed.notify_all()
            except (RedisError, OSError) as exc:
                logger.warning("dashboard figures unavailable (%s); retrying", exc)
                await asyncio.sleep(SAMPLE_INTERVAL_S)
