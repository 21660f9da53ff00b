"""2. Text-layer documents: pages per second end to end for a large born-digital PDF.

POST /jobs to the `completed` event on the job's stream, one worker with default settings (so the
document is taken from the fair scheduler page by page, then in units of a text-layer job's pages).
Three runs, the cache emptied before each; the CPU seconds each process role spent are recorded to
show where the time goes.
"""

from __future__ import annotations

import asyncio
import os
import time

from benchmarks.common import Context, http_client, run_job
from benchmarks.documents import text_pdf
from benchmarks.processes import cpu_by_role, run_service
from benchmarks.report import Section, median
from service.jobs.schedule import TEXT_LAYER_BATCH

KEY = "2"
TITLE = "Text-layer documents: pages per second"


async def run(ctx: Context) -> Section:
    section = Section(KEY, TITLE)
    pages = 200 if ctx.quick else 1000
    repeats = 2 if ctx.quick else 3
    document = text_pdf(pages, seed=7)
    seconds: list[float] = []
    roles: dict[str, list[float]] = {}
    events_seen: list[int] = []
    with run_service(ctx.server, ctx.logdir, name="text-layer", workers=1) as service:
        await run_job(service.url, text_pdf(3, seed=8))
        web_pid = service.web.pid if service.web else None
        for _ in range(repeats):
            async with http_client(service.url) as client:
                await client.delete("/cache")
            before = cpu_by_role(web_pid, [w.pid for w in service.workers], ctx.server.process.pid)
            elapsed, _, events = await run_job(service.url, document)
            after = cpu_by_role(web_pid, [w.pid for w in service.workers], ctx.server.process.pid)
            seconds.append(elapsed)
            events_seen.append(len(events))
            for role in after:
                roles.setdefault(role, []).append(after[role] - before[role])
    rate = pages / median(seconds)
    section.add(f"{pages}-page text PDF, end to end", rate, "pages/s", target=">= 200 pages/s", bound=200,
                kind="min", note=f"runs {', '.join(f'{s:.2f}' for s in seconds)} s")
    for role, values in roles.items():
        section.add(f"CPU per page: {role}", median(values) / pages * 1000, "ms")
    spans = await asyncio.to_thread(text_page_spans, document, 100 if not ctx.quick else 50)
    for label, ms in spans.items():
        section.add(f"per page CPU, in-process: {label}", ms, "ms")
    section.notes.append(
        f"{pages} US-letter pages of 40 lines each, {len(document) / 1e6:.1f} MB; one worker, OCR_CONCURRENCY="
        f"{os.cpu_count()}, pages claimed from the fair scheduler one at a time, then in units of up to "
        f"{TEXT_LAYER_BATCH} once the job's pages come out of their text layers; the job stream carried "
        f"{median([float(n) for n in events_seen]):.0f} events per run (one per page, one progress per unit, and status changes)."
    )
    return section


def text_page_spans(document: bytes, samples: int) -> dict[str, float]:
    """One text-layer page's CPU in this process: `process_page()` as the service's page process calls it
    (a fresh page of the same document each time), and reference costs of its PyMuPDF steps."""
    import pymupdf

    from service.ocr import CancelToken, PageOptions, process_page
    from service.ocr.document import open_document
    from service.ocr.page import text_layer_page
    from service.ocr.record import pack

    out: dict[str, float] = {}

    def timed(label: str, pages: range, fn: object) -> None:
        started = time.process_time()
        for index in pages:
            fn(index)  # type: ignore[operator]
        out[label] = (time.process_time() - started) / len(pages) * 1000

    base = 100
    timed("process_page() as the service calls it for a page alone", range(base, base + samples),
          lambda i: process_page(document, "application/pdf", i, PageOptions(), CancelToken()))
    timed("text_layer_page() and pack(), as a page process reads a unit's pages",
          range(base + samples, base + 2 * samples),
          lambda i: pack(text_layer_page(document, "application/pdf", i)))  # type: ignore[arg-type]

    def reopen(index: int) -> None:
        doc = open_document(document, "application/pdf")
        doc.load_page(index)
        doc.close()

    timed("reference: open the document, load the page, close it", range(base, base + samples), reopen)
    doc = pymupdf.open(stream=document, filetype="pdf")
    try:
        for index in range(base, base + samples):  # warm the page tree, as a kept-open document would be
            doc.load_page(index)
        timed("reference: get_text(\"text\", sort=True) on an open document", range(base, base + samples),
              lambda i: doc.load_page(i).get_text("text", sort=True))
        timed("reference: get_text(\"blocks\", sort=True) joined, on an open document",
              range(base + samples, base + 2 * samples),
              lambda i: "\n".join(b[4] for b in doc.load_page(i).get_text("blocks", sort=True) if b[6] == 0))
    finally:
        doc.close()
    return out
