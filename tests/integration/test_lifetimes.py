"""How long a job's keys live, the webhook queued by a job's end, the quota, and the cleanup cron's bounds,
against a real redis-server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from arq.connections import ArqRedis
from redis.asyncio import Redis

from service import keys
from service.connections import redis_client
from service.errors import TooManyJobs
from service.jobs.cache import ContentCache
from service.jobs.record import ACTIVE, CANCELLED, COMPLETED, FAILED, RUNNING, Job, new_job, new_job_id
from service.jobs.store import JobStore
from service.worker.cleanup import cleanup
from service.worker.state import WorkerState
from settings import Settings
from tests.conftest import RedisServer

TTL_S = 60
WEBHOOK_ARQ_PREFIX = "arq:job:"
DAY_MS = 24 * 3600 * 1000


async def create(store: JobStore, *, tenant: str = "acme", webhook: bool = False, pages: int = 4, **kw: object) -> Job:
    meta = {"media_type": "application/pdf"}
    if webhook:
        meta["webhook_url"] = "http://127.0.0.1:9/hook"
    job = new_job(new_job_id(), filename="a.pdf", options={"lang": "eng"}, pages_total=pages)
    return await store.create(job, tenant=tenant, meta=meta, document=b"%PDF-", **kw)  # type: ignore[arg-type]


async def ttls(redis: Redis, job_id: str) -> dict[str, int]:
    return {key: await redis.ttl(key) for key in keys.job_keys(job_id) if await redis.exists(key)}


async def test_nothing_of_a_live_job_expires_and_its_end_starts_the_ttl_of_all(redis: Redis) -> None:
    store = JobStore(redis, ttl_s=TTL_S)
    job = await create(store)
    job_id = job["id"]
    await store.change(job_id, "acme", {"status": RUNNING}, allowed_from=list(ACTIVE))
    # What a worker and the web write while the job runs.
    await store.write(job_id, ("HSET", keys.pages(job_id), 1, "{}"), ("HSET", keys.text_bytes(job_id), "total", 2))
    await store.write(job_id, ("ZADD", keys.sched_pages(job_id), 3, 3))
    await store.write(job_id, ("SET", keys.cancel(job_id), "1"))
    await store.write(job_id, ("HINCRBY", keys.attempts(job_id), "pages:0", 1))
    live = await ttls(redis, job_id)
    assert len(live) >= 10 and set(live.values()) == {-1}, live
    for key in (keys.tenant_active("acme"), keys.tenant_jobs("acme"), keys.feed("acme"), keys.feed_seq("acme")):
        assert await redis.ttl(key) == -1, key

    await store.change(job_id, "acme", {"status": CANCELLED}, allowed_from=list(ACTIVE))
    ended = await ttls(redis, job_id)
    # The pages of a cancelled split job expire with the rest (they used to stay for ever); its
    # pages waiting in the scheduler are gone at once.
    assert keys.pages(job_id) in ended and keys.sched_pages(job_id) not in ended
    assert all(0 < ttl <= TTL_S for ttl in ended.values()), ended
    assert await redis.exists(keys.tenant_active("acme")) == 0
    for key in (keys.tenant_jobs("acme"), keys.feed("acme"), keys.feed_seq("acme")):
        assert await redis.ttl(key) > 0, key


async def test_a_write_after_the_end_takes_the_jobs_remaining_lifetime(redis: Redis) -> None:
    store = JobStore(redis, ttl_s=TTL_S)
    job = await create(store)
    job_id = job["id"]
    await store.change(job_id, "acme", {"status": FAILED}, allowed_from=list(ACTIVE))
    # A page that finished after another failed the job.
    await store.write(job_id, ("HSET", keys.pages(job_id), 3, "{}"))
    assert 0 < await redis.pttl(keys.pages(job_id)) <= await redis.pttl(keys.job(job_id)) + 5
    # A later change (the webhook's outcome) does not extend the job's life.
    await redis.expire(keys.job(job_id), 30)
    await store.change(job_id, "acme", {"webhook": {"status": "delivered"}})
    assert 0 < await redis.ttl(keys.job(job_id)) <= 30
    await store.delete(job_id, "acme")
    await store.write(job_id, ("SET", keys.cancel(job_id), "1"))
    assert await redis.exists(keys.cancel(job_id)) == 0


async def test_a_tenant_with_a_live_job_keeps_its_indexes(redis: Redis) -> None:
    store = JobStore(redis, ttl_s=TTL_S)
    waiting = await create(store)
    done = await create(store)
    await store.change(done["id"], "acme", {"status": COMPLETED}, allowed_from=list(ACTIVE))
    await store.delete(done["id"], "acme")
    for key in (keys.tenant_active("acme"), keys.tenant_jobs("acme"), keys.feed("acme"), keys.feed_seq("acme")):
        assert await redis.ttl(key) == -1, key
    await store.change(waiting["id"], "acme", {"status": CANCELLED}, allowed_from=list(ACTIVE))
    assert 0 < await redis.ttl(keys.tenant_jobs("acme")) <= 2 * TTL_S


async def webhook_entries(redis: Redis, job_id: str) -> list[bytes]:
    return [m for m in await redis.zrange("arq:queue", 0, -1) if m == f"{job_id}:webhook".encode()]


async def test_the_change_that_ends_a_job_queues_its_webhook_once(redis: Redis) -> None:
    store = JobStore(redis, ttl_s=TTL_S)
    job = await create(store, webhook=True)
    job_id = job["id"]
    await store.change(job_id, "acme", {"status": RUNNING}, allowed_from=list(ACTIVE))
    assert await webhook_entries(redis, job_id) == []
    # Only the transition: a worker killed right after it has still queued the delivery.
    await store.change(job_id, "acme", {"status": COMPLETED}, allowed_from=[RUNNING])
    assert len(await webhook_entries(redis, job_id)) == 1
    payload = json.loads(await redis.get(f"{WEBHOOK_ARQ_PREFIX}{job_id}:webhook"))
    assert await redis.pttl(f"{WEBHOOK_ARQ_PREFIX}{job_id}:webhook") > DAY_MS
    assert payload["f"] == "deliver_webhook" and payload["a"] == [job_id]
    # The delivery carries the job as it ended and its URL: deleting the job does not take them away.
    ended = json.loads(await redis.get(f"ocr:job:{job_id}"))
    assert payload["k"] == {"ended": ended, "url": "http://127.0.0.1:9/hook"}
    assert ended["status"] == COMPLETED
    # Later changes of the ended job (the delivery's outcome) queue nothing more.
    await store.change(job_id, "acme", {"webhook": {"status": "retrying"}})
    await store.change(job_id, "acme", {"status": COMPLETED})
    assert len(await webhook_entries(redis, job_id)) == 1
    plain = await create(store)
    await store.change(plain["id"], "acme", {"status": CANCELLED}, allowed_from=list(ACTIVE))
    assert await webhook_entries(redis, plain["id"]) == []


async def test_the_quota_is_checked_in_the_same_step_as_the_creation(redis: Redis) -> None:
    store = JobStore(redis, ttl_s=TTL_S)
    outcomes = await asyncio.gather(
        *(create(store, tenant="burst", max_active=3) for _ in range(20)), return_exceptions=True
    )
    assert sum(isinstance(o, dict) for o in outcomes) == 3
    assert all(isinstance(o, TooManyJobs) for o in outcomes if not isinstance(o, dict))
    assert await redis.scard(keys.tenant_active("burst")) == 3
    # A refused creation left nothing behind.
    assert await redis.zcard(keys.tenant_jobs("burst")) == 3


@pytest.fixture
async def worker_state(redis_server: RedisServer, redis: Redis) -> AsyncIterator[WorkerState]:
    settings = Settings(redis_url=redis_server.url.rsplit("/", 1)[0] + "/1", max_tries=2, result_ttl_s=TTL_S)
    client: ArqRedis = redis_client(settings)
    store = JobStore(client, ttl_s=TTL_S)
    state = WorkerState(
        settings=settings, redis=client, store=store, cache=ContentCache(client, store),
        pages=None,  # type: ignore[arg-type]  # the cron runs no pages
        worker_id="test", scratch=Path("/nonexistent"),
    )  # fmt: skip
    yield state
    await client.aclose()  # and its pool's connections (test_connections.py)


async def drop_queue(redis: Redis) -> None:
    """What a Redis restart without persistence leaves of waiting work: nothing."""
    await redis.delete("arq:queue", *[k async for k in redis.scan_iter(match="arq:job:*")])
    await redis.delete(*[k async for k in redis.scan_iter(match="ocr:sched:*")])


async def test_the_cron_fails_a_job_it_cannot_handle_and_still_serves_the_others(worker_state: WorkerState) -> None:
    store = worker_state.store
    damaged = await create(store, tenant="a")
    await store.write(damaged["id"], ("HSET", keys.pages(damaged["id"]), "garbage", "{}"))
    lost = await create(store, tenant="b")
    for _ in range(worker_state.settings.max_tries):
        await cleanup({"state": worker_state})
        # The lost job of the other tenant was put back each time, however the damaged one fared.
        assert await worker_state.redis.zcard(keys.sched_pages(lost["id"])) == 4
        await drop_queue(worker_state.redis)
    ref = await store.get(damaged["id"])
    assert ref is not None and ref.job["status"] == FAILED and ref.job["error"]["code"] == "unit_failed"


async def test_a_unit_the_cron_keeps_re_queueing_fails_after_max_tries(worker_state: WorkerState) -> None:
    store = worker_state.store
    job = await create(store)
    # The job's waiting pages are lost (a Redis restart without persistence): the cron finds it lost,
    # again and again.
    for _ in range(worker_state.settings.max_tries):
        await cleanup({"state": worker_state})
        assert await worker_state.redis.zcard(keys.sched_pages(job["id"])) == 4
        # Waiting pages never expire while the job lives, however long they wait.
        assert await worker_state.redis.pttl(keys.sched_pages(job["id"])) == -1
        await drop_queue(worker_state.redis)
    await cleanup({"state": worker_state})
    ref = await store.get(job["id"])
    assert ref is not None and ref.job["status"] == FAILED and ref.job["error"]["code"] == "unit_failed"
