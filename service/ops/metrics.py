"""Prometheus metrics.

Workers run on other machines and have no port of their own to scrape, so what they count goes
into one Redis hash (`ocr:metrics`, written by `record_*` below and by the job-change script), and
the web process's `/metrics` reads it at scrape time together with gauges read straight from Redis
(pages waiting per tenant and their oldest wait, the scheduler's one script; queue depth; live
workers) and its own process-local gauge of SSE clients.
Every web process reports the same shared counters: aggregate them with max(), not sum().
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

from arq.constants import default_queue_name
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.asyncio import Redis

from service import keys
from service.jobs.record import STATUSES
from service.jobs.schedule import Schedule, TenantWaiting

PAGE_SECONDS_BUCKETS = (0.01, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120)
JOB_SECONDS_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800)
WORKER_ALIVE_S = 30


def _bucket_fields(name: str, value_s: float, buckets: Iterable[float]) -> list[str]:
    return [f"{name}:le:{le}" for le in buckets if value_s <= le]


def _observe(pipe: Any, name: str, value_s: float, buckets: Iterable[float], *, count: int = 1) -> None:
    """`count` observations of `value_s` in a histogram kept in the metrics hash: its buckets, count and sum."""
    for field in _bucket_fields(name, value_s, buckets):
        pipe.hincrby(keys.METRICS, field, count)
    pipe.hincrby(keys.METRICS, f"{name}:count", count)
    pipe.hincrbyfloat(keys.METRICS, f"{name}:sum", value_s * count)


async def record_page(redis: Redis, source: str, seconds: float, *, pages: int = 1) -> None:
    """`pages` pages done from `source` in `seconds` each."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hincrby(keys.METRICS, f"pages_{source}", pages)
        _observe(pipe, "page_seconds", seconds, PAGE_SECONDS_BUCKETS, count=pages)
        await pipe.execute()


async def record_job_duration(redis: Redis, seconds: float) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        _observe(pipe, "job_seconds", seconds, JOB_SECONDS_BUCKETS)
        await pipe.execute()


async def record_webhook(redis: Redis, outcome: str) -> None:
    await redis.hincrby(keys.METRICS, f"webhooks_{outcome}", 1)  # type: ignore[misc]


class _Snapshot(Collector):
    """The figures read from Redis for one scrape."""

    def __init__(
        self,
        counters: dict[str, float],
        *,
        waiting: list[TenantWaiting],
        pages_held: int,
        units_queued: int,
        units_oldest_s: float,
        workers: int,
        sse: int,
    ):
        self.counters = counters
        self.waiting = waiting
        self.pages_held = pages_held
        # Pages waiting in the scheduler, and arq's units (downloads, webhook deliveries) in its queue.
        self.queue_depth = sum(w.pages for w in waiting) + units_queued
        self.oldest_age_s = max([units_oldest_s, *(w.oldest_wait_s for w in waiting)])
        self.workers = workers
        self.sse = sse

    def _histogram(self, name: str, doc: str, prefix: str, buckets: Iterable[float]) -> Metric:
        cumulative = [(str(le), self.counters.get(f"{prefix}:le:{le}", 0)) for le in buckets]
        count = self.counters.get(f"{prefix}:count", 0)
        return HistogramMetricFamily(
            name, doc, buckets=[*cumulative, ("+Inf", count)], sum_value=self.counters.get(f"{prefix}:sum", 0)
        )

    def collect(self) -> Iterator[Metric]:
        jobs = CounterMetricFamily("ocr_jobs", "Jobs that entered each status.", labels=["status"])
        for status in STATUSES:
            jobs.add_metric([status], self.counters.get(f"jobs_{status}", 0))
        yield jobs
        pages = CounterMetricFamily("ocr_pages", "Pages processed, by where their text came from.", labels=["source"])
        for source in ("ocr", "text-layer"):
            pages.add_metric([source], self.counters.get(f"pages_{source}", 0))
        yield pages
        webhooks = CounterMetricFamily("ocr_webhook_deliveries", "Webhook deliveries by outcome.", labels=["outcome"])
        for outcome in ("delivered", "retried", "failed"):
            webhooks.add_metric([outcome], self.counters.get(f"webhooks_{outcome}", 0))
        yield webhooks
        yield self._histogram(
            "ocr_page_seconds", "Time to produce one page's text.", "page_seconds", PAGE_SECONDS_BUCKETS
        )
        yield self._histogram("ocr_job_duration_seconds", "Start to end of a job.", "job_seconds", JOB_SECONDS_BUCKETS)
        yield GaugeMetricFamily(
            "ocr_queue_depth", "Pages waiting for a worker, and downloads and webhooks queued.", value=self.queue_depth
        )
        yield GaugeMetricFamily(
            "ocr_queue_oldest_age_seconds", "How long the oldest waiting page or queued unit has waited.",
            value=self.oldest_age_s,
        )  # fmt: skip
        waiting_pages = GaugeMetricFamily(
            "ocr_tenant_pages_waiting", "Pages of a tenant waiting for a worker.", labels=["tenant", "priority"]
        )
        oldest = GaugeMetricFamily(
            "ocr_tenant_oldest_wait_seconds", "How long the tenant's oldest waiting page has waited.",
            labels=["tenant", "priority"],
        )  # fmt: skip
        for waiting in self.waiting:
            waiting_pages.add_metric([waiting.tenant, waiting.priority], waiting.pages)
            oldest.add_metric([waiting.tenant, waiting.priority], waiting.oldest_wait_s)
        yield waiting_pages
        yield oldest
        yield GaugeMetricFamily(
            "ocr_pages_held", "Pages claimed by workers (running, or waiting out a retry's delay).",
            value=self.pages_held,
        )  # fmt: skip
        yield GaugeMetricFamily(
            "ocr_workers_alive", f"Workers with a heartbeat in the last {WORKER_ALIVE_S} s.", value=self.workers
        )
        yield GaugeMetricFamily("ocr_sse_clients", "SSE streams open on this web process.", value=self.sse)


async def workers_alive(redis: Redis) -> int:
    """Workers whose heartbeat (service/worker/lifecycle.py) is younger than WORKER_ALIVE_S."""
    return int(await redis.zcount(keys.WORKERS, time.time() - WORKER_ALIVE_S, "+inf"))


async def read_snapshot(redis: Redis, sse_clients: int) -> _Snapshot:
    now = time.time()
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.METRICS)
        pipe.zcard(default_queue_name)
        pipe.zrange(default_queue_name, 0, 0, withscores=True)
        pipe.zcount(keys.WORKERS, now - WORKER_ALIVE_S, "+inf")
        pipe.zcard(keys.SCHED_LEASES)
        raw, depth, oldest, workers, held = await pipe.execute()
    counters = {k.decode(): float(v) for k, v in raw.items()}
    # arq scores a queued job by when it may run (ms); deferred retries sit in the future.
    oldest_age_s = max(0.0, now - oldest[0][1] / 1000) if oldest else 0.0
    return _Snapshot(
        counters,
        waiting=await Schedule(redis).waiting(),
        pages_held=int(held),
        units_queued=int(depth),
        units_oldest_s=oldest_age_s,
        workers=int(workers),
        sse=sse_clients,
    )


def exposition(snapshot: _Snapshot) -> tuple[bytes, str]:
    """The Prometheus text format of one snapshot, and its content type."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(snapshot)
    return generate_latest(registry), CONTENT_TYPE_LATEST
