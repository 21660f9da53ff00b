"""Streams at scale: a burst of clients is served (waiting, never refused) while Redis is up, and costs
Redis a few reads rather than one per client; a 503 only while Redis is really down."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from redis.asyncio import Redis

from tests.conftest import run_service, running_redis
from tests.e2e.test_api import read_stream, submit
from tests.unit.ocr_samples import text_pdf

BURST = 300


async def open_raw_stream(port: int, path: str) -> tuple[int, asyncio.StreamReader, asyncio.StreamWriter]:
    """A stream on a bare socket (hundreds of them cost the test next to nothing): status, reader, writer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    return int(head.split()[1]), reader, writer


async def read_events(reader: asyncio.StreamReader) -> list[tuple[int, str, dict]]:
    """Every event until the server ends the stream (the terminating chunk of a chunked body)."""
    body = b""
    while not body.endswith(b"0\r\n\r\n"):
        chunk = await reader.read(65536)
        if not chunk:
            break
        body += chunk
    events = []
    for block in body.decode().split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if line.startswith(("id: ", "event: ", "data: "))
        )
        if "data" in fields:
            events.append((int(fields["id"]), fields["event"], json.loads(fields["data"])))
    return events


async def redis_calls(redis: Redis, command: str) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


@pytest.mark.expects_unavailable
async def test_a_burst_waits_for_a_small_pool_and_only_a_down_redis_is_a_503() -> None:
    with running_redis() as redis_server, run_service(redis_server, workers=0, REDIS_MAX_CONNECTIONS="4") as service:
        redis = Redis.from_url(service.redis_url)
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            job = (await submit(client, text_pdf(pages=3, lines=["Three hundred clients at once"]))).json()
            path = job["links"]["events"]
            reads_before = await redis_calls(redis, "lrange")
            # Every client at the same moment, against a pool of 4 connections: all wait their turn.
            opened = await asyncio.wait_for(
                asyncio.gather(*(open_raw_stream(service.port, path) for _ in range(BURST))), 30
            )
            streams = []
            try:
                assert [status for status, _, _ in opened] == [200] * BURST
                readers = [asyncio.create_task(read_events(reader)) for _, reader, _ in opened]
                # ... and cost Redis a handful of reads of the job's state, not one each.
                deadline = time.monotonic() + 10
                while (await redis_calls(redis, "lrange")) == reads_before:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.05)
                service.start_worker()
                streams = await asyncio.wait_for(asyncio.gather(*readers), 60)
                reads = await redis_calls(redis, "lrange") - reads_before
                assert reads <= 20, f"{reads} reads of the job's state for a burst of {BURST} streams"
            finally:
                for _, _, writer in opened:
                    writer.close()
            # Each got every event of the job, in order, ending with its end: the same as a lone reader.
            truth = await read_stream(client, path, headers={"Last-Event-ID": "0"})
            assert truth[-1][2]["status"] == "completed"
            expected = [(int(event_id), name) for event_id, name, _ in truth]
            got = [[(i, name) for i, name, _ in events] for events in streams]
            assert all(events == expected for events in got), (expected, [g for g in got if g != expected][:3])
            assert "service.access: GET" in service.logs() and " 503 " not in service.logs()

            # Redis really down: a 503 at once, and streams come back with it.
            redis_server.stop()
            deadline = time.monotonic() + 10
            while (refused := await client.get(path)).status_code != 503:
                assert time.monotonic() < deadline, refused.status_code
                await asyncio.sleep(0.1)
            assert refused.json()["error"]["code"] == "service_unavailable"
            redis_server.start_again()
            deadline = time.monotonic() + 30
            while (await client.get("/healthz")).status_code != 200 or (
                await client.get(f"/jobs/{job['id']}")
            ).status_code == 503:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.2)
        await redis.aclose()
