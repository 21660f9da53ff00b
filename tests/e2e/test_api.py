"""The core HTTP contract, end to end: a real uvicorn, a real arq worker, a real redis-server, real Tesseract."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

from tests.conftest import RedisServer, Service, run_service
from tests.unit.ocr_samples import LINES, cer, scan, scanned_pdf, text_pdf

TERMINAL = {"completed", "failed", "cancelled"}


def one_page_scan(lines: list[str] = LINES) -> bytes:
    return scanned_pdf([scan(lines)])


async def submit(client: httpx.AsyncClient, document: bytes, name: str = "scan.pdf", **fields: str) -> httpx.Response:
    return await client.post("/jobs", files={"file": (name, document)}, data=fields)


async def read_stream(
    client: httpx.AsyncClient, path: str, headers: dict[str, str] | None = None, timeout_s: float = 60
) -> list[tuple[str, str, dict[str, Any]]]:
    """Every event of a stream until the server closes it: (id, event, data)."""
    events = []
    async with asyncio.timeout(timeout_s):
        async with aconnect_sse(client, "GET", path, headers=headers or {}) as source:
            async for sse in source.aiter_sse():
                # httpx-sse reports a `: ping` comment as an event without data once an id was seen.
                if sse.data:
                    events.append((sse.id, sse.event, json.loads(sse.data)))
    return events


async def wait_for_status(client: httpx.AsyncClient, job: dict[str, Any], statuses: set[str], timeout_s: float = 60):
    """Follow the job's stream until it reaches one of `statuses`; the job object then."""
    async with asyncio.timeout(timeout_s):
        async with aconnect_sse(client, "GET", job["links"]["events"]) as source:
            async for sse in source.aiter_sse():
                if not sse.data:
                    continue
                data = json.loads(sse.data)
                if data.get("status") in statuses:
                    return data
    raise AssertionError(f"stream closed before {statuses}")


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text


async def test_scanned_pdf_streams_queued_running_completed(client: httpx.AsyncClient) -> None:
    lines = ["Streaming events over HTTP works", "without any polling at all"]
    response = await submit(client, one_page_scan(lines))
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/jobs/{job['id']}"
    assert job["status"] in ("queued", "running") and len(job["id"]) == 32
    assert job["options"] == {"lang": "eng", "dpi": 300, "force_ocr": False, "priority": "normal"}

    events = await read_stream(client, job["links"]["events"])
    ids = [int(event_id) for event_id, _, _ in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids), "ids increase"
    assert events[-1][2]["status"] == "completed" and events[-1][1] == "status"
    progress = [data["progress"] for _, name, data in events if name != "page"]
    assert progress == sorted(progress) and progress[-1] == 100

    result = (await client.get(f"/jobs/{job['id']}/result")).json()
    assert result["id"] == job["id"] and result["pages_total"] == 1
    assert result["pages"][0]["source"] == "ocr" and result["pages"][0]["number"] == 1
    assert cer("\n".join(lines), result["text"]) < 0.05
    text = await client.get(f"/jobs/{job['id']}/result", params={"format": "text"})
    assert text.headers["content-type"].startswith("text/plain")
    assert text.text == result["text"]
    assert text.headers["cache-control"] == "no-store"


