"""Fault injection: a worker SIGKILLed and replaced a third of the way in, redis-server crashed two thirds in."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time

import httpx
from redis.asyncio import Redis

from benchmarks.processes import (
    RedisServer,
    Service,
    tree_rss_kb,
)
from benchmarks.soak.state import SoakState


async def wait_http(url: str, path: str, timeout_s: float) -> float | None:
    """Seconds until GET url+path answers 200, or None within the bound."""
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=url, timeout=2) as client:
        while time.monotonic() - started < timeout_s:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(path)).status_code == 200:
                    return time.monotonic() - started
            await asyncio.sleep(0.1)
    return None


async def inject_faults(
    soak: SoakState,
    server: RedisServer,
    service: Service,
    chaos: dict[str, float],
    rss_warm: dict[str, int],
    pids: dict[str, list[int]],
    deadline: float,
) -> None:
    """A worker SIGKILLed a third of the way in and replaced; redis-server SIGKILLed two thirds in."""
    total = soak.plan.jobs

    async def reach(count: int) -> bool:
        while soak.submitted < count and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        return soak.submitted >= count

    if await reach(max(50, total // 20)):
        rss_warm.update({role: tree_rss_kb(p) for role, p in pids.items()})
    if not await reach(total // 3):
        return
    victim = service.workers[0]
    redis = Redis.from_url(service.redis_url, socket_timeout=5)
    try:
        before = {m for m, _ in await redis.zrange("ocr:workers", 0, -1, withscores=True)}
        chaos["worker in flight"] = soak.open_jobs()
        soak.in_flight_at_worker_kill = list(soak.open)
        chaos["worker killed"] = time.time()
        # The worker alone, as the OOM killer would: its page processes must die with it by themselves.
        soak.killing = victim.pid
        os.kill(victim.pid, signal.SIGKILL)
        await asyncio.to_thread(victim.wait, 10)
        service.workers.remove(victim)
        await asyncio.sleep(1)
        chaos["worker's processes alive 1 s after its SIGKILL"] = len(group_members(victim.pid))
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(victim.pid, signal.SIGKILL)
        service.start_worker()
        for _ in range(600):
            members = {m for m, _ in await redis.zrange("ocr:workers", 0, -1, withscores=True)}
            if members - before:
                chaos["worker replaced after"] = time.time() - chaos["worker killed"]
                break
            await asyncio.sleep(0.1)
    finally:
        await redis.aclose()
    if not await reach(2 * total // 3):
        return
    chaos["redis in flight"] = soak.open_jobs()
    soak.in_flight_at_redis_kill = list(soak.open)
    chaos["redis killed"] = time.time()
    ready = asyncio.create_task(wait_ready_after(soak.service.url, 2.5))
    chaos["redis serving after"] = await asyncio.to_thread(server.crash_and_restart, down_s=2)
    ready_s = await ready
    chaos["redis web ready after"] = ready_s if ready_s is not None else float("nan")
    chaos["redis web ready"] = chaos["redis killed"] + (ready_s or 60)


async def watch_workers(soak: SoakState, service: Service) -> None:
    """A worker that exits by itself is a finding; it is started again, as a process manager would."""
    while not soak.stopping.is_set():
        for worker in list(service.workers):
            if worker.poll() is None or worker.pid == soak.killing:
                continue
            service.workers.remove(worker)
            soak.worker_exits.append(
                f"a worker (pid {worker.pid}) exited with code {worker.returncode} at {time.strftime('%H:%M:%S')}"
            )
            service.start_worker()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(soak.stopping.wait(), timeout=0.5)


def group_members(pgid: int) -> list[int]:
    """Live processes of the process group (the killed worker's page processes and their Tesseract)."""
    import psutil

    members = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                members.append(process.pid)
    return members


async def wait_ready_after(url: str, delay_s: float) -> float | None:
    """Seconds from now until /readyz answers 200 again, looked at from `delay_s` on (Redis is down by then)."""
    started = time.monotonic()
    await asyncio.sleep(delay_s)
    waited = await wait_http(url, "/readyz", 90)
    return None if waited is None else time.monotonic() - started
