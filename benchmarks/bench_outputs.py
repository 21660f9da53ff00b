"""11. Word geometry: Redis bytes per page, and the outputs made from the stored words.

Each page stores one record, its fields and its words (service/ocr/record.py), from which its text,
`detail=words`, hOCR, ALTO and the searchable PDF's text layer are made. Before, a page stored its page
object as JSON and, for OCR pages, its text layer as a one-page PDF. Both are measured on the same pages
in one run: "after" is what Redis holds for the job (HSTRLEN of each page's record), "before" what the
previous code stored for that page (its page object's JSON plus the layer PDF, which is made from the
same words byte for byte). Then the time to serve a 100-page text PDF's result as JSON with words,
hOCR and ALTO, streamed from those records.
"""

from __future__ import annotations

import json
import time

import redis.asyncio as aioredis

from benchmarks.common import Context, http_client, run_job
from benchmarks.documents import scanned_pdf, text_pdf
from benchmarks.processes import run_service
from benchmarks.report import Section, median

KEY = "11"
TITLE = "Word geometry: Redis bytes per page, and the outputs made from the words"


def previous_bytes(record: bytes) -> int:
    """What the code before the stored words kept for this page: its page object as JSON and, for an OCR
    page, its text layer as a one-page PDF."""
    from service.ocr.record import read_page

    page = read_page(record)
    return len(json.dumps(page.to_dict()).encode()) + len(page.text_pdf or b"")


async def stored_records(redis_url: str, job_id: str) -> list[bytes]:
    client = aioredis.Redis.from_url(redis_url)
    try:
        raw: dict[bytes, bytes] = await client.hgetall(f"ocr:pages:{job_id}")  # type: ignore[misc]
        return [raw[n] for n in sorted(raw, key=int)]
    finally:
        await client.aclose()


async def run(ctx: Context) -> Section:
    from service.ocr.record import read_page, record_json

    section = Section(KEY, TITLE)
    pages = 100 if not ctx.quick else 30
    documents = {
        "dense OCR page (300 dpi letter scan, 40 lines)": scanned_pdf(2, seed=1100),
        "text-layer page (letter, 40 lines)": text_pdf(2, seed=1101),
    }
    with run_service(ctx.server, ctx.logdir, name="outputs", workers=1) as service:
        for label, document in documents.items():
            _, job, _ = await run_job(service.url, document)
            records = await stored_records(service.redis_url, job["id"])
            after = median([float(len(r)) for r in records])
            before = median([float(previous_bytes(r)) for r in records])
            uncompressed = median([float(len(record_json(read_page(r)))) for r in records])
            words = median([float(len(read_page(r).words.words(1, 1))) for r in records])
            section.add(f"{label}: bytes stored before (page JSON + text-layer PDF)", before, "bytes")
            section.add(f"{label}: bytes stored now (one record with its words)", after, "bytes",
                        note=f"{words:.0f} words; {uncompressed:.0f} bytes before compression, what the caps count")
            section.add(f"{label}: now / before", after / before, "x", target="<= 1.5", bound=1.5, kind="max")
        big = text_pdf(pages, seed=1102)
        _, job, _ = await run_job(service.url, big)
        async with http_client(service.url) as client:
            for label, params in [
                ("JSON", {}),
                ("JSON with detail=words", {"detail": "words"}),
                ("hOCR", {"format": "hocr"}),
                ("ALTO", {"format": "alto"}),
            ]:
                seconds, sizes = [], []
                for _ in range(3):
                    started = time.perf_counter()
                    response = await client.get(f"/jobs/{job['id']}/result", params=params)
                    seconds.append(time.perf_counter() - started)
                    sizes.append(len(response.content))
                    response.raise_for_status()
                section.add(f"{pages}-page text PDF's result as {label}", median(seconds) * 1000, "ms",
                            note=f"{sizes[0] / 1e6:.2f} MB, streamed from the page records")
    section.notes.append(
        "One web process and one worker; each document run once, its pages' records read back from Redis. "
        "Before/after are the same pages' bytes under the two representations, measured side by side."
    )
    return section
