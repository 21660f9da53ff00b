"""Streams have bounds: per tenant, for a client that stops reading, and for the keyless dashboard."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path

import httpx
from redis.asyncio import Redis

from service.jobs.record import RUNNING
from service.jobs.store import JobStore
from tests.conftest import RedisServer, run_service, running_redis
from tests.e2e.test_api import submit
from tests.e2e.test_operations import metric
from tests.unit.ocr_samples import text_pdf

KEYS = {"acme": "acme-key-123456", "globex": "globex-key-123456"}


def auth(tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[tenant]}"}


async def test_a_tenant_cannot_hold_more_streams_than_its_share(redis_server: RedisServer) -> None:
    env = {"API_KEYS": ",".join(f"{t}:{k}" for t, k in KEYS.items()), "SECRET_KEY": "s" * 32}
    with run_service(redis_server, workers=0, MAX_STREAMS_PER_TENANT="3", **env) as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:
            link = (await client.get("/events/link", headers=auth("acme"))).json()["links"]["events"]
            streams = [client.stream("GET", link) for _ in range(3)]
            opened = [await stream.__aenter__() for stream in streams]
            try:
                assert all(response.status_code == 200 for response in opened)
                refused = await client.get(link)
                assert refused.status_code == 429
                assert refused.json()["error"]["code"] == "too_many_streams"
                assert int(refused.headers["retry-after"]) > 0
                # Another tenant is not held to acme's count.
                other = (await client.get("/events/link", headers=auth("globex"))).json()["links"]["events"]
                async with client.stream("GET", other) as response:
                    assert response.status_code == 200
            finally:
                for stream in streams:
                    await stream.__aexit__(None, None, None)
            # The slots come back when the streams close.
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                async with client.stream("GET", link) as response:
                    if response.status_code == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("closed streams did not give their slots back")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def test_a_client_that_stops_reading_is_ended_and_holds_up_nobody(redis_server: RedisServer) -> None:
    with run_service(redis_server, workers=0, SSE_SEND_TIMEOUT_SECONDS="1") as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:
            job = (await submit(client, text_pdf(lines=["Nobody reads this stream"]))).json()
            # A client that asks for the stream, then never reads: its receive window stays tiny.
            stalled = socket.socket()
            stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            stalled.connect(("127.0.0.1", service.port))
            path = job["links"]["events"]
            stalled.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n".encode())
            redis = Redis.from_url(service.redis_url)
            store = JobStore(redis, ttl_s=3600)
            try:
                deadline = time.monotonic() + 5
                while metric((await client.get("/metrics")).text, "ocr_sse_clients") < 1:
                    assert time.monotonic() < deadline, "the stalled stream never opened"
                    await asyncio.sleep(0.05)
                rss_before = rss_kb(service.web.pid)  # type: ignore[union-attr]
                # 80 MB of events for a client that takes none of them.
                padding = "x" * 20_000
                for n in range(4000):
                    await store.change(job["id"], "public", {"status": RUNNING, "message": f"{n} {padding}"})
                # Meanwhile everyone else is served at once.
                started = time.monotonic()
                assert (await client.get("/healthz")).status_code == 200
                assert time.monotonic() - started < 1
                deadline = time.monotonic() + 15
                while metric((await client.get("/metrics")).text, "ocr_sse_clients") > 0:
                    assert time.monotonic() < deadline, "the stalled stream was never ended"
                    await asyncio.sleep(0.1)
                # Held for it at most: its queue's bound of events (1,000 of 20 KB), never all 80 MB.
                assert rss_kb(service.web.pid) < rss_before + 40_000  # type: ignore[union-attr]
            finally:
                stalled.close()
                await redis.aclose()


async def redis_calls(redis: Redis, command: str) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


async def test_dashboard_streams_share_one_poll_of_redis() -> None:
    with running_redis() as redis_server, run_service(redis_server, workers=1) as service:
        async with (
            Redis.from_url(service.redis_url) as redis,
            httpx.AsyncClient(base_url=service.url, timeout=10) as client,
        ):
            streams = [client.stream("GET", "/ops/events") for _ in range(20)]
            opened = [await stream.__aenter__() for stream in streams]
            try:

                async def first_figures(response: httpx.Response) -> dict:
                    async for line in response.aiter_lines():
                        if line.startswith("data:"):
                            return json.loads(line[5:])
                    raise AssertionError("no figures")

                figures = await asyncio.gather(*(first_figures(response) for response in opened))
                assert all(f["workers_alive"] == 1 for f in figures)
                before = await redis_calls(redis, "hgetall")
                await asyncio.sleep(4.2)  # two sampling intervals: what is measured is time passing
                polls = await redis_calls(redis, "hgetall") - before
                # One read of the counters per interval for all twenty streams (one per stream each
                # interval would be forty).
                assert polls <= 4, polls
            finally:
                for stream in streams:
                    await stream.__aexit__(None, None, None)
