"""8. The Celery baseline: the same documents through the service and through Celery + Redis + polling.

Both run on the same machine in the same run, one after the other, each with one worker using every core
(the service: one worker, OCR_CONCURRENCY = cores; Celery: one prefork worker, --concurrency = cores).
Service clients follow each job's SSE stream; baseline clients poll GET /jobs/<id> every 2 s, as such
services' clients do. Figures: how long after a job completes its client knows (service: the
`completed` event vs. the job's `finished_at`; baseline: the poll that sees SUCCESS vs. Celery's
`date_done`), end-to-end time of the 10-page scan of benchmark 1, jobs per second for 100 one-page
text-layer PDFs submitted at once (until every client knows), and the resident memory of web + workers
(all their processes, tesseract included) idle and at peak.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from benchmarks.common import Context, follow, http_client, run_job, submit
from benchmarks.documents import one_page_text_pdf, scanned_pdf
from benchmarks.processes import run_celery_baseline, run_service, tree_rss_kb
from benchmarks.report import Section, median, percentile

KEY = "8"
TITLE = "Against the Celery baseline"
POLL_S = 2.0
DEADLINE_S = 600


class RssSampler(threading.Thread):
    """Peak resident memory of some process trees, sampled every 200 ms."""

    def __init__(self, pids: Callable[[], Sequence[int]]) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.peak_kb = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            self.peak_kb = max(self.peak_kb, tree_rss_kb(self.pids()))
            self.stopping.wait(0.2)

    def __enter__(self) -> RssSampler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.join(timeout=5)


def epoch(stamp: str) -> float:
    parsed = datetime.fromisoformat(stamp)
    if parsed.tzinfo is None:  # Celery's date_done is naive UTC in some versions
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


async def service_batch(url: str, documents: list[bytes]) -> tuple[float, list[float]]:
    """Seconds until every client knew its job completed, and each job's completion-to-known delay."""
    async with http_client(url, connections=len(documents) + 10) as client:
        started = time.perf_counter()

        async def one(document: bytes) -> tuple[float, float]:
            job = await submit(client, document)
            final = (await follow(url, job))[-1]
            return final.received_perf, final.received_wall - epoch(final.data["finished_at"])

        results = await asyncio.gather(*(one(d) for d in documents))
    return max(r[0] for r in results) - started, [r[1] for r in results]


async def baseline_batch(url: str, documents: list[bytes]) -> tuple[float, list[float], float]:
    """As service_batch, polling; also the seconds until the last task was done at the server."""
    async with http_client(url, connections=len(documents) + 10) as client:
        started_perf, started_wall = time.perf_counter(), time.time()

        async def one(document: bytes) -> tuple[float, float, float]:
            response = await client.post("/jobs", content=document, headers={"Content-Type": "application/pdf"})
            response.raise_for_status()
            task_id = response.json()["id"]
            deadline = time.monotonic() + DEADLINE_S
            while True:
                job = (await client.get(f"/jobs/{task_id}")).json()
                if job["status"] in ("completed", "failed"):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"baseline task {task_id} did not finish in {DEADLINE_S} s")
                await asyncio.sleep(POLL_S)
            if job["status"] != "completed":
                raise RuntimeError(f"baseline task {task_id} failed")
            done = epoch(job["finished_at"])
            return time.perf_counter(), time.time() - done, done

        results = await asyncio.gather(*(one(d) for d in documents))
    return (max(r[0] for r in results) - started_perf, [r[1] for r in results],
            max(r[2] for r in results) - started_wall)


async def run(ctx: Context) -> Section:
    section = Section(KEY, TITLE)
    tiny_count = 100
    scan = scanned_pdf(10, seed=1, dense=not ctx.quick)
    tiny = [one_page_text_pdf(900_000 + n) for n in range(tiny_count)]
    tiny_baseline = [one_page_text_pdf(950_000 + n) for n in range(tiny_count)]
    warm_up = one_page_text_pdf(999_999)
    figures: dict[str, dict[str, float]] = {"service": {}, "celery": {}}
    delays: dict[str, list[float]] = {}

    with run_service(ctx.server, ctx.logdir, name="vs-celery", workers=1) as service:
        await run_job(service.url, warm_up)
        await asyncio.sleep(1)
        figures["service"]["idle_kb"] = tree_rss_kb(service.pids())
        with RssSampler(service.pids) as sampler:
            figures["service"]["scan_s"], _, _ = await run_job(service.url, scan)
            figures["service"]["tiny_s"], delays["service"] = await service_batch(service.url, tiny)
        figures["service"]["peak_kb"] = sampler.peak_kb

    with run_celery_baseline(ctx.server, ctx.logdir, concurrency=ctx.cores) as baseline:
        await baseline_batch(baseline.url, [warm_up])
        await asyncio.sleep(1)
        figures["celery"]["idle_kb"] = tree_rss_kb(baseline.pids())
        with RssSampler(baseline.pids) as sampler:
            figures["celery"]["scan_s"], scan_delay, _ = await baseline_batch(baseline.url, [scan])
            tiny_s, delays["celery"], tiny_server_s = await baseline_batch(baseline.url, tiny_baseline)
            figures["celery"]["tiny_s"] = tiny_s
            figures["celery"]["tiny_server_s"] = tiny_server_s
        figures["celery"]["peak_kb"] = sampler.peak_kb

    service_f, celery_f = figures["service"], figures["celery"]
    section.add("completion -> client knows, p50", median(delays["service"]) * 1000, "ms",
                baseline=median(delays["celery"]) * 1000, baseline_label="Celery, 2 s polling")
    section.add("completion -> client knows, p99", percentile(delays["service"], 99) * 1000, "ms",
                baseline=percentile(delays["celery"], 99) * 1000, baseline_label="Celery, 2 s polling")
    section.add("10-page scan, end to end", service_f["scan_s"], "s", baseline=celery_f["scan_s"],
                baseline_label="Celery",
                note=f"the Celery task OCRs a document's pages one after another, so one document uses one core; "
                     f"its client learnt of completion {scan_delay[0]:.2f} s after it")
    section.add(f"{tiny_count} one-page text PDFs at once, until every client knows", tiny_count / service_f["tiny_s"],
                "jobs/s", baseline=tiny_count / celery_f["tiny_s"], baseline_label="Celery", kind="min",
                note=f"service {service_f['tiny_s']:.2f} s, Celery {celery_f['tiny_s']:.2f} s to the last client "
                     f"knowing ({celery_f['tiny_server_s']:.2f} s to the last task done at the server: "
                     f"{tiny_count / celery_f['tiny_server_s']:.1f} jobs/s without the polling)")
    section.add("memory of web + workers, idle", service_f["idle_kb"] / 1024, "MB", baseline=celery_f["idle_kb"] / 1024,
                baseline_label="Celery")
    section.add("memory of web + workers, peak during the runs", service_f["peak_kb"] / 1024, "MB",
                baseline=celery_f["peak_kb"] / 1024, baseline_label="Celery")
    section.notes.append(
        f"Service: one web process, one worker with OCR_CONCURRENCY={ctx.cores} (its page processes included in "
        f"memory). Celery {_celery_version()}: one uvicorn web process, one worker, prefork pool of {ctx.cores}, "
        f"prefetch 1, acks late, progress through update_state. Both use Redis on the same redis-server. "
        f"Memory is the sum of resident memory over every process of each side (tesseract runs included)."
    )
    return section


def _celery_version() -> str:
    try:
        import celery

        return str(celery.__version__)
    except ImportError:
        return "(not installed)"

