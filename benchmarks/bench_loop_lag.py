"""7. Worker event-loop lag while pages render and OCR.

The worker has no endpoint to ask, so the benchmark runs it itself: `benchmarks/lag_worker.py` builds
arq's Worker from `worker.WorkerSettings` (what `python worker.py` runs) and adds a probe to the same
event loop that sleeps 10 ms at a time and records how late each wake-up comes. A 10-page 300-dpi scan
goes through it, then a large text-layer document (the loop's busiest case: a page result every few
milliseconds); the lag samples taken while each job was running are reported, against the idle loop.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from benchmarks.common import Context, run_job
from benchmarks.documents import scanned_pdf, text_pdf
from benchmarks.processes import run_service, spawn, stop
from benchmarks.report import Section, percentile

KEY = "7"
TITLE = "Worker event-loop lag during OCR"


async def run(ctx: Context) -> Section:
    section = Section(KEY, TITLE)
    scan = scanned_pdf(10, seed=21, dense=not ctx.quick)
    text = text_pdf(200 if ctx.quick else 600, seed=22)
    out = ctx.logdir / "loop-lag-samples.json"
    windows: dict[str, tuple[float, float]] = {}
    with run_service(ctx.server, ctx.logdir, name="loop-lag", workers=0) as service:
        # The probed worker: the service's own settings and environment, on our event loop.
        probed = spawn([sys.executable, "-m", "benchmarks.lag_worker", str(out)],
                       log=ctx.logdir / "loop-lag-worker.log", env=service.env)
        service.workers.append(probed)
        service.wait_ready(workers=1)
        await asyncio.sleep(2)
        idle_started = time.time()
        await asyncio.sleep(3)
        windows["idle"] = (idle_started, time.time())
        for label, document in (("10-page scan", scan), ("text-layer document", text)):
            _, _, events = await run_job(service.url, document)
            running = next(e for e in events if e.data.get("status") == "running")
            windows[label] = (running.received_wall, events[-1].received_wall)
        await asyncio.sleep(1)  # arq finishes the last unit's bookkeeping after the completed event
        stop(probed)
        service.workers.clear()
    samples = json.loads(out.read_text())
    for label, (start, end) in windows.items():
        lags = [lag for stamp, lag in samples if start <= stamp <= end]
        judged = label == "10-page scan"
        section.add(f"{label}: lag p50", percentile(lags, 50), "ms")
        section.add(f"{label}: lag p99", percentile(lags, 99), "ms", target="p99 < 100 ms" if judged else "",
                    bound=100.0 if judged else None)
        section.add(f"{label}: lag max", max(lags) if lags else float("nan"), "ms")
        section.notes.append(f"{label}: {len(lags)} probe samples over {end - start:.1f} s.")
    section.notes.append(
        "The probe sleeps 10 ms and records the overshoot; the worker runs with its default settings "
        "(OCR_CONCURRENCY = cores, page work in child processes)."
    )
    return section
