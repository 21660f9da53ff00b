"""Pages while a job runs, over a real stream and a real worker: page events and their resume,
`pages=` selections, and `Idempotency-Key` on submissions."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pymupdf
from httpx_sse import aconnect_sse

from service.jobs.page_events import PAGE_FIELDS
from tests.conftest import RedisServer, run_service
from tests.e2e.receiver import running_receiver
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


async def test_pages_selects_which_pages_are_read_keeping_their_numbers(client: httpx.AsyncClient) -> None:
    document = numbered_scan(4)
    response = await submit(client, document, pages=" 4, 2")
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["options"]["pages"] == "2,4" and job["pages_total"] == 2
    events = await read_stream(client, job["links"]["events"])
    assert events[-1][2]["status"] == "completed" and events[-1][2]["pages_done"] == 2
    assert page_numbers(events) == [2, 4]
    result = (await client.get(f"/jobs/{job['id']}/result")).json()
    assert result["pages_total"] == 2 and [p["number"] for p in result["pages"]] == [2, 4]
    for page in result["pages"]:
        assert f"Page {page['number']} of the scan" in page["text"]
    assert "Page 1 of" not in result["text"] and "Page 3 of" not in result["text"]
    pdf = await client.get(f"/jobs/{job['id']}/result", params={"format": "pdf"})
    assert pdf.status_code == 200
    with pymupdf.open(stream=pdf.content, filetype="pdf") as searchable:
        assert searchable.page_count == 2
        assert "Page 4 of the scan" in searchable[1].get_text()
    # The selection is part of what the cache knows: the whole document is another job.
    whole = (await submit(client, document)).json()
    assert whole["cached"] is False and "pages" not in whole["options"] and whole["pages_total"] == 4
    assert (await submit(client, document, pages="2,4")).json()["cached"] is True
    await client.delete(f"/jobs/{whole['id']}")


async def test_pages_as_a_query_parameter_and_an_open_range(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/jobs", content=text_pdf(pages=5), headers={"content-type": "application/pdf"}, params={"pages": "4-"}
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["options"]["pages"] == "4-" and job["pages_total"] == 2
    await read_stream(client, job["links"]["events"])
    result = (await client.get(f"/jobs/{job['id']}/result")).json()
    assert [p["number"] for p in result["pages"]] == [4, 5] and result["text"].count("\f") == 1


async def test_bad_page_selections_are_400(client: httpx.AsyncClient) -> None:
    document = text_pdf(pages=3)
    for pages in ("0", "3-1", "1,,2", "x", "-2", "4-", "5,9"):
        response = await submit(client, document, pages=pages)
        assert response.status_code == 400, (pages, response.text)
        assert response.json()["error"]["code"] == "bad_request"
        assert "pages" in response.json()["error"]["message"]
    raw = await client.post(
        "/jobs", content=document, headers={"content-type": "application/pdf"}, params={"pages": "0"}
    )
    assert raw.status_code == 400


async def test_a_downloaded_document_with_none_of_the_pages_fails_the_job(redis_server: RedisServer) -> None:
    with running_receiver() as receiver, run_service(redis_server, workers=1) as service:
        receiver.documents["three.pdf"] = text_pdf(pages=3)
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            url = f"{receiver.url}/docs/three.pdf"
            bad = (await client.post("/jobs", json={"url": url, "pages": "4-"})).json()
            good = (await client.post("/jobs", json={"url": url, "pages": "2-"})).json()
            assert bad["options"]["pages"] == "4-"
            ended = await read_stream(client, bad["links"]["events"])
            assert ended[-1][2]["status"] == "failed"
            assert ended[-1][2]["error"]["code"] == "no_pages_selected"
            assert "3 pages" in ended[-1][2]["error"]["message"]
            await read_stream(client, good["links"]["events"])
            result = (await client.get(f"/jobs/{good['id']}/result")).json()
            assert result["pages_total"] == 2 and [p["number"] for p in result["pages"]] == [2, 3]


async def test_a_retried_submission_with_its_idempotency_key_gets_the_same_job(client: httpx.AsyncClient) -> None:
    document = numbered_scan(1)
    key = {"Idempotency-Key": f"retry {uuid.uuid4()}"}
    first = await client.post("/jobs", files={"file": ("a.pdf", document)}, data={"pages": "1"}, headers=key)
    assert first.status_code == 202, first.text
    again = await client.post("/jobs", files={"file": ("a.pdf", document)}, data={"pages": "1"}, headers=key)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"] and again.headers["location"] == first.headers["location"]
    # Synchronous mode on a retry waits for the same job and gives its result.
    waited = await client.post(
        "/jobs", files={"file": ("a.pdf", document)}, data={"pages": "1"}, headers=key, params={"wait": "20"}
    )
    assert waited.status_code == 200 and waited.json()["id"] == first.json()["id"]
    assert waited.json()["status"] == "completed" and "Page 1 of the scan" in waited.json()["result"]["text"]
    # Once completed, a retry shows the job as it is now.
    done = await client.post("/jobs", files={"file": ("a.pdf", document)}, data={"pages": "1"}, headers=key)
    assert done.status_code == 200 and done.json()["status"] == "completed" and done.json()["cached"] is False

    for other in (
        {"files": {"file": ("a.pdf", text_pdf())}, "data": {"pages": "1"}},  # another document
        {"files": {"file": ("a.pdf", document)}, "data": {"pages": "1", "dpi": "200"}},  # other options
        {"files": {"file": ("a.pdf", document)}},  # no selection is another option too
    ):
        conflict = await client.post("/jobs", headers=key, **other)  # type: ignore[arg-type]
        assert conflict.status_code == 409, conflict.text
        assert conflict.json()["error"]["code"] == "idempotency_conflict"
    # Another key is another submission; deleting the job frees its key.
    other_key = await client.post(
        "/jobs",
        files={"file": ("a.pdf", document)},
        data={"pages": "1"},
        headers={"Idempotency-Key": f"other {uuid.uuid4()}"},
    )
    assert other_key.status_code == 200 and other_key.json()["cached"] is True
    assert (await client.delete(f"/jobs/{first.json()['id']}")).status_code == 204
    fresh = await client.post("/jobs", files={"file": ("a.pdf", document)}, data={"pages": "1"}, headers=key)
    assert fresh.status_code in (200, 202) and fresh.json()["id"] != first.json()["id"]
    await read_stream(client, fresh.json()["links"]["events"])  # ended before the next test looks


async def test_concurrent_submissions_with_one_key_make_one_job(client: httpx.AsyncClient) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    document = text_pdf(pages=2)
    answers = await asyncio.gather(
        *(client.post("/jobs", content=document, headers=key | {"content-type": "application/pdf"}) for _ in range(8))
    )
    assert sorted(r.status_code for r in answers) == [200] * 7 + [202], [r.text for r in answers]
    assert len({r.json()["id"] for r in answers}) == 1
    listed = (await client.get("/jobs", params={"limit": 20})).json()["jobs"]
    assert sum(job["id"] == answers[0].json()["id"] for job in listed) == 1


async def test_idempotency_key_for_a_url_submission_and_bad_keys(client: httpx.AsyncClient) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    # A URL that answers 404: the job fails at its download, and ends (no live job is left behind).
    body = {"url": f"{client.base_url}/static/no-such-document.pdf", "pages": "2-"}
    first = await client.post("/jobs", json=body, headers=key)
    again = await client.post("/jobs", json=body, headers=key)
    assert (first.status_code, again.status_code) == (202, 200) and first.json()["id"] == again.json()["id"]
    assert (await client.post("/jobs", json=body | {"pages": "3-"}, headers=key)).status_code == 409
    ended = await read_stream(client, first.json()["links"]["events"])
    assert ended[-1][2]["error"]["code"] == "download_failed"
    after = await client.post("/jobs", json=body, headers=key)
    assert after.status_code == 200 and after.json()["status"] == "failed", "the key lives as long as its job"
    for bad in (b"", b"x" * 201, "caf\u00e9".encode(), b"tab\there"):
        headers = {"content-type": "application/pdf", "Idempotency-Key": bad}
        refused = await client.post("/jobs", content=text_pdf(), headers=headers)  # type: ignore[arg-type]
        assert refused.status_code == 400, (bad, refused.text)
        assert "Idempotency-Key" in refused.json()["error"]["message"], bad


async def test_a_selection_shared_by_two_workers_reads_each_selected_page_once(redis_server: RedisServer) -> None:
    with run_service(redis_server, workers=2) as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            job = (await submit(client, text_pdf(pages=7), "seven.pdf", pages="2,4-6")).json()
            assert job["pages_total"] == 4
            events = await read_stream(client, job["links"]["events"])
            assert events[-1][2]["status"] == "completed"
            result = (await client.get(f"/jobs/{job['id']}/result")).json()
            assert [p["number"] for p in result["pages"]] == [2, 4, 5, 6]
            history = await read_stream(client, job["links"]["events"], headers={"Last-Event-ID": "0"})
            assert page_numbers(history) == [2, 4, 5, 6]