async def test_stream_of_a_running_job_shows_progress_then_closes(client: httpx.AsyncClient) -> None:
    document = scanned_pdf([scan(LINES[:2]) for _ in range(3)])
    job = (await submit(client, document)).json()
    events = await read_stream(client, job["links"]["events"])
    statuses = [data["status"] for _, name, data in events if name != "page"]
    assert statuses[-1] == "completed"
    done = [data["pages_done"] for _, name, data in events if name != "page"]
    assert done == sorted(done) and done[-1] == 3
    # However late the live read connected, the job's history from its first event shows every step:
    # each page's own event comes before the progress event that counts it. (Two pages read at once,
    # one per OCR slot, may both be told before either is counted: page, page, progress, progress.)
    history = await read_stream(client, job["links"]["events"], headers={"Last-Event-ID": "0"})
    names = [name for _, name, _ in history]
    assert names[:2] == ["status", "status"] and names[-1] == "status"
    assert sorted(names[2:-1]) == ["page"] * 3 + ["progress"] * 3
    for at, (_, name, data) in enumerate(history):
        if name == "progress":
            assert data["pages_done"] <= names[:at].count("page")
    assert [int(event_id) for event_id, _, _ in history] == list(range(1, 10))
    changes = [data for _, name, data in history if name != "page"]
    assert [data["status"] for data in changes] == ["queued", "running", "running", "running", "running", "completed"]
    progress = [data["pages_done"] for _, name, data in history if name == "progress"]
    assert progress == sorted(progress) and progress[-1] == 3
    assert all("page" in data["message"] for _, name, data in history if name == "progress")
    assert sorted(data["page"]["number"] for _, name, data in history if name == "page") == [1, 2, 3]


