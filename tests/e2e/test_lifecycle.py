"""A job's whole life, end to end: it never vanishes while it waits or runs, it always ends whatever its
units raise, it sends its webhook exactly once however it ends, and the quota holds under a burst."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import httpx
from redis.asyncio import Redis

from service import keys
from tests.conftest import RedisServer, Service, run_service
from tests.e2e.receiver import Receiver, running_receiver
from tests.e2e.test_api import TERMINAL, submit, wait_for_status
from tests.unit.ocr_samples import LINES, scan, scanned_pdf, text_pdf


async def key_ttls(service: Service, job_id: str) -> dict[str, int]:
    redis = Redis.from_url(service.redis_url)
    try:
        return {key: await redis.ttl(key) for key in keys.job_keys(job_id) if await redis.exists(key)}
    finally:
        await redis.aclose()


async def test_a_job_queued_for_longer_than_result_ttl_is_kept_then_ends_and_expires(
    redis_server: RedisServer,
) -> None:
    env = {"RESULT_TTL": "10"}
    with running_receiver() as receiver, run_service(redis_server, workers=0, **env) as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            job = (await submit(client, text_pdf(pages=2), webhook_url=f"{receiver.url}/hook")).json()
            waiting = await key_ttls(service, job["id"])
            assert len(waiting) >= 4 and set(waiting.values()) == {-1}, waiting
            # Longer than RESULT_TTL in the queue: still there, still queued.
            until = time.monotonic() + 11
            while time.monotonic() < until:
                response = await client.get(f"/jobs/{job['id']}")
                assert response.status_code == 200 and response.json()["status"] == "queued", response.text
                await asyncio.sleep(0.5)
            service.start_worker()
            final = await wait_for_status(client, job, TERMINAL, timeout_s=30)
            assert final["status"] == "completed"
            assert (await client.get(f"/jobs/{job['id']}/result")).json()["pages_total"] == 2
            ended = await key_ttls(service, job["id"])
            assert keys.pages(job["id"]) in ended and all(0 < ttl <= 10 for ttl in ended.values()), ended
            await asyncio.to_thread(receiver.wait_for_hooks, 1, 20)


async def test_the_ranges_of_a_cancelled_split_job_expire_with_it(redis_server: RedisServer) -> None:
    env = {"OCR_CONCURRENCY": "1", "WORKER_MAX_JOBS": "1"}
    with run_service(redis_server, workers=1, **env) as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            job = (await submit(client, scanned_pdf([scan(LINES) for _ in range(4)]))).json()
            deadline = time.monotonic() + 30
            while (await client.get(f"/jobs/{job['id']}")).json()["pages_done"] < 1:
                assert time.monotonic() < deadline, "no range finished"
                await asyncio.sleep(0.05)
            assert (await client.delete(f"/jobs/{job['id']}")).status_code == 202
            assert (await wait_for_status(client, job, TERMINAL, timeout_s=15))["status"] == "cancelled"
            ttls = await key_ttls(service, job["id"])
            assert keys.pages(job["id"]) in ttls and all(0 < ttl <= 3600 for ttl in ttls.values()), ttls


async def test_a_cached_copy_and_its_result_expire_together(redis_server: RedisServer) -> None:
    with run_service(redis_server, workers=1, RESULT_TTL="10") as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            document = text_pdf(lines=["A cached copy lives as long as its result"])
            source = (await client.post("/jobs", params={"wait": "20"}, files={"file": ("a.pdf", document)})).json()
            assert source["status"] == "completed"
            # Let the source's result age, so that a copy made now has less than RESULT_TTL left.
            deadline = time.monotonic() + 10
            while (await key_ttls(service, source["id"]))[keys.result(source["id"])] > 7:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.2)
            copy = (await submit(client, document, name="a.pdf")).json()
            assert copy["cached"] is True
            ttls = await key_ttls(service, copy["id"])
            assert ttls[keys.job(copy["id"])] <= 7 and ttls[keys.job(copy["id"])] == ttls[keys.result(copy["id"])]
            # Until it is gone, a copy that reads completed has its result.
            deadline = time.monotonic() + 15
            while (response := await client.get(f"/jobs/{copy['id']}")).status_code == 200:
                assert response.json()["status"] == "completed"
                result = await client.get(f"/jobs/{copy['id']}/result")
                assert result.status_code == 200 or (await client.get(f"/jobs/{copy['id']}")).status_code == 404
                assert time.monotonic() < deadline, "the copy outlived RESULT_TTL"
                await asyncio.sleep(0.2)


async def damage(service: Service, job_id: str, field: str) -> None:
    """Take a field out of a job's meta hash: the worker meets an error none of its handlers expects."""
    redis = Redis.from_url(service.redis_url)
    try:
        assert await redis.hdel(keys.meta(job_id), field) == 1  # type: ignore[misc]
    finally:
        await redis.aclose()


