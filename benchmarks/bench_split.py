"""3. Large documents across workers: one scanned document shared page by page, one worker vs. two.

OCR_CONCURRENCY=1, so each worker process OCRs one page at a time, and each claims the document's next
page from the fair scheduler whenever its slot is free. The same document runs on a service with one worker
and then on one with two; the speed-up is the ratio of the end-to-end times (ideal: 2x on two cores).
"""

from __future__ import annotations

import asyncio
import os
import re

from benchmarks.common import Context, http_client, run_job
from benchmarks.documents import scanned_pdf
from benchmarks.processes import run_service, tree_cpu_s
from benchmarks.report import Section

KEY = "3"
TITLE = "Large documents across workers: one worker vs. two"
# The worker's line for a finished page of the job: "page JOB:4 done: ocr in 1.23 s (try 1)"
_PAGE_DONE = re.compile(r"page JOB:\d+ done: \S+ in ([\d.]+) s")


async def run(ctx: Context) -> Section:
    section = Section(KEY, TITLE)
    pages = 8 if ctx.quick else 16
    document = scanned_pdf(pages, seed=11, dense=not ctx.quick)
    warm_up = scanned_pdf(1, seed=12, dense=False)
    seconds: dict[int, float] = {}
    cpu: dict[int, float] = {}
    pages_by_worker: dict[int, list[int]] = {}
    busy_s: dict[int, float] = {}
    for workers in (1, 2):
        name = f"split-{workers}w"
        with run_service(ctx.server, ctx.logdir, name=name, workers=workers, OCR_CONCURRENCY="1") as service:
            await run_job(service.url, warm_up)
            async with http_client(service.url) as client:
                await client.delete("/cache")
            before = tree_cpu_s(service.pids())
            seconds[workers], job, _ = await run_job(service.url, document)
            cpu[workers] = tree_cpu_s(service.pids()) - before
            await asyncio.sleep(1)  # a page's line is logged just after the job's completed event has gone out
            logs = [(service.logdir / f"{name}-worker{n}.log").read_text() for n in range(workers)]
            pages_by_worker[workers] = [len(_PAGE_DONE.findall(log.replace(job["id"], "JOB"))) for log in logs]
            busy_s[workers] = sum(float(d) for log in logs for d in _PAGE_DONE.findall(log.replace(job["id"], "JOB")))
    speed_up = seconds[1] / seconds[2]
    section.add(f"{pages} pages, one worker", seconds[1], "s")
    section.add(f"{pages} pages, two workers", seconds[2], "s", baseline=seconds[1], baseline_label="one worker")
    ideal = min(2, os.cpu_count() or 1)
    section.add("speed-up, two workers over one", speed_up, "x", target=f">= 1.8x (this suite's bar; ideal {ideal}x)",
                bound=1.8, kind="min")
    section.add("workers busy with the document's pages, two workers", busy_s[2] / (2 * seconds[2]) * 100, "%",
                note="the sum of the pages' run times in the workers' logs over 2 x the document's time: how much of "
                     "the speed-up shortfall is idle workers (low) rather than slower pages (high)")
    section.add("cores the service got during the two-worker run", cpu[2] / seconds[2], "cores",
                note="its CPU seconds over the wall time; below 2 while both workers were busy means the pages ran "
                     "slower because the machine's other work took CPU, not because a worker waited")
    section.add("CPU seconds per page, two workers", cpu[2] / pages, "s", baseline=cpu[1] / pages,
                baseline_label="one worker")
    section.notes.append(
        f"{pages} pages of {'dense' if not ctx.quick else 'short'} 300-dpi scans, taken page by page, "
        f"OCR_CONCURRENCY=1; CPU seconds of all service processes: "
        f"{cpu[1]:.1f} with one worker, {cpu[2]:.1f} with two; pages run by each of the two workers: "
        f"{pages_by_worker[2]}; load average {os.getloadavg()[0]:.1f} after."
    )
    return section
