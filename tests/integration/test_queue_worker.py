"""The worker's arq subclass against a real redis-server: it starts jobs as arq does, without re-checking
its own running jobs on every poll."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from arq import create_pool, func
from arq.connections import RedisSettings
from redis.asyncio import Redis

from service.worker.queue_worker import Worker
from tests.conftest import RedisServer, running_redis


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    # Its own server: the test counts every WATCH the server sees.
    with running_redis() as server:
        yield server


async def watch_calls(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_watch", {}).get("calls", 0))


async def test_running_jobs_are_not_rechecked_and_a_free_slot_still_takes_work(own_redis: RedisServer) -> None:
    started: dict[str, asyncio.Event] = {"long": asyncio.Event(), "short": asyncio.Event()}
    release = asyncio.Event()

    async def long(ctx: dict[str, Any]) -> None:
        started["long"].set()
        await release.wait()

    async def short(ctx: dict[str, Any]) -> None:
        started["short"].set()

    settings = RedisSettings.from_dsn(own_redis.url)
    worker = Worker(
        functions=[func(long, name="long"), func(short, name="short")],  # type: ignore[list-item]
        redis_settings=settings,
        max_jobs=2,
        poll_delay=0.01,
        handle_signals=False,
        burst=True,  # ends by itself once the queue is empty
    )
    pool = await create_pool(settings)
    redis = Redis.from_url(own_redis.url)
    running = asyncio.create_task(worker.main())
    try:
        await pool.enqueue_job("long")
        async with asyncio.timeout(10):
            await started["long"].wait()
        before = await watch_calls(redis)
        await asyncio.sleep(0.5)  # about fifty polls, each of which returns the running job's id
        assert await watch_calls(redis) - before == 0
        await pool.enqueue_job("short")
        async with asyncio.timeout(10):
            await started["short"].wait()
        release.set()
        async with asyncio.timeout(10):
            await running
    finally:
        release.set()
        if not running.done():
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
        await worker.close()
        await pool.aclose()
        await redis.aclose()


async def queue_reads(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_zrangebyscore", {}).get("calls", 0))


async def test_an_idle_worker_polls_its_queue_less_and_still_takes_a_new_unit(own_redis: RedisServer) -> None:
    ran = asyncio.Event()

    async def quick(ctx: dict[str, Any]) -> None:
        ran.set()

    settings = RedisSettings.from_dsn(own_redis.url)
    worker = Worker(
        functions=[func(quick, name="quick")],  # type: ignore[list-item]
        redis_settings=settings,
        max_jobs=2,
        poll_delay=0.01,
        idle_poll_s=0.25,
        handle_signals=False,
    )
    pool = await create_pool(settings)
    redis = Redis.from_url(own_redis.url)
    running = asyncio.create_task(worker.main())
    try:
        await asyncio.sleep(1.0)  # long enough to slow down to idle_poll_s
        before = await queue_reads(redis)
        await asyncio.sleep(2.0)
        polls = await queue_reads(redis) - before
        # About eight at the idle pace; at poll_delay alone it would be up to two hundred.
        assert 1 <= polls <= 12, polls
        assert worker.poll_interval_s == 0.25
        await pool.enqueue_job("quick")
        async with asyncio.timeout(5):
            await ran.wait()
        # The poll that found it went back to the quick pace.
        assert worker.poll_interval_s < 0.25
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await worker.close()
        await pool.aclose()
        await redis.aclose()