async def test_a_unit_that_raises_anything_ends_its_job_with_a_code(redis_server: RedisServer) -> None:
    env = {"MAX_TRIES": "2", "RETRY_DELAY_SECONDS": "0.2"}
    with running_receiver() as receiver, run_service(redis_server, workers=0, **env) as service:
        receiver.documents["scan.pdf"] = text_pdf()
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            download = (await client.post("/jobs", json={"url": f"{receiver.url}/docs/scan.pdf"})).json()
            await damage(service, download["id"], "source_url")
            pages = (await submit(client, text_pdf(lines=["A page that cannot be read"]))).json()
            await damage(service, pages["id"], "media_type")
            # The audit's case: a redirect to a port that does not exist.
            redirect = f"{receiver.url}/redirect?to=http://127.0.0.1:99999/scan.pdf"
            bad_port = (await client.post("/jobs", json={"url": redirect})).json()
            service.start_worker()
            for job in (download, pages):
                final = await wait_for_status(client, job, TERMINAL, timeout_s=30)
                assert final["status"] == "failed" and final["error"]["code"] == "unit_failed", final
                assert "2 times" in final["error"]["message"] and "KeyError" in final["error"]["message"]
            final = await wait_for_status(client, bad_port, TERMINAL, timeout_s=30)
            assert final["status"] == "failed" and final["error"]["code"], final
            ok = (await submit(client, text_pdf(lines=["The worker serves on after all that"]))).json()
            assert (await wait_for_status(client, ok, TERMINAL))["status"] == "completed"


async def wait_for_deliveries(client: httpx.AsyncClient, job_ids: list[str], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    for job_id in job_ids:
        while ((await client.get(f"/jobs/{job_id}")).json().get("webhook") or {}).get("status") != "delivered":
            assert time.monotonic() < deadline, f"the webhook of {job_id} was not delivered"
            await asyncio.sleep(0.1)


def posted(receiver: Receiver) -> Counter[str]:
    import json

    return Counter(json.loads(body)["id"] for _, body in receiver.hooks)


async def test_every_end_sends_its_webhook_exactly_once(redis_server: RedisServer) -> None:
    with running_receiver() as receiver, run_service(redis_server, workers=0) as service:
        hook = {"webhook_url": f"{receiver.url}/hook"}
        receiver.documents["notes.txt"] = b"plain text, not a document"
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            # Cancelled while queued: the web ends it, no worker ever sees it.
            cancelled = (await submit(client, text_pdf(lines=["Cancelled before any worker"]), **hook)).json()
            assert (await client.delete(f"/jobs/{cancelled['id']}")).json()["status"] == "cancelled"
            service.start_worker()
            service.wait_ready()
            document = text_pdf(lines=["Completed, then served from the cache"])
            completed = (await client.post("/jobs", params={"wait": "20"}, data=hook,
                                           files={"file": ("a.pdf", document)})).json()
            assert completed["status"] == "completed"
            cached = (await submit(client, document, **hook)).json()
            assert cached["cached"] is True
            failed = (await client.post("/jobs", json={"url": f"{receiver.url}/docs/notes.txt", **hook})).json()
            assert (await wait_for_status(client, failed, TERMINAL))["status"] == "failed"
            ids = [cancelled["id"], completed["id"], cached["id"], failed["id"]]
            await wait_for_deliveries(client, ids)
            assert posted(receiver) == Counter(ids), posted(receiver)
            redis = Redis.from_url(service.redis_url)
            try:
                assert not [m async for m, _ in redis.zscan_iter("arq:queue") if m.endswith(b":webhook")]
            finally:
                await redis.aclose()
            assert posted(receiver) == Counter(ids)


async def test_a_burst_of_uploads_cannot_pass_the_quota(redis_server: RedisServer) -> None:
    with run_service(redis_server, workers=0, MAX_ACTIVE_JOBS="3") as service:
        limits = httpx.Limits(max_connections=20)
        async with httpx.AsyncClient(base_url=service.url, timeout=30, limits=limits) as client:

            async def one(n: int) -> Any:
                return (await submit(client, text_pdf(lines=[f"Burst upload number {n}"]))).status_code

            statuses = Counter(await asyncio.gather(*(one(n) for n in range(20))))
            assert statuses == Counter({202: 3, 429: 17}), statuses
            listed = (await client.get("/jobs")).json()["jobs"]
            assert len(listed) == 3
