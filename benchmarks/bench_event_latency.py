"""6. Event latency: worker publish -> SSE client receive, and pick-up latency on an idle worker.

The benchmark listens to Redis's `ocr:events` channel itself (a blocking redis-py subscriber on a thread
of its own, stamping each message as it arrives: that is the moment the worker's change was published,
give or take Redis's own delivery) and, at the same time, reads the tenant feed `/events` and each job's
own stream over SSE. Each event's latency is its SSE arrival minus its Redis arrival, matched by job id
and sequence number. Pick-up latency is from POST /jobs answering to the job's `running` event arriving
on the feed, each job submitted to an idle worker (the previous one finished, the worker asleep on the
scheduler's channel).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import redis

from benchmarks import sse
from benchmarks.common import Context, http_client, submit
from benchmarks.documents import text_pdf
from benchmarks.processes import cpu_by_role, run_service
from benchmarks.report import Section, percentile
from service.worker.queue_worker import IDLE_POLL_S

KEY = "6"
TITLE = "Event latency: publish to SSE client, and pick-up"


class ChannelRecorder(threading.Thread):
    """Stamps every message of the events channel with its arrival time (perf_counter)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.client = redis.Redis.from_url(url)
        self.pubsub = self.client.pubsub()
        self.pubsub.subscribe("ocr:events")
        self.pubsub.get_message(timeout=2)  # the subscribe confirmation
        self.by_job_seq: dict[tuple[str, int], float] = {}
        self.by_tseq: dict[int, float] = {}
        self.running_at: dict[str, float] = {}
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.is_set():
            message = self.pubsub.get_message(timeout=0.2)
            if message is None or message["type"] != "message":
                continue
            now = time.perf_counter()
            data = json.loads(message["data"])
            self.by_job_seq[(data["id"], int(data["seq"]))] = now
            # A page event carries its page (`data`), not the job, and is not on the tenant's feed (tseq 0).
            if int(data["tseq"]):
                self.by_tseq[int(data["tseq"])] = now
            job = data.get("job") or {}
            if job.get("status") == "running" and data["id"] not in self.running_at:
                self.running_at[data["id"]] = now

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=5)
        self.pubsub.close()
        self.client.close()


async def run(ctx: Context) -> Section:
    section = Section(KEY, TITLE)
    jobs = 12 if ctx.quick else 40
    documents = [text_pdf(5, seed=300_000 + n, lines_per_page=10) for n in range(jobs + 2)]
    feed_latency_ms: list[float] = []
    job_latency_ms: list[float] = []
    pickup_ms: list[float] = []
    pickup_worker_ms: list[float] = []
    with run_service(ctx.server, ctx.logdir, name="event-latency", workers=1) as service:
        # What an idle worker costs: its page loop sleeps on the scheduler's channel, and arq's empty queue is
        # polled less and less, down to every IDLE_POLL_S (service/worker/queue_worker.py).
        await asyncio.sleep(2)
        idle_s = 5.0
        before = cpu_by_role(None, [w.pid for w in service.workers], ctx.server.process.pid)
        await asyncio.sleep(idle_s)
        after = cpu_by_role(None, [w.pid for w in service.workers], ctx.server.process.pid)
        idle_worker_pct = (after["worker"] - before["worker"]) / idle_s * 100
        idle_redis_pct = (after["redis-server"] - before["redis-server"]) / idle_s * 100
        recorder = ChannelRecorder(service.redis_url)
        recorder.start()
        feed = await sse.open_stream("127.0.0.1", service.port, "/events")
        feed_events: list[sse.Event] = []

        async def read_feed() -> None:
            while (event := await feed.next_event()) is not None:
                feed_events.append(event)

        feed_task = asyncio.create_task(read_feed())
        try:
            async with http_client(service.url) as client:
                for n, document in enumerate(documents):
                    await asyncio.sleep(0.3)  # the worker is idle again, polling its queue
                    job = await submit(client, document)
                    answered = time.perf_counter()
                    stream = await sse.open_stream("127.0.0.1", service.port, job["links"]["events"])
                    try:
                        async with asyncio.timeout(60):
                            events = await stream.read_until_terminal()
                    finally:
                        stream.close()
                    if n < 2:  # warm-up
                        continue
                    # The first event is the backlog's current state, not a live one.
                    for event in events[1:]:
                        published = recorder.by_job_seq.get((job["id"], event.id or -1))
                        if published is not None:
                            job_latency_ms.append((event.received_perf - published) * 1000)
                    await asyncio.sleep(0.05)
                    running = [e for e in feed_events if e.data.get("id") == job["id"]
                               and e.data.get("status") == "running"]
                    if running:
                        pickup_ms.append((running[0].received_perf - answered) * 1000)
                    if job["id"] in recorder.running_at:
                        pickup_worker_ms.append((recorder.running_at[job["id"]] - answered) * 1000)
            await asyncio.sleep(0.2)
            for event in feed_events:
                published = recorder.by_tseq.get(event.id or -1)
                if published is not None and event.name != "snapshot":
                    feed_latency_ms.append((event.received_perf - published) * 1000)
        finally:
            feed_task.cancel()
            feed.close()
            recorder.stop()
    section.add("publish -> SSE, job stream, p50", percentile(job_latency_ms, 50), "ms")
    section.add("publish -> SSE, job stream, p99", percentile(job_latency_ms, 99), "ms")
    section.add("publish -> SSE, tenant feed, p50", percentile(feed_latency_ms, 50), "ms")
    section.add("publish -> SSE, tenant feed, p99", percentile(feed_latency_ms, 99), "ms")
    section.add("pick-up: POST answered -> running event on SSE, p50", percentile(pickup_ms, 50), "ms",
                target="< 50 ms", bound=50)
    section.add("pick-up, p99", percentile(pickup_ms, 99), "ms")
    section.add("pick-up: POST answered -> running published (worker side), p50", percentile(pickup_worker_ms, 50),
                "ms")
    section.add(f"idle worker's CPU (arq's empty queue polled every {IDLE_POLL_S * 1000:.0f} ms)", idle_worker_pct,
                "% of a core")
    section.add("redis-server's CPU serving one idle worker", idle_redis_pct, "% of a core")
    section.notes.append(
        f"{jobs} jobs (after 2 warm-up ones), each a distinct 5-page text PDF, submitted one at a time to an idle "
        f"worker; {len(job_latency_ms)} live job-stream events and {len(feed_latency_ms)} "
        f"feed events matched to their Redis publication; pick-up samples: {len(pickup_ms)}."
    )
    return section
