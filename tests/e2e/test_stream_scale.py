"""Streams at scale: a burst of clients is served (waiting, never refused) while Redis is up, and costs
Redis a few reads rather than one per client; a 503 only while Redis is really down."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import time
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from service.jobs.store import JobStore
from tests.conftest import RedisServer, run_service, running_redis
from tests.e2e.test_api import read_stream, submit
from tests.e2e.test_operations import metric
from tests.unit.ocr_samples import text_pdf

BURST = 300


async def open_raw_stream(port: int, path: str) -> tuple[int, asyncio.StreamReader, asyncio.StreamWriter]:
    """A stream on a bare socket (hundreds of them cost the test next to nothing): status, reader, writer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    return int(head.split()[1]), reader, writer


async def open_burst(
    port: int, path: str, n: int, server_pid: int
) -> list[tuple[int, asyncio.StreamReader, asyncio.StreamWriter]]:
    """`n` streams opening at the same moment, as the server sees it: every connection is made, the
    server is paused while every request is written, and then it finds them all waiting at once. Without
    the pause the burst would arrive at the pace this client writes, which on a loaded machine is spread
    over many of the server's loop turns: a test of this client rather than of the server."""
    connections = await asyncio.gather(*(asyncio.open_connection("127.0.0.1", port) for _ in range(n)))
    request = f"GET {path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n".encode()
    os.kill(server_pid, signal.SIGSTOP)
    try:
        for _, writer in connections:
            writer.write(request)
        await asyncio.gather(*(writer.drain() for _, writer in connections))
    finally:
        os.kill(server_pid, signal.SIGCONT)
    heads = await asyncio.gather(*(reader.readuntil(b"\r\n\r\n") for reader, _ in connections))
    return [(int(head.split()[1]), reader, writer) for head, (reader, writer) in zip(heads, connections, strict=True)]


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
        # Closed even when the test fails: a socket left to the garbage collector fails a later test.
        async with (
            Redis.from_url(service.redis_url) as redis,
            httpx.AsyncClient(base_url=service.url, timeout=30) as client,
        ):
            job = (await submit(client, text_pdf(pages=3, lines=["Three hundred clients at once"]))).json()
            path = job["links"]["events"]
            reads_before = await redis_calls(redis, "lrange")
            # Every client at the same moment, against a pool of 4 connections: all wait their turn.
            assert service.web is not None
            opened = await asyncio.wait_for(open_burst(service.port, path, BURST, service.web.pid), 30)
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


def web_processes(pid: int) -> list[int]:
    """The processes uvicorn's supervisor `pid` started to serve (not multiprocessing's resource tracker)."""
    children = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return [child for child in children if b"resource_tracker" not in Path(f"/proc/{child}/cmdline").read_bytes()]


def established_on(pid: int, port: int) -> int:
    """How many accepted connections to `port` process `pid` holds (from /proc: no psutil in tests)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port, state, inode = int(fields[1].rsplit(":", 1)[1], 16), fields[3], fields[9]
            count += local_port == port and state == "01" and inode in inodes
    return count


async def metrics_once(client: httpx.AsyncClient, expected: dict[str, float], timeout_s: float = 10) -> str:
    """/metrics once it shows the `expected` figures (each process reports within a second or so)."""
    deadline = time.monotonic() + timeout_s
    while True:
        text = (await client.get("/metrics")).text
        if all(metric(text, name) == value for name, value in expected.items()):
            return text
        assert time.monotonic() < deadline, text
        await asyncio.sleep(0.1)


async def test_web_concurrency_runs_processes_that_each_deliver_every_event(redis_server: RedisServer) -> None:
    with run_service(redis_server, workers=0, WEB_CONCURRENCY="2") as service:
        assert service.web is not None
        processes = web_processes(service.web.pid)
        assert len(processes) == 2, processes
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            job = (await submit(client, text_pdf(pages=2, lines=["Two web processes"]))).json()
            path = job["links"]["events"]
            opened = []
            try:
                # Connections are spread by the kernel among the processes: open until both hold some.
                deadline = time.monotonic() + 20
                while min(established_on(pid, service.port) for pid in processes) < 5:
                    assert time.monotonic() < deadline, [established_on(pid, service.port) for pid in processes]
                    opened.append(await open_raw_stream(service.port, path))
                assert all(status == 200 for status, _, _ in opened)
                # Whichever process answers /metrics gives its own streams and every process's.
                text = await metrics_once(client, {"ocr_sse_clients_all_processes": len(opened), "ocr_web_processes": 2})
                assert 4 <= metric(text, "ocr_sse_clients") <= len(opened) - 4, text  # (a connection is ours)
                async with client.stream("GET", "/ops/events") as dashboard:
                    data = await anext(line async for line in dashboard.aiter_lines() if line.startswith("data: "))
                figures = json.loads(data.removeprefix("data: "))
                assert (figures["sse_clients"], figures["web_processes"]) == (len(opened), 2), figures
                readers = [asyncio.create_task(read_events(reader)) for _, reader, _ in opened]
                service.start_worker()
                streams = await asyncio.wait_for(asyncio.gather(*readers), 60)
            finally:
                for _, _, writer in opened:
                    writer.close()
            await metrics_once(client, {"ocr_sse_clients_all_processes": 0, "ocr_web_processes": 2})
            truth = await read_stream(client, path, headers={"Last-Event-ID": "0"})
            expected = [(int(event_id), name) for event_id, name, _ in truth]
            assert expected[-1][1] == "status" and truth[-1][2]["status"] == "completed"
            assert all([(i, name) for i, name, _ in events] == expected for events in streams)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def test_a_slow_reader_gets_the_newest_progress_without_growing_the_webs_memory(
    redis_server: RedisServer,
) -> None:
    with run_service(redis_server, workers=0) as service:
        assert service.web is not None
        async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:
            job = (await submit(client, text_pdf(lines=["A slow reader"]))).json()
            status, reader, writer = await open_raw_stream(service.port, job["links"]["events"])
            assert status == 200
            await reader.readuntil(b"\n\n")  # the current state
            redis = Redis.from_url(service.redis_url)
            store = JobStore(redis, ttl_s=3600)
            try:
                rss_before = rss_kb(service.web.pid)
                received = b""
                publishing = True

                async def read_slowly() -> None:
                    nonlocal received
                    while not received.endswith(b"0\r\n\r\n"):
                        received += await reader.read(16384)
                        if publishing:
                            await asyncio.sleep(0.05)  # about 300 KB/s, far below what is published

                slow = asyncio.create_task(read_slowly())
                # 1,000 progress events of 20 KB each (20 MB) for a client that reads a fraction of that.
                padding = "x" * 20_000
                for n in range(1000):
                    await store.change(job["id"], "public", {"pages_done": n, "message": f"{n} {padding}"})
                grown_kb = rss_kb(service.web.pid) - rss_before
                publishing = False
                await store.change(job["id"], "public", {"status": "completed", "message": "done"})
                await asyncio.wait_for(slow, 30)
            finally:
                writer.close()
                await redis.aclose()
            # Held for it: its socket's buffers and a few queued events (shared with every other stream),
            # never the 20 MB; it was not ended, and it got the newest state and the end.
            assert grown_kb < 10_000, grown_kb
            text = received.decode()
            progress = [int(m) for m in re.findall(r'"pages_done":(\d+)', text)]
            assert progress == sorted(progress) and len(progress) < 500, len(progress)
            assert '"pages_done":999,' in text and '"status":"completed"' in text
