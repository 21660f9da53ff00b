"""A text-layer job's pages are taken in units (service/jobs/schedule.py, TEXT_LAYER_BATCH): every page
is still stored and announced once, a page that needs OCR goes on alone, and a cancel stops them all."""

from __future__ import annotations

import asyncio
import re

import httpx
import pymupdf
from redis.asyncio import Redis

from service import keys
from service.jobs.schedule import TEXT_LAYER_BATCH
from tests.conftest import Service
from tests.e2e.test_api import read_stream, submit, wait_for_status
from tests.unit.ocr_samples import LINES, scan, scanned_pdf, text_pdf


def text_pages(pages: int, *, scanned_at: int | None = None) -> bytes:
    """A born-digital PDF of `pages` pages (copies of one: quick to make), page `scanned_at` (1-based) a scan."""
    doc = pymupdf.open(stream=text_pdf(1), filetype="pdf")
    for _ in range(pages - 1):
        doc.fullcopy_page(0)
    if scanned_at is not None:
        doc.delete_page(scanned_at - 1)
        doc.insert_pdf(pymupdf.open(stream=scanned_pdf([scan(["A scanned page among text", LINES[0]])])), start_at=scanned_at - 1)
    return bytes(doc.tobytes())


def units_logged(service: Service, job_id: str) -> list[str]:
    return re.findall(rf"pages {job_id}:\d+\.\.\d+ done", (service.logdir / "worker0.log").read_text())


async def test_a_text_layer_document_runs_in_units_with_every_page_stored_and_announced_once(
    client: httpx.AsyncClient, live_service: Service
) -> None:
    pages = 60
    job = (await submit(client, text_pages(pages), name="text.pdf")).json()
    events = await read_stream(client, job["links"]["events"])
    assert events[-1][2]["status"] == "completed"
    # However late the live read connected, the history from the job's first event has every step.
    history = await read_stream(client, job["links"]["events"], headers={"Last-Event-ID": "0"})
    ids = [int(event_id) for event_id, _, _ in history]
    assert ids == list(range(1, len(history) + 1))
    numbers = [data["page"]["number"] for _, name, data in history if name == "page"]
    assert sorted(numbers) == list(range(1, pages + 1)), "every page announced once"
    done = [data["pages_done"] for _, name, data in history if name == "progress"]
    assert done == sorted(done) and done[-1] == pages
    assert len(done) < pages / 4, "one progress event per unit, not per page"
    # Each page is announced before the progress event that counts it, and a unit's pages in their order.
    announced = 0
    for _, name, data in history:
        announced += name == "page"
        if name == "progress":
            assert data["pages_done"] <= announced, history
    longest = run = 1
    for previous, number in zip(numbers, numbers[1:], strict=False):
        run = run + 1 if number == previous + 1 else 1
        longest = max(longest, run)
    assert longest >= TEXT_LAYER_BATCH, numbers
    result = (await client.get(f"/jobs/{job['id']}/result")).json()
    assert [page["number"] for page in result["pages"]] == list(range(1, pages + 1))
    assert {page["source"] for page in result["pages"]} == {"text-layer"}
    assert all("quick brown fox" in page["text"] for page in result["pages"]), result["pages"][0]["text"]
    assert units_logged(live_service, job["id"]), "pages were taken in units"


async def test_a_page_of_a_unit_that_needs_ocr_is_read_alone_and_the_rest_go_on(
    client: httpx.AsyncClient, live_service: Service
) -> None:
    pages, scanned = 30, 12
    job = (await submit(client, text_pages(pages, scanned_at=scanned), name="mixed.pdf")).json()
    events = await read_stream(client, job["links"]["events"])
    assert events[-1][2]["status"] == "completed"
    numbers = [data["page"]["number"] for _, name, data in events if name == "page"]
    assert sorted(numbers) == list(range(1, pages + 1)), "every page announced once"
    result = (await client.get(f"/jobs/{job['id']}/result")).json()
    sources = {page["number"]: page["source"] for page in result["pages"]}
    assert sources.pop(scanned) == "ocr" and set(sources.values()) == {"text-layer"}
    assert "scanned page among text" in result["pages"][scanned - 1]["text"]
    log = (live_service.logdir / "worker0.log").read_text()
    assert f"page {job['id']}:{scanned - 1} and" in log, "the unit that met the scan put it back"
    assert len(units_logged(live_service, job["id"])) >= 2, "units before and after the scan"


async def test_cancel_stops_every_page_of_a_text_layer_job(client: httpx.AsyncClient, live_service: Service) -> None:
    pages = 1500
    job = (await submit(client, text_pages(pages), name="long.pdf")).json()
    redis = Redis.from_url(live_service.redis_url)
    try:
        async with asyncio.timeout(30):
            while not units_logged(live_service, job["id"]):
                await asyncio.sleep(0.01)
        assert (await client.delete(f"/jobs/{job['id']}")).status_code == 202
        final = await wait_for_status(client, job, {"cancelled", "completed", "failed"}, timeout_s=15)
        assert final["status"] == "cancelled"
        history = await read_stream(client, job["links"]["events"], headers={"Last-Event-ID": "0"})
        assert history[-1][2]["status"] == "cancelled" and history[-1][1] == "status"
        # A unit that was being stored as the cancel came may still land; nothing after it.
        await asyncio.sleep(0.5)
        stored = await redis.hlen(keys.pages(job["id"]))
        assert 0 < stored < pages
        await asyncio.sleep(1)
        assert await redis.hlen(keys.pages(job["id"])) == stored, "no page stored after the cancel"
        assert not await redis.exists(keys.sched_pages(job["id"]))
        assert not [m async for m, _ in redis.zscan_iter(keys.SCHED_LEASES) if job["id"].encode() in m]
        assert not await redis.hexists(keys.SCHED_BATCH, job["id"])
    finally:
        await redis.aclose()
    # The worker goes on: the next job completes.
    after = (await submit(client, text_pages(3), name="after.pdf")).json()
    assert (await wait_for_status(client, after, {"completed", "failed"}))["status"] == "completed"
