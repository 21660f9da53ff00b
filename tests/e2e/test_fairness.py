"""Sharing the workers fairly: small jobs do not wait for large ones, tenants take turns page by page,
low priority yields to normal, a killed worker's pages are recovered within seconds, a waiting job is
cancelled at once. One worker with one OCR slot makes the order of pages observable in its log."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections import Counter
from typing import Any

import httpx
from redis.asyncio import Redis

from service import keys
from tests.conftest import RedisServer, Service, run_service
from tests.e2e.test_api import submit, wait_for_status
from tests.unit.ocr_samples import LINES, scan, scanned_pdf

TENANTS = {"a": "key-a-0123456789ab", "b": "key-b-0123456789ab", "c": "key-c-0123456789ab"}
ENV = {"API_KEYS": ",".join(f"{t}:{k}" for t, k in TENANTS.items()), "SECRET_KEY": "s" * 32, "OCR_CONCURRENCY": "1"}
# What the issue measures with: scans read again by Tesseract at 100 dpi, so each page is quick.
FAST = {"force_ocr": "true", "dpi": "100"}
PAGE_DONE = re.compile(r"page ([0-9a-f]{32}):(\d+) done")


def document(pages: int) -> bytes:
    return scanned_pdf([scan(LINES[:2], dpi=100) for _ in range(pages)], dpi=100)


def as_tenant(client: httpx.AsyncClient, tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TENANTS[tenant]}"}


async def submit_as(client: httpx.AsyncClient, tenant: str, pages: int, **fields: str) -> dict[str, Any]:
    client.headers.update(as_tenant(client, tenant))
    response = await submit(client, document(pages), **FAST, **fields)
    assert response.status_code == 202, response.text
    return dict(response.json())


async def wait_ended(client: httpx.AsyncClient, tenant: str, job: dict[str, Any], timeout_s: float = 90) -> dict:
    client.headers.update(as_tenant(client, tenant))
    return await wait_for_status(client, job, {"completed", "failed", "cancelled"}, timeout_s=timeout_s)


async def pages_done(client: httpx.AsyncClient, tenant: str, job: dict[str, Any]) -> int:
    response = await client.get(f"/jobs/{job['id']}", headers=as_tenant(client, tenant))
    return int(response.json()["pages_done"])


async def wait_pages(client: httpx.AsyncClient, tenant: str, job: dict[str, Any], at_least: int) -> None:
    async with asyncio.timeout(60):
        while await pages_done(client, tenant, job) < at_least:
            await asyncio.sleep(0.05)


def page_order(service: Service, worker: int = 0) -> list[tuple[str, int]]:
    """The pages a worker finished, in order, from its log."""
    log = (service.logdir / f"worker{worker}.log").read_text()
    return [(job_id, int(index)) for job_id, index in PAGE_DONE.findall(log)]


async def test_small_jobs_go_first_and_tenants_take_turns(redis_server: RedisServer) -> None:
    with run_service(redis_server, workers=1, **ENV) as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            big = await submit_as(client, "a", 14)
            await wait_pages(client, "a", big, 1)
            done_before = await pages_done(client, "a", big)
            one_b = await submit_as(client, "b", 1)
            one_a = await submit_as(client, "a", 1)
            four_c = await submit_as(client, "c", 4)
            for tenant, job in (("b", one_b), ("a", one_a), ("c", four_c), ("a", big)):
                assert (await wait_ended(client, tenant, job))["status"] == "completed"
            for tenant, job, pages in (("a", big, 14), ("c", four_c, 4)):
                result = (await client.get(f"/jobs/{job['id']}/result", headers=as_tenant(client, tenant))).json()
                assert [p["number"] for p in result["pages"]] == list(range(1, pages + 1))
        order = [job_id for job_id, _ in page_order(service)]
        assert sorted(Counter(page_order(service)).values()) == [1] * 20, "every page ran once"
        at_b = order.index(one_b["id"])
        # B's page comes right after the page that was running when it was submitted (one slot), give or
        # take the one that may have finished while the submissions were made.
        assert order[:at_b].count(big["id"]) <= done_before + 2, order
        # A's own one-page job comes at A's first turn after that, before A's document goes on.
        assert order[at_b : order.index(one_a["id"])].count(big["id"]) == 0, order
        # C and A take turns while both have pages waiting: C's 4 pages within the next 8.
        last_c = len(order) - 1 - order[::-1].index(four_c["id"])
        assert last_c - at_b <= 8, order


async def test_low_priority_bulk_work_yields_to_a_normal_job(redis_server: RedisServer) -> None:
    with run_service(redis_server, workers=1, **ENV) as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            client.headers.update(as_tenant(client, "a"))
            refused = await submit(client, document(1), priority="urgent")
            assert refused.status_code == 400 and refused.json()["error"]["code"] == "bad_request"
            bulk = await submit_as(client, "a", 10, priority="low")
            assert bulk["options"]["priority"] == "low"
            await wait_pages(client, "a", bulk, 1)
            # A normal job of the same tenant, then of another one: each waits for the running page only.
            for tenant in ("a", "b"):
                before = await pages_done(client, "a", bulk)
                urgent = await submit_as(client, tenant, 1)
                assert urgent["options"]["priority"] == "normal"
                assert (await wait_ended(client, tenant, urgent))["status"] == "completed"
                assert await pages_done(client, "a", bulk) <= before + 1
            assert (await wait_ended(client, "a", bulk))["status"] == "completed"
        assert sorted(Counter(page_order(service)).values()) == [1] * 12


async def test_a_killed_workers_pages_go_to_the_other_worker_within_ten_seconds(redis_server: RedisServer) -> None:
    with run_service(redis_server, workers=2, **ENV) as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            pages = 16
            job = await submit_as(client, "a", pages)
            await wait_pages(client, "a", job, 2)
            redis = Redis.from_url(service.redis_url)
            try:
                # Kill the worker while it holds a page.
                async with asyncio.timeout(30):
                    while len(held := [m.decode() async for m, _ in redis.zscan_iter(keys.SCHED_LEASES)]) < 2:
                        await asyncio.sleep(0.02)
                victim = service.workers[0]
                os.killpg(victim.pid, signal.SIGKILL)
                killed_at = time.monotonic()
                victim.wait()
                lost = {int(m.rsplit(":", 1)[1]) + 1 for m in held}
                # Recovered: the lost page is stored again by the survivor within LEASE_SECONDS and a page.
                async with asyncio.timeout(10):
                    while True:
                        stored = {int(n) for n in await redis.hkeys(keys.pages(job["id"]))}
                        if lost <= stored:
                            break
                        await asyncio.sleep(0.05)
                recovered_s = time.monotonic() - killed_at
            finally:
                await redis.aclose()
            final = await wait_ended(client, "a", job)
            assert final["status"] == "completed" and final["attempt"] == 2, final
            result = (await client.get(f"/jobs/{job['id']}/result")).json()
            assert [p["number"] for p in result["pages"]] == list(range(1, pages + 1))
            assert recovered_s < 10


async def test_cancelling_a_waiting_job_takes_its_pages_out_at_once(redis_server: RedisServer) -> None:
    with run_service(redis_server, workers=1, **ENV) as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            running = await submit_as(client, "a", 6)
            await wait_pages(client, "a", running, 1)
            waiting = await submit_as(client, "a", 6)
            assert (await client.delete(f"/jobs/{waiting['id']}")).status_code == 202
            # Nothing of it was in work: it ends at once, and no page of it is left to claim.
            assert (await client.get(f"/jobs/{waiting['id']}")).json()["status"] == "cancelled"
            redis = Redis.from_url(service.redis_url)
            try:
                assert not await redis.exists(keys.sched_pages(waiting["id"]))
                assert not await redis.hexists(keys.SCHED_SINCE, waiting["id"])
            finally:
                await redis.aclose()
            assert (await wait_ended(client, "a", running))["status"] == "completed"
        assert not [job_id for job_id, _ in page_order(service) if job_id == waiting["id"]]
