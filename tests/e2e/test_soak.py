"""A soak: minutes of steady traffic leave memory and Redis key counts flat."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from tests.conftest import RedisServer, run_service
from tests.e2e.test_api import read_stream
from tests.unit.ocr_samples import scan, scanned_pdf, text_pdf

pytestmark = pytest.mark.slow

SOAK_S = 100
WARM_UP_S = 30


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def test_memory_and_keys_stay_flat_under_steady_load(redis_server: RedisServer) -> None:
    # A short RESULT_TTL lets expiry reach a steady state within the soak.
    with run_service(redis_server, workers=1, RESULT_TTL="15", MAX_ACTIVE_JOBS="1000") as service:
        redis = Redis.from_url(service.redis_url)
        pids = [p.pid for p in [service.web, *service.workers] if p is not None]
        scan_pdf = scanned_pdf([scan(["A small scan for the soak"])])
        samples: list[tuple[float, list[int], int]] = []
        started = time.monotonic()
        count = 0
        async with httpx.AsyncClient(base_url=service.url, timeout=60) as client:

            async def one(n: int) -> None:
                document = scan_pdf if n % 10 == 0 else text_pdf(lines=[f"Soak document {n} steady traffic"])
                job = (await client.post("/jobs", files={"file": (f"{n}.pdf", document)})).json()
                await read_stream(client, job["links"]["events"])
                if n % 3 == 0:
                    await client.delete(f"/jobs/{job['id']}")

            next_sample = WARM_UP_S
            while time.monotonic() - started < SOAK_S:
                await asyncio.gather(*(one(count + k) for k in range(5)))
                count += 5
                elapsed = time.monotonic() - started
                if elapsed >= next_sample:
                    samples.append((elapsed, [rss_kb(pid) for pid in pids], await redis.dbsize()))
                    next_sample += 10
        await redis.aclose()
    assert count > 200
    first, last = samples[0], samples[-1]
    for before_kb, after_kb in zip(first[1], last[1], strict=True):
        assert after_kb < before_kb * 1.25 + 20_000, (first, last)
    peak_keys = max(keys for _, _, keys in samples)
    assert last[2] <= first[2] * 1.5 + 50 and peak_keys <= first[2] * 2 + 100, samples
