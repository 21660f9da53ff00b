"""Large documents are split into page ranges that several workers share."""

from __future__ import annotations

import asyncio

import httpx
from redis.asyncio import Redis

from service import keys
from tests.conftest import RedisServer, run_service
from tests.e2e.test_api import read_stream, submit, tesseract_processes, wait_for_status
from tests.unit.ocr_samples import LINES, scan, scanned_pdf


async def test_ranges_run_on_two_workers_and_assemble_once(redis_server: RedisServer) -> None:
    with run_service(redis_server, workers=2, OCR_CONCURRENCY="1") as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            pages = 6
            document = scanned_pdf([scan([f"Page {n} of the split document", *LINES[:2]]) for n in range(1, pages + 1)])
            job = (await submit(client, document)).json()
            events = await read_stream(client, job["links"]["events"], timeout_s=120)
            assert events[-1][2]["status"] == "completed"
            progress = [data["progress"] for _, name, data in events if name != "page"]
            done = [data["pages_done"] for _, name, data in events if name != "page"]
            assert sorted(data["page"]["number"] for _, name, data in events if name == "page") == list(
                range(1, pages + 1)
            ), "every page announced once, whichever worker stored it"
            assert progress == sorted(progress) and done == sorted(done)
            assert [name for name, *_ in [(e[1],) for e in events]].count("status") >= 2
            result = (await client.get(f"/jobs/{job['id']}/result")).json()
            assert [p["number"] for p in result["pages"]] == list(range(1, pages + 1))
            for number, page in enumerate(result["pages"], 1):
                assert f"Page {number} of the split" in page["text"]
        # The completion is logged just after it is published: give the line a moment to land.
        for _ in range(50):
            logs = [(service.logdir / f"worker{n}.log").read_text() for n in range(2)]
            if any(f"job {job['id']} tenant=public completed" in log for log in logs):
                break
            await asyncio.sleep(0.1)
        assert all(f"{job['id']}:" in log for log in logs), "both workers took ranges"
        assert sum(f"job {job['id']} tenant=public completed" in log for log in logs) == 1, "assembled once"


async def test_cancel_stops_every_range(redis_server: RedisServer) -> None:
    with run_service(redis_server, workers=2, OCR_CONCURRENCY="1") as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            document = scanned_pdf([scan(LINES, dpi=300) for _ in range(10)], dpi=300)
            job = (await submit(client, document, dpi="400")).json()
            await wait_for_status(client, job, {"running"})
            await asyncio.sleep(0.5)
            assert (await client.delete(f"/jobs/{job['id']}")).status_code == 202
            final = await wait_for_status(client, job, {"cancelled", "completed", "failed"}, timeout_s=15)
            assert final["status"] == "cancelled"
            await asyncio.sleep(1.5)
            assert tesseract_processes(service) == 0
            redis = Redis.from_url(service.redis_url)
            try:
                queued = [m async for m, _ in redis.zscan_iter("arq:queue")]
                assert not any(job["id"].encode() in member for member in queued), "no range left queued"
                # Nor a page waiting or held in the scheduler.
                assert not await redis.exists(keys.sched_pages(job["id"]))
                assert not [m async for m, _ in redis.zscan_iter(keys.SCHED_LEASES) if job["id"].encode() in m]
            finally:
                await redis.aclose()
            assert (await client.get(f"/jobs/{job['id']}")).json()["status"] == "cancelled"
