"""Pages while a job runs, over a real stream and a real worker: page events and their resume,
`pages=` selections, and `Idempotency-Key` on submissions."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from service.jobs.page_events import PAGE_FIELDS
from tests.e2e.test_api import read_stream, submit
from tests.unit.ocr_samples import LINES, scan, scanned_pdf, text_pdf


def numbered_scan(pages: int) -> bytes:
    return scanned_pdf([scan([f"Page {n} of the scan", LINES[0]]) for n in range(1, pages + 1)])


async def test_each_page_is_an_event_as_it_finishes_and_resumes_by_last_event_id(client: httpx.AsyncClient) -> None:
    feed: list[str] = []

    async def watch_feed(job_id: asyncio.Future[str]) -> None:
        async with aconnect_sse(client, "GET", "/events") as source:
            async for sse in source.aiter_sse():
                if not sse.data:
                    continue
                feed.append(sse.event)
                data = json.loads(sse.data)
                if job_id.done() and data.get("id") == job_id.result() and data.get("status") == "completed":
                    return

    submitted: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    watcher = asyncio.create_task(asyncio.wait_for(watch_feed(submitted), 60))
    job = (await submit(client, numbered_scan(3))).json()
    submitted.set_result(job["id"])
    events = await read_stream(client, job["links"]["events"])
    await watcher

    ids = [int(event_id) for event_id, _, _ in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids), "one sequence of ids with the job's other events"
    pages = {data["page"]["number"]: (int(event_id), data) for event_id, name, data in events if name == "page"}
    assert sorted(pages) == [1, 2, 3]
    completed_id = int(events[-1][0])
    result = (await client.get(f"/jobs/{job['id']}/result")).json()
    for stored in result["pages"]:
        event_id, data = pages[stored["number"]]
        assert event_id < completed_id, "each page is told before the job completes"
        assert data["id"] == job["id"]
        assert set(data["page"]) == set(PAGE_FIELDS)
        assert data["page"] == {name: stored[name] for name in PAGE_FIELDS}
        assert f"Page {stored['number']} of the scan" in data["page"]["text"]
    assert "page" not in feed and "status" in feed, "the tenant's feed carries no page events"

    # A client that lost the stream after the first page gets every later page again, the same.
    first_page_id = min(event_id for event_id, _ in pages.values())
    resumed = await read_stream(client, job["links"]["events"], headers={"Last-Event-ID": str(first_page_id)})
    assert [int(event_id) for event_id, _, _ in resumed] == [i for i in ids if i > first_page_id]
    resumed_pages = {data["page"]["number"]: data for _, name, data in resumed if name == "page"}
    assert resumed_pages == {n: data for n, (i, data) in pages.items() if i > first_page_id}
    assert resumed[-1][2]["status"] == "completed"


async def test_a_text_layer_document_has_page_events_too(client: httpx.AsyncClient) -> None:
    job = (await submit(client, text_pdf(pages=2), "text.pdf")).json()
    await read_stream(client, job["links"]["events"])
    history = await read_stream(client, job["links"]["events"], headers={"Last-Event-ID": "0"})
    sources = [data["page"]["source"] for _, name, data in history if name == "page"]
    assert sources == ["text-layer", "text-layer"]


def page_numbers(events: list[tuple[str, str, dict[str, Any]]]) -> list[int]:
    return sorted(data["page"]["number"] for _, name, data in events if name == "page")
