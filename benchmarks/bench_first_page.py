"""F. First page on the stream: a 20-page scan on one worker, submit to the first page's text vs. to completion.

A client submits a scanned document as users do (a raw POST), opens the job's stream at once and reads
it to the end. The first `event: page` carries the first finished page's text; the `completed` status
event ends the job. Both are timed from before the POST, on the same stream, in the same run. A late
client (one that connects halfway, or reconnects, with `Last-Event-ID: 0`) gets every page done so far
at once from the job's history: its time from connecting to holding the first page's text is timed too.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from urllib.parse import urlsplit

from benchmarks import sse
from benchmarks.common import Context, http_client, run_job, submit
from benchmarks.documents import scanned_pdf
from benchmarks.processes import run_service
from benchmarks.report import Section

KEY = "F"
TITLE = "First page on the stream: a 20-page scan on one worker"


async def _late_client_s(base_url: str, events_path: str) -> float:
    """Seconds from opening a stream with Last-Event-ID: 0 to its first page event."""
    url = urlsplit(base_url)
    started = time.perf_counter()
    stream = await sse.open_stream(
        url.hostname or "127.0.0.1", url.port or 80, events_path, headers={"Last-Event-ID": "0"}
    )
    try:
        async with asyncio.timeout(60):
            while (event := await stream.next_event()) is not None:
                if event.name == "page":
                    return event.received_perf - started
    finally:
        stream.close()
    raise RuntimeError("the late stream carried no page event")


async def run(ctx: Context) -> Section:
    section = Section(KEY, TITLE)
    pages = 6 if ctx.quick else 20
    repeats = 1 if ctx.quick else 3
    first_s: list[float] = []
    done_s: list[float] = []
    late_s: list[float] = []
    load_before = os.getloadavg()
    with run_service(ctx.server, ctx.logdir, name="first-page", workers=1) as service:
        await run_job(service.url, scanned_pdf(1, seed=900, dense=False))  # warm the page processes
        for repeat in range(repeats):
            document = scanned_pdf(pages, seed=910 + repeat, dense=not ctx.quick)
            async with http_client(service.url) as client:
                started = time.perf_counter()
                job = await submit(client, document)
                url = urlsplit(service.url)
                stream = await sse.open_stream(url.hostname or "127.0.0.1", url.port or 80, job["links"]["events"])
                late: asyncio.Task[float] | None = None
                try:
                    async with asyncio.timeout(600):
                        while (event := await stream.next_event()) is not None:
                            if event.name == "page" and len(first_s) == repeat:
                                first_s.append(event.received_perf - started)
                            if event.name == "progress" and event.data.get("pages_done") == pages // 2 and late is None:
                                late = asyncio.create_task(_late_client_s(service.url, job["links"]["events"]))
                            if event.data.get("status") in ("completed", "failed", "cancelled"):
                                break
                finally:
                    stream.close()
                if event is None or event.data.get("status") != "completed":
                    raise RuntimeError(f"job {job['id']} did not complete")
                done_s.append(event.received_perf - started)
                if late is not None:
                    late_s.append(await late)
    first, done = statistics.median(first_s), statistics.median(done_s)
    section.add(f"submit to the first page's text on the stream, {pages} pages (median)", first, "s")
    section.add(
        f"submit to completed, {pages} pages (median)",
        done,
        "s",
        note="the time a client waited for any text before page events",
    )
    section.add(
        "first page's share of the wait for the whole document",
        first / done * 100,
        "%",
        target="<= 25%",
        bound=25,
        kind="max",
    )
    if late_s:
        section.add(
            "late client (Last-Event-ID: 0 halfway): connect to its first page (median)",
            statistics.median(late_s),
            "s",
            target="< 0.5 s",
            bound=0.5,
        )
    section.notes.append(
        f"{pages} {'dense' if not ctx.quick else 'short'} 300-dpi scanned pages, one worker with the default "
        f"OCR_CONCURRENCY ({ctx.cores} on this machine), {repeats} runs with fresh documents (no cache hit); "
        f"first page {', '.join(f'{s:.1f}' for s in first_s)} s, completed {', '.join(f'{s:.1f}' for s in done_s)} s; "
        f"load average {load_before[0]:.1f} before and {os.getloadavg()[0]:.1f} after (the machine is shared)."
    )
    return section