async def test_raw_body_upload_and_text_layer_skips_ocr(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/jobs", content=text_pdf(pages=2), headers={"content-type": "application/pdf"}, params={"dpi": "150"}
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["options"]["dpi"] == 150 and job["pages_total"] == 2
    await read_stream(client, job["links"]["events"])
    result = (await client.get(f"/jobs/{job['id']}/result")).json()
    assert [p["source"] for p in result["pages"]] == ["text-layer", "text-layer"]
    assert result["text"].count("\f") == 1
    assert cer(LINES[0], result["pages"][0]["text"].splitlines()[0]) == 0


async def test_late_subscriber_gets_the_final_state_and_the_stream_closes(client: httpx.AsyncClient) -> None:
    job = (await submit(client, text_pdf())).json()
    await read_stream(client, job["links"]["events"])
    events = await read_stream(client, job["links"]["events"], timeout_s=10)
    assert len(events) == 1
    assert events[0][1] == "status" and events[0][2]["status"] == "completed"


async def test_last_event_id_resumes_after_the_given_event(client: httpx.AsyncClient) -> None:
    job = (await submit(client, scanned_pdf([scan(LINES[:2]) for _ in range(2)]))).json()
    full = await read_stream(client, job["links"]["events"])
    # A fresh stream after the end starts at the final state; the history lives in Redis for resumes.
    history = await client.get(f"/jobs/{job['id']}")
    assert history.json()["status"] == "completed"
    first_id = int(full[0][0])
    resumed = await read_stream(client, job["links"]["events"], headers={"Last-Event-ID": str(first_id)})
    assert resumed, "events after the given id are replayed"
    assert all(int(event_id) > first_id for event_id, _, _ in resumed)
    assert resumed[-1][2]["status"] == "completed"
    # Nothing after the last event: 204 tells EventSource not to reconnect.
    last_id = resumed[-1][0]
    done = await client.get(job["links"]["events"], headers={"Last-Event-ID": last_id})
    assert done.status_code == 204


async def test_stream_carries_retry_and_pings(client: httpx.AsyncClient) -> None:
    """The service under test pings every second (SSE_PING_SECONDS=1) while a stream is quiet; the
    default is 15 s. A stream that carries events needs no ping, so the job is kept quiet for sure: its
    document's download is held by the receiver until the stream has carried a ping."""
    from tests.e2e.receiver import running_receiver

    with running_receiver() as receiver:
        receiver.documents["held.pdf"] = text_pdf(lines=["Pinged while its download waits"])
        receiver.hold = True
        job = (await client.post("/jobs", json={"url": f"{receiver.url}/docs/held.pdf"})).json()
        raw = b""
        try:
            async with asyncio.timeout(60):
                async with client.stream("GET", job["links"]["events"]) as stream:
                    assert stream.headers["content-type"].startswith("text/event-stream")
                    assert stream.headers["x-accel-buffering"] == "no"
                    async for chunk in stream.aiter_bytes():
                        raw += chunk
                        if b": ping" in raw:
                            receiver.hold = False
        finally:
            receiver.hold = False
    text = raw.decode()
    # SSE_RETRY_MS (2000) plus up to half again of jitter, so that clients do not come back together.
    retry = re.search(r"^retry: (\d+)$", text, re.M)
    assert retry is not None and 2000 <= int(retry.group(1)) <= 3000
    assert ": ping" in text
    assert text.rstrip().endswith("}")
    assert '"status":"completed"' in text


async def test_same_document_is_served_from_the_cache(client: httpx.AsyncClient) -> None:
    document = one_page_scan(["Cached documents are not read twice"])
    first = (await submit(client, document)).json()
    await read_stream(client, first["links"]["events"])
    again = await submit(client, document, name="copy.pdf")
    assert again.status_code == 200
    cached = again.json()
    assert cached["cached"] is True and cached["status"] == "completed" and cached["id"] != first["id"]
    assert cached["filename"] == "copy.pdf" and cached["progress"] == 100
    result = (await client.get(f"/jobs/{cached['id']}/result")).json()
    original = (await client.get(f"/jobs/{first['id']}/result")).json()
    assert result["text"] == original["text"] and result["id"] == cached["id"]
    # Different options are a different document as far as the cache is concerned.
    other = await submit(client, document, dpi="200")
    assert other.status_code == 202


async def test_error_bodies(client: httpx.AsyncClient) -> None:
    async def expect(response: httpx.Response, status: int, code: str) -> None:
        assert response.status_code == status, response.text
        body = response.json()
        assert body["error"]["code"] == code and body["error"]["message"]

    await expect(await client.get("/jobs/" + "0" * 32), 404, "not_found")
    await expect(await client.get("/jobs/not-an-id/result"), 404, "not_found")
    await expect(await client.delete("/jobs/" + "f" * 32), 404, "not_found")
    await expect(await submit(client, b"just some text, not a document"), 415, "unsupported_media_type")
    await expect(await submit(client, b""), 415, "unsupported_media_type")
    await expect(await submit(client, text_pdf(), dpi="9000"), 400, "bad_request")
    await expect(await submit(client, text_pdf(), lang="xx_not_installed"), 400, "bad_request")
    await expect(await submit(client, text_pdf(), force_ocr="maybe"), 400, "bad_request")
    await expect(await client.post("/jobs", data={"lang": "eng"}, files={"other": ("x", b"y")}), 400, "bad_request")
    await expect(await client.post("/jobs", content=b"x", headers={"content-type": "text/csv"}), 415,
                 "unsupported_media_type")
    await expect(await client.post("/jobs", content=b"%PDF-1.7\n", headers={"content-type": "application/pdf"}),
                 422, "unprocessable_document")
    await expect(await client.get("/jobs", params={"status": "weird"}), 400, "bad_request")
    await expect(await client.get("/nowhere"), 404, "not_found")
    await expect(await client.put("/jobs"), 405, "method_not_allowed")


async def test_result_before_completion_is_409_with_the_job(redis_server: RedisServer) -> None:
    with run_service(redis_server, workers=0) as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            job = (await submit(client, text_pdf())).json()
            response = await client.get(f"/jobs/{job['id']}/result")
            assert response.status_code == 409
            assert response.json()["error"]["code"] == "not_ready"
            assert response.json()["job"]["id"] == job["id"]
            await client.delete(f"/jobs/{job['id']}")


async def test_cancel_a_queued_job(redis_server: RedisServer) -> None:
    # No worker: the job stays queued until it is cancelled.
    with run_service(redis_server, workers=0) as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            job = (await submit(client, one_page_scan(["Never read"]))).json()
            stream = asyncio.create_task(read_stream(client, job["links"]["events"]))
            await asyncio.sleep(0.3)
            response = await client.delete(f"/jobs/{job['id']}")
            assert response.status_code == 202
            assert response.json()["status"] == "cancelled"
            events = await stream
            assert events[-1][2]["status"] == "cancelled"
            # Out of arq's queue: a worker that starts now finds nothing to do.
            service.start_worker()
            service.wait_ready()
            await asyncio.sleep(1)
            assert (await client.get(f"/jobs/{job['id']}")).json()["status"] == "cancelled"


def live_tesseract_pids(service: Service) -> list[int]:
    """The service's running Tesseract processes, found by the image file each reads from the service's
    own TMPDIR, so an orphan whose page process died counts too (other programs on the machine may run
    Tesseract as well). Killed ones are zombies until init reaps them, and some sandboxes' init never
    does: those are not running and do not count."""
    found = subprocess.run(["ps", "-eo", "pid=,stat=,args="], capture_output=True, text=True)
    tmpdir = service.env["TMPDIR"]
    pids = []
    for line in found.stdout.splitlines():
        pid, stat, args = line.split(None, 2)
        if not stat.startswith("Z") and args.split()[0].endswith("tesseract") and f" {tmpdir}/" in f" {args}":
            pids.append(int(pid))
    return pids


def tesseract_processes(service: Service) -> int:
    return len(live_tesseract_pids(service))


async def test_cancel_a_running_job_kills_tesseract(client: httpx.AsyncClient, live_service: Service) -> None:
    document = scanned_pdf([scan(LINES, dpi=300) for _ in range(8)], dpi=300)
    job = (await submit(client, document, dpi="400")).json()
    running = await wait_for_status(client, job, {"running"})
    assert running["status"] == "running"
    stream = asyncio.create_task(read_stream(client, job["links"]["events"]))
    await asyncio.sleep(0.5)
    loop = asyncio.get_running_loop()
    asked = loop.time()
    response = await client.delete(f"/jobs/{job['id']}")
    assert response.status_code == 202
    events = await asyncio.wait_for(stream, timeout=10)
    assert events[-1][2]["status"] == "cancelled"
    assert loop.time() - asked < 3, "stops within a couple of seconds"
    final = (await client.get(f"/jobs/{job['id']}")).json()
    assert final["status"] == "cancelled" and final["pages_done"] < 8
    await asyncio.sleep(0.5)
    assert tesseract_processes(live_service) == 0
    # The worker is still serving.
    after = (await submit(client, text_pdf(lines=["After a cancel the worker still serves"]))).json()
    assert (await wait_for_status(client, after, TERMINAL))["status"] == "completed"


async def test_delete_a_finished_job_removes_it(client: httpx.AsyncClient, live_service: Service) -> None:
    job = (await submit(client, text_pdf(lines=["Delete me when done please"]))).json()
    await read_stream(client, job["links"]["events"])
    assert (await client.delete(f"/jobs/{job['id']}")).status_code == 204
    assert (await client.get(f"/jobs/{job['id']}")).status_code == 404
    assert (await client.get(f"/jobs/{job['id']}/result")).status_code == 404
    from redis.asyncio import Redis

    redis = Redis.from_url(live_service.redis_url)
    try:
        leftovers = [k async for k in redis.scan_iter(match=f"*{job['id']}*")]
    finally:
        await redis.aclose()
    assert leftovers == []


async def test_list_jobs_newest_first_with_filter_and_cursor(client: httpx.AsyncClient) -> None:
    ids = []
    for n in range(3):
        job = (await submit(client, text_pdf(lines=[f"Listing document number {n} of three"]))).json()
        ids.append(job["id"])
    for job_id in ids:
        await read_stream(client, f"/jobs/{job_id}/events")
    page = (await client.get("/jobs", params={"limit": 2})).json()
    assert [j["id"] for j in page["jobs"]] == ids[::-1][:2]
    assert page["next"] is not None
    rest = (await client.get("/jobs", params={"limit": 2, "cursor": page["next"]})).json()
    assert rest["jobs"][0]["id"] == ids[0]
    completed = (await client.get("/jobs", params={"status": "completed", "limit": 200})).json()
    assert all(j["status"] == "completed" for j in completed["jobs"])
    assert set(ids) <= {j["id"] for j in completed["jobs"]}


async def test_everything_a_job_stores_expires(client: httpx.AsyncClient, live_service: Service) -> None:
    job = (await submit(client, one_page_scan(["Every key expires"]))).json()
    await read_stream(client, job["links"]["events"])
    from redis.asyncio import Redis

    redis = Redis.from_url(live_service.redis_url)
    try:
        # arq finishes its own bookkeeping (in-progress, job and retry keys, in one transaction) just
        # after the job function returns, which is after the job published its end: wait for that.
        deadline = time.monotonic() + 10
        while await redis.exists(f"arq:in-progress:{job['id']}:0") and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        job_keys = [k async for k in redis.scan_iter(match=f"*{job['id']}*")]
        assert len(job_keys) >= 6
        for key in job_keys:
            ttl = await redis.ttl(key)
            # -2: gone already (arq drops its own keys for the job just after the job reports its end)
            assert 0 < ttl <= 3600 or ttl == -2, (key, ttl)
        for key in [k async for k in redis.scan_iter(match="ocr:*")]:
            if key.startswith((b"ocr:workers", b"ocr:metrics")):
                continue  # process-wide: the workers' heartbeats and the metrics counters
            assert await redis.ttl(key) > 0, key
    finally:
        await redis.aclose()


async def _stream_lines(client: httpx.AsyncClient, path: str) -> AsyncIterator[str]:
    async with client.stream("GET", path) as stream:
        async for line in stream.aiter_lines():
            yield line


async def test_client_that_disconnects_is_cleaned_up(client: httpx.AsyncClient) -> None:
    job = (await submit(client, scanned_pdf([scan(LINES) for _ in range(4)]))).json()
    for _ in range(5):
        async with asyncio.timeout(10):
            async for line in _stream_lines(client, job["links"]["events"]):
                if line.startswith("data:"):
                    break
    await asyncio.sleep(0.5)
    metrics = (await client.get("/metrics")).text
    gauge = [line for line in metrics.splitlines() if line.startswith("ocr_sse_clients ")]
    assert gauge == ["ocr_sse_clients 0.0"], gauge
    await read_stream(client, job["links"]["events"])


@pytest.mark.parametrize("name", ["../../etc/passwd", "a\\b\\scan.pdf", "bad\x00name\x1f.pdf"])
async def test_hostile_filenames_are_cleaned(client: httpx.AsyncClient, name: str) -> None:
    response = await submit(client, text_pdf(lines=[f"Filename test {len(name)} right here"]), name=name)
    assert response.status_code in (200, 202)
    filename = response.json()["filename"]
    assert "/" not in filename and "\\" not in filename and all(c.isprintable() for c in filename)


async def test_a_walk_of_the_job_list_sees_80_jobs_submitted_together_each_once(redis_server: RedisServer) -> None:
    with run_service(redis_server, workers=0) as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=60) as client:
            document = text_pdf(lines=["Listed once"])
            responses = await asyncio.gather(*(submit(client, document + b"%" + str(n).encode()) for n in range(80)))
            ids = {response.json()["id"] for response in responses}
            assert len(ids) == 80
            seen: list[str] = []
            cursor = None
            for _ in range(40):
                params = {"limit": "7"} | ({"cursor": cursor} if cursor else {})
                page = (await client.get("/jobs", params=params)).json()
                seen += [job["id"] for job in page["jobs"]]
                cursor = page["next"]
                if cursor is None:
                    break
            assert len(seen) == len(set(seen)) == 80 and set(seen) == ids
