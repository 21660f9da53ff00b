"""What a unit survives: its worker SIGKILLed the moment it took it or while it waited on the outside
world, its job deleted before its webhook went out, and Redis restarted under the worker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
from collections import Counter

import httpx
import pytest
from redis.asyncio import Redis

from service import keys
from tests.conftest import RedisServer, run_service, running_redis
from tests.e2e.receiver import Receiver, running_receiver
from tests.e2e.test_api import TERMINAL, submit, wait_for_status
from tests.unit.ocr_samples import LINES, scan, scanned_pdf, text_pdf

pytestmark = pytest.mark.slow

LEASE_S = 4


def kill(worker: subprocess.Popen[bytes]) -> float:
    """SIGKILL a worker and its page processes; when it died."""
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    return time.monotonic()


async def wait_until_arrived(receiver: Receiver, path: str, timeout_s: float = 30) -> None:
    async with asyncio.timeout(timeout_s):
        while path not in receiver.arrived:
            await asyncio.sleep(0.02)


async def wait_for_hooks(receiver: Receiver, count: int, timeout_s: float) -> list[dict]:
    async with asyncio.timeout(timeout_s):
        while len(receiver.hooks) < count:
            await asyncio.sleep(0.05)
    return [json.loads(body) for _, body in receiver.hooks]


async def test_a_worker_killed_as_it_takes_a_page_hands_it_on_within_the_lease(
    redis_server: RedisServer,
) -> None:
    """The soak's job that never ended: its worker was SIGKILLed in the same moment as it took its work,
    before that work's own lease began. A page's lease is now set by the claim itself (the scheduler's
    Lua script), so the test kills the worker on the very command of the claim that takes the page."""
    with run_service(redis_server, workers=0, LEASE_SECONDS=str(LEASE_S)) as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            job = (await submit(client, text_pdf(lines=["Taken by a worker that died at once"]))).json()
            taken = f"{job['id']}:0"
            watcher = Redis.from_url(service.redis_url)
            try:
                async with watcher.monitor() as monitor, asyncio.timeout(30):
                    worker = service.start_worker()
                    async for command in monitor.listen():
                        words = str(command["command"]).split()
                        if words[:2] == ["ZADD", keys.SCHED_LEASES] and words[-1] == taken:
                            killed_at = kill(worker)
                            taken_at_ms = command["time"] * 1000
                            break
            finally:
                await watcher.aclose()
            # The take itself claims the page for a lease, not for a job's timeout.
            assert float(words[-2]) - taken_at_ms <= LEASE_S * 1000 + 500, words
            service.start_worker()
            final = await wait_for_status(client, job, TERMINAL, timeout_s=LEASE_S + 10)
            assert final["status"] == "completed", final
            assert time.monotonic() - killed_at < LEASE_S + 5


async def test_a_worker_killed_in_a_download_or_a_webhook_hands_it_on_within_the_lease(
    redis_server: RedisServer,
) -> None:
    with running_receiver() as receiver, run_service(
        redis_server, workers=1, OCR_CONCURRENCY="1", LEASE_SECONDS=str(LEASE_S)
    ) as service:
        receiver.documents["held.pdf"] = text_pdf(lines=["Downloaded by the next worker"])
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            # A download: the worker waits on the document's host when it dies.
            receiver.hold = True
            job = (await client.post("/jobs", json={"url": f"{receiver.url}/docs/held.pdf"})).json()
            await wait_until_arrived(receiver, "/docs/held.pdf")
            killed_at = kill(service.workers[-1])
            receiver.hold = False
            service.start_worker()
            final = await wait_for_status(client, job, TERMINAL, timeout_s=LEASE_S + 10)
            assert final["status"] == "completed", final
            assert time.monotonic() - killed_at < LEASE_S + 5

            # A webhook: the worker waits on the receiver's answer when it dies.
            receiver.hold = True
            hooked = (await submit(client, text_pdf(lines=["Its webhook outlives a worker"]),
                                   webhook_url=f"{receiver.url}/hook")).json()
            await wait_until_arrived(receiver, "/hook")
            killed_at = kill(service.workers[-1])
            receiver.hold = False
            service.start_worker()
            posted = await wait_for_hooks(receiver, 1, timeout_s=LEASE_S + 10)
            assert time.monotonic() - killed_at < LEASE_S + 5
            assert [(p["id"], p["status"]) for p in posted] == [(hooked["id"], "completed")]


async def test_a_deleted_jobs_webhook_still_posts_the_job_as_it_ended(redis_server: RedisServer) -> None:
    """Deleting an ended job does not take its pending delivery with it; the delivery leaves nothing."""
    with running_receiver() as receiver, run_service(redis_server, workers=1, OCR_CONCURRENCY="1") as service:
        hook = {"webhook_url": f"{receiver.url}/hook"}
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            # The only job slot is held by a delivery the receiver does not answer yet.
            receiver.hold = True
            document = text_pdf(lines=["Completed, then copied from the cache"])
            first = (await client.post("/jobs", params={"wait": "20"}, data=hook,
                                       files={"file": ("a.pdf", document)})).json()
            assert first["status"] == "completed"
            await wait_until_arrived(receiver, "/hook")
            # Ended while the worker is busy, then deleted: a cache hit (completed) and a job cancelled while
            # queued. A low-priority job waits while a normal one has pages waiting: three scanned pages on
            # the worker's one OCR slot keep it queued for two page times at least.
            cached = (await submit(client, document, **hook)).json()
            assert cached["cached"] is True and cached["status"] == "completed"
            blocker = (await submit(client, scanned_pdf([scan(LINES[:2]) for _ in range(3)]))).json()
            await wait_for_status(client, blocker, {"running"}, timeout_s=30)
            queued = (await submit(client, text_pdf(lines=["Cancelled while queued"]), priority="low", **hook)).json()
            assert (await client.delete(f"/jobs/{queued['id']}")).json()["status"] == "cancelled"
            for job in (cached, queued):
                assert (await client.delete(f"/jobs/{job['id']}")).status_code == 204
                assert (await client.get(f"/jobs/{job['id']}")).status_code == 404
            receiver.hold = False
            posted = {p["id"]: p for p in await wait_for_hooks(receiver, 3, timeout_s=30)}
            assert Counter(p["id"] for _, p in ((None, json.loads(b)) for _, b in receiver.hooks)) == Counter(
                [first["id"], cached["id"], queued["id"]]
            )
            assert posted[cached["id"]]["status"] == "completed" and posted[cached["id"]]["cached"] is True
            assert posted[queued["id"]]["status"] == "cancelled"
            assert posted[queued["id"]]["links"]["self"] == f"/jobs/{queued['id']}"
            redis = Redis.from_url(service.redis_url)
            try:
                async with asyncio.timeout(10):
                    while [k async for k in redis.scan_iter(match="arq:*:webhook")]:
                        await asyncio.sleep(0.05)
            finally:
                await redis.aclose()


async def feed(client: httpx.AsyncClient, accepted: list[dict], stop: asyncio.Event) -> None:
    """Submit a small document every 50 ms until `stop`, through the outage (503s are left aside)."""
    n = 0
    while not stop.is_set():
        n += 1
        with contextlib.suppress(httpx.HTTPError):
            response = await submit(client, text_pdf(lines=[f"Submitted around a Redis restart {n}"]))
            if response.status_code == 202:
                accepted.append(response.json())
        await asyncio.sleep(0.05)


async def loaded(redis: Redis, timeout_s: float = 30) -> None:
    async with asyncio.timeout(timeout_s):
        while True:
            with contextlib.suppress(Exception):
                if (await redis.info("persistence"))["loading"] == 0:
                    return
            await asyncio.sleep(0.05)


@pytest.mark.expects_unavailable
async def test_a_worker_rides_out_a_redis_restart_while_the_aof_loads() -> None:
    """Redis with its append-only file on, crashed (SIGKILL) and started again while submissions keep
    coming: for seconds it answers LOADING while it reads the file back. The worker stays up through it
    (arq let `BusyLoadingError` and `WatchError` out of its poll, and the worker exited; the page loop
    must ride it out too), and every job accepted before, during and after ends."""
    # Filler keys, each loaded slowly: the restarted server answers LOADING for about two seconds.
    options = ("--appendonly", "yes", "--appendfsync", "everysec", "--enable-debug-command", "local",
               "--key-load-delay", "100", "--loading-process-events-interval-bytes", "1024")
    with running_redis(*options) as server, run_service(server, workers=1) as service:
        admin = Redis.from_url(server.url)
        try:
            await admin.execute_command("DEBUG", "POPULATE", 10_000, "filler")
            await admin.bgrewriteaof()
            async with asyncio.timeout(30):
                while (await admin.info("persistence"))["aof_rewrite_in_progress"]:
                    await asyncio.sleep(0.05)
            worker = service.workers[0]
            async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
                accepted: list[dict] = []
                stop = asyncio.Event()
                feeding = asyncio.create_task(feed(client, accepted, stop))
                # Crashed while the worker is taking work: in the claim of a page, or between arq's WATCH and its EXEC.
                claim = f"ZADD {keys.SCHED_LEASES} "
                watcher = Redis.from_url(service.redis_url)
                try:
                    async with watcher.monitor() as monitor, asyncio.timeout(30):
                        async for command in monitor.listen():
                            # The take: a page's claim (the scheduler's lease) or a unit's (arq's WATCH).
                            taking = str(command["command"]).startswith(("WATCH arq:in-progress:", claim))
                            if taking and len(accepted) > 5:
                                server.process.kill()
                                break
                finally:
                    await watcher.aclose()
                server.process.wait()
                server.start_again()
                await loaded(admin)
                await asyncio.sleep(1.5)
                stop.set()
                await feeding
                assert worker.poll() is None, "the worker exited:\n" + service.logs()
                assert len(accepted) > 10
                for job in accepted:
                    final = await wait_for_status(client, job, TERMINAL, timeout_s=30)
                    assert final["status"] == "completed", final
                after = (await submit(client, text_pdf(lines=["After the restart it works"]))).json()
                assert (await wait_for_status(client, after, TERMINAL, timeout_s=30))["status"] == "completed"
            assert worker.poll() is None and service.workers == [worker]
        finally:
            await admin.aclose()
