"""What every benchmark shares: the run's context and the HTTP client steps (submit, follow a job)."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from benchmarks import sse
from benchmarks.processes import RedisServer

JOB_TIMEOUT_S = 600


@dataclass
class Context:
    server: RedisServer
    logdir: Path
    quick: bool
    cores: int = os.cpu_count() or 1


def http_client(base_url: str, *, connections: int = 100) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits)


async def submit(client: httpx.AsyncClient, document: bytes, *, media_type: str = "application/pdf",
                 **params: str) -> dict[str, Any]:
    """POST the document as a raw body; the job object (202 or a cached 200)."""
    response = await client.post("/jobs", content=document, headers={"Content-Type": media_type}, params=params)
    if response.status_code not in (200, 202):
        raise RuntimeError(f"POST /jobs answered {response.status_code}: {response.text[:300]}")
    job: dict[str, Any] = response.json()
    return job


async def follow(base_url: str, job: dict[str, Any], *, timeout_s: float = JOB_TIMEOUT_S) -> list[sse.Event]:
    """Every event of the job's stream until its terminal one."""
    url = urlsplit(base_url)
    stream = await sse.open_stream(url.hostname or "127.0.0.1", url.port or 80, job["links"]["events"])
    try:
        if stream.status != 200:
            raise RuntimeError(f"the job's stream answered {stream.status}")
        async with asyncio.timeout(timeout_s):
            events = await stream.read_until_terminal()
    finally:
        stream.close()
    if not events or events[-1].data.get("status") != "completed":
        last = events[-1].data if events else None
        raise RuntimeError(f"job {job['id']} did not complete: {last}")
    return events


async def run_job(base_url: str, document: bytes, **params: str) -> tuple[float, dict[str, Any], list[sse.Event]]:
    """Submit and follow to completion; seconds from before the POST to the completed event."""
    async with http_client(base_url) as client:
        started = time.perf_counter()
        job = await submit(client, document, **params)
        events = await follow(base_url, job)
        return events[-1].received_perf - started, job, events

