"""4. Enqueue latency: sequential POST /jobs of one-page PDFs (raw body), p50 and p99.

Every document is distinct (its text carries its number), so the content cache never answers and every
request does the full work: read the body, sniff and count pages, hash, store, enqueue, publish. Measured
at the client (httpx on a kept-alive connection: what a caller sees) and at the server (the web's own
access-log duration), once with a worker draining the queue alongside (the realistic case: the worker
competes for the same two cores) and once with no worker.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

from benchmarks.common import Context, http_client, submit
from benchmarks.documents import one_page_text_pdf
from benchmarks.processes import run_service
from benchmarks.report import Section, percentile

KEY = "4"
TITLE = "Enqueue latency: POST /jobs of a one-page PDF"
WARM_UP = 30
_ACCESS = re.compile(r"service\.access: POST /jobs (\d{3}) ([\d.]+)ms")


def server_durations_ms(log: Path, offset: int) -> list[float]:
    with open(log, "rb") as f:
        f.seek(offset)
        text = f.read().decode("utf-8", "replace")
    return [float(m.group(2)) for m in _ACCESS.finditer(text) if m.group(1) in ("200", "202")]


async def measure(ctx: Context, *, workers: int, requests: int, seed: int) -> tuple[list[float], list[float]]:
    documents = [one_page_text_pdf(seed + n) for n in range(WARM_UP + requests)]
    name = f"enqueue-{workers}w"
    with run_service(ctx.server, ctx.logdir, name=name, workers=workers) as service:
        log = service.logdir / f"{name}-web.log"
        async with http_client(service.url, connections=1) as client:
            for document in documents[:WARM_UP]:
                await submit(client, document)
            offset = log.stat().st_size
            latencies_ms = []
            for document in documents[WARM_UP:]:
                started = time.perf_counter()
                await submit(client, document)
                latencies_ms.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.3)  # the access log line is written as the response ends
        return latencies_ms, server_durations_ms(log, offset)


async def run(ctx: Context) -> Section:
    section = Section(KEY, TITLE)
    requests = 100 if ctx.quick else 400
    client_ms, server_ms = await measure(ctx, workers=1, requests=requests, seed=1_000_000)
    section.add("p50, client side, worker draining", percentile(client_ms, 50), "ms", target="< 10 ms", bound=10)
    section.add("p99, client side, worker draining", percentile(client_ms, 99), "ms", target="< 50 ms", bound=50)
    section.add("p50, server side (access log)", percentile(server_ms, 50), "ms", target="< 10 ms", bound=10)
    section.add("p99, server side (access log)", percentile(server_ms, 99), "ms", target="< 50 ms", bound=50)
    idle_client_ms, _ = await measure(ctx, workers=0, requests=requests, seed=2_000_000)
    section.add("p50, client side, no worker running", percentile(idle_client_ms, 50), "ms", target="< 10 ms",
                bound=10)
    section.add("p99, client side, no worker running", percentile(idle_client_ms, 99), "ms", target="< 50 ms",
                bound=50)
    section.notes.append(
        f"{requests} sequential requests after {WARM_UP} warm-up ones, each a distinct one-page text PDF "
        f"(~{len(one_page_text_pdf(0)) / 1000:.1f} KB) sent as a raw application/pdf body; max "
        f"{max(client_ms):.1f} ms with a worker, {max(idle_client_ms):.1f} ms without; server-side samples: "
        f"{len(server_ms)}."
    )
    return section
