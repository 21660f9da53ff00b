"""P. Where the time goes: py-spy profiles of the web and the worker under the benchmarks' loads.

Separate, shorter runs of three loads with the processes started under py-spy (so the figures of the
other benchmarks carry no profiler overhead): a large text-layer document (worker and its page
processes), a 4-page scan (the worker's share beside Tesseract), 100 one-page text PDFs submitted at once
(web and worker: the per-job overhead), and an
event fanned out to 1,000 SSE streams (web).
"""

from __future__ import annotations

import asyncio

from benchmarks import sse
from benchmarks.bench_celery import service_batch
from benchmarks.common import Context, http_client, run_job, submit
from benchmarks.documents import one_page_text_pdf, scanned_pdf, text_pdf
from benchmarks.processes import run_service
from benchmarks.profiling import prefix, py_spy, stop_profiled, summarize
from benchmarks.report import Section

KEY = "P"
TITLE = "Profiles: where the time goes"


async def run(ctx: Context) -> Section:
    section = Section(KEY, TITLE)
    if py_spy() is None:
        section.notes.append("py-spy is not installed (.venv/bin/pip install py-spy): no profiles.")
        return section
    out = ctx.logdir

    # 1. A large text-layer document: the worker and its page processes.
    worker_profile = out / "profile-text-layer-worker.txt"
    with run_service(ctx.server, out, name="profile-text", workers=0) as service:
        service.start_worker(prefix=prefix(worker_profile, subprocesses=True))
        service.wait_ready(workers=1)
        await run_job(service.url, text_pdf(3, seed=40))
        seconds, _, _ = await run_job(service.url, text_pdf(200 if ctx.quick else 500, seed=41))
        stop_profiled(service.workers[0])
    section.notes.append(f"**Text-layer document** ({200 if ctx.quick else 500} pages, {seconds:.1f} s under the "
                         "profiler), worker and page processes:")
    section.notes += summarize(worker_profile, role="worker")

    # 2. A scanned document: the worker's own share next to its page processes (Tesseract itself is not
    # Python, so py-spy sees the page process waiting for it: that wait is left out as idle).
    worker_profile = out / "profile-scan-worker.txt"
    with run_service(ctx.server, out, name="profile-scan", workers=0) as service:
        service.start_worker(prefix=prefix(worker_profile, subprocesses=True))
        service.wait_ready(workers=1)
        seconds, _, _ = await run_job(service.url, scanned_pdf(4, seed=43, dense=not ctx.quick))
        stop_profiled(service.workers[0])
    section.notes.append(f"**A 4-page scan** ({seconds:.1f} s under the profiler; Tesseract's own CPU is not Python "
                         "and not in these samples), worker and page processes:")
    section.notes += summarize(worker_profile, role="worker")

    # 3. Many tiny jobs at once: the per-job cost on both sides.
    web_profile = out / "profile-tiny-web.txt"
    worker_profile = out / "profile-tiny-worker.txt"
    with run_service(ctx.server, out, name="profile-tiny", workers=0, web_prefix=prefix(web_profile)) as service:
        service.start_worker(prefix=prefix(worker_profile, subprocesses=True))
        service.wait_ready(workers=1)
        await run_job(service.url, one_page_text_pdf(1_500_000))
        seconds, _ = await service_batch(service.url, [one_page_text_pdf(1_500_001 + n) for n in range(100)])
        stop_profiled(service.workers[0])
        stop_profiled(service.web)
    section.notes.append(f"**100 one-page text PDFs submitted at once** ({seconds:.1f} s under the profiler), web:")
    section.notes += summarize(web_profile, role="web")
    section.notes.append("... and worker:")
    section.notes += summarize(worker_profile, role="worker")

    # 4. Fan-out: one job's events to 1,000 streams.
    web_profile = out / "profile-fanout-web.txt"
    clients = 300 if ctx.quick else 1000
    with run_service(ctx.server, out, name="profile-fanout", workers=0, web_prefix=prefix(web_profile)) as service:
        async with http_client(service.url) as client:
            job = await submit(client, text_pdf(4, seed=42, lines_per_page=10))
        streams = []
        try:
            for _ in range(clients):
                stream = await sse.open_stream("127.0.0.1", service.port, job["links"]["events"])
                await stream.next_event()
                streams.append(stream)
            service.start_worker()
            async with asyncio.timeout(120):
                await asyncio.gather(*(s.read_until_terminal() for s in streams))
        finally:
            for stream in streams:
                stream.close()
        stop_profiled(service.web)
    section.notes.append(f"**One job's events fanned out to {clients} SSE streams** (opening them included), web:")
    section.notes += summarize(web_profile, role="web")
    return section
