"""What users of the old design reach for: one-call synchronous mode, and cache management."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from redis.asyncio import Redis

from tests.conftest import RedisServer, Service, run_service
from tests.e2e.test_api import read_stream
from tests.unit.ocr_samples import scan, scanned_pdf, text_pdf


async def test_wait_answers_200_with_the_result(client: httpx.AsyncClient) -> None:
    document = scanned_pdf([scan(["One call and the text comes back"])])
    response = await client.post("/jobs", params={"wait": "20"}, files={"file": ("s.pdf", document)})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "completed" and body["progress"] == 100
    assert "text comes back" in body["result"]["text"]
    assert body["result"]["id"] == body["id"]


async def test_wait_for_a_cached_document_answers_at_once(client: httpx.AsyncClient) -> None:
    document = text_pdf(lines=["Cached answers come back at once"])
    first = await client.post("/jobs", params={"wait": "20"}, files={"file": ("a.pdf", document)})
    assert first.status_code == 200
    started = time.monotonic()
    again = await client.post("/jobs", params={"wait": "20"}, files={"file": ("a.pdf", document)})
    assert again.status_code == 200 and again.json()["cached"] is True
    assert again.json()["result"]["text"] == first.json()["result"]["text"]
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("wait", ["26", "-1", "soon", "nan"])
async def test_wait_out_of_range_is_400(client: httpx.AsyncClient, wait: str) -> None:
    response = await client.post("/jobs", params={"wait": wait}, files={"file": ("a.pdf", text_pdf())})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"


async def sse_clients(client: httpx.AsyncClient) -> float:
    metrics = (await client.get("/metrics")).text
    line = next(line for line in metrics.splitlines() if line.startswith("ocr_sse_clients "))
    return float(line.split()[1])


async def test_wait_times_out_with_202_and_a_client_that_leaves_leaks_nothing(redis_server: RedisServer) -> None:
    with run_service(redis_server, workers=0) as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            started = time.monotonic()
            response = await client.post("/jobs", params={"wait": "1"}, files={"file": ("a.pdf", text_pdf())})
            assert response.status_code == 202 and 1 <= time.monotonic() - started < 5
            assert response.json()["status"] == "queued"

            document = text_pdf(lines=["The client gives up but the job goes on"])
            request = asyncio.create_task(
                client.post("/jobs", params={"wait": "20"}, files={"file": ("b.pdf", document)})
            )
            await asyncio.sleep(0.5)
            assert await sse_clients(client) == 1  # the waiting request's subscription
            request.cancel()
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and await sse_clients(client) != 0:
                await asyncio.sleep(0.1)
            assert await sse_clients(client) == 0
            jobs = (await client.get("/jobs", params={"status": "queued"})).json()["jobs"]
            left = next(j for j in jobs if j["filename"] == "b.pdf")
            service.start_worker()
            events = await read_stream(client, left["links"]["events"])
            assert events[-1][2]["status"] == "completed"


async def test_cache_stats_clear_and_deleted_results(client: httpx.AsyncClient, live_service: Service) -> None:
    await client.delete("/cache")
    before = (await client.get("/cache/stats")).json()
    document = text_pdf(lines=["Cache statistics count hits and misses"])
    first = await client.post("/jobs", params={"wait": "20"}, files={"file": ("a.pdf", document)})
    assert first.status_code == 200
    hit = await client.post("/jobs", files={"file": ("a.pdf", document)})
    assert hit.status_code == 200 and hit.json()["cached"]
    stats = (await client.get("/cache/stats")).json()
    assert stats["entries"] >= 1 and stats["bytes"] > 0
    assert stats["hits"] == before["hits"] + 1 and stats["misses"] == before["misses"] + 1
    assert 0 < stats["hit_ratio"] <= 1

    redis = Redis.from_url(live_service.redis_url)
    try:
        entries = [k async for k in redis.scan_iter(match="ocr:cache:public:*")]
        ttls = [await redis.ttl(k) for k in entries]
        assert ttls and all(0 < ttl <= 3600 for ttl in ttls)
    finally:
        await redis.aclose()

    assert (await client.delete("/cache")).status_code == 204
    assert (await client.get("/cache/stats")).json()["entries"] == 0
    again = await client.post("/jobs", files={"file": ("a.pdf", document)})
    assert again.status_code == 202, "after clearing, the document is OCRed again"
    await read_stream(client, again.json()["links"]["events"])

    # Deleting the job that produced the cached result: the cache never serves it again.
    assert (await client.delete(f"/jobs/{again.json()['id']}")).status_code == 204
    after_delete = await client.post("/jobs", files={"file": ("a.pdf", document)})
    assert after_delete.status_code == 202
    await read_stream(client, after_delete.json()["links"]["events"])
