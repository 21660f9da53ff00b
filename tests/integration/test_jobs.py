"""The job store's change script against a real redis-server."""

from __future__ import annotations

import asyncio
import json

from redis.asyncio import Redis

from service import keys
from service.jobs.record import CANCELLED, COMPLETED, QUEUED, RUNNING, new_job, new_job_id
from service.jobs.store import JobStore


async def make(redis: Redis, tenant: str = "acme") -> tuple[JobStore, dict]:
    store = JobStore(redis, ttl_s=60)
    job = await store.create(new_job(new_job_id(), filename="a.pdf", options={"lang": "eng"}, pages_total=4),
                             tenant=tenant, meta={"media_type": "application/pdf"}, document=b"%PDF-")
    return store, job


async def test_create_records_publishes_and_indexes(redis: Redis) -> None:
    pubsub = redis.pubsub()
    await pubsub.subscribe(keys.EVENTS_CHANNEL)
    store, job = await make(redis)
    message = None
    for _ in range(50):
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if message:
            break
    await pubsub.aclose()
    assert message is not None
    published = json.loads(message["data"])
    assert published["id"] == job["id"] and published["tenant"] == "acme" and published["seq"] == 1
    assert published["event"] == "status" and published["job"]["status"] == QUEUED
    assert await redis.sismember(keys.tenant_active("acme"), job["id"])
    assert await redis.zscore(keys.tenant_jobs("acme"), job["id"]) is not None
    # A live job never expires; RESULT_TTL starts at its end (tests/integration/test_lifetimes.py).
    assert await redis.ttl(keys.job(job["id"])) == -1


async def test_transitions_are_guarded(redis: Redis) -> None:
    store, job = await make(redis)
    assert await store.change(job["id"], "acme", {"status": COMPLETED}, allowed_from=[RUNNING]) is None
    running = await store.change(job["id"], "acme", {"status": RUNNING}, allowed_from=[QUEUED])
    assert running is not None and running["status"] == RUNNING
    cancelled = await store.change(job["id"], "acme", {"status": CANCELLED}, allowed_from=[QUEUED, RUNNING])
    assert cancelled is not None
    assert not await redis.sismember(keys.tenant_active("acme"), job["id"])
    assert await store.change(job["id"], "acme", {"status": RUNNING}, allowed_from=[QUEUED]) is None
    assert await store.change("0" * 32, "acme", {"progress": 5}) is None


async def test_progress_never_goes_backwards_even_from_concurrent_writers(redis: Redis) -> None:
    store, job = await make(redis)
    await store.change(job["id"], "acme", {"status": RUNNING})
    await asyncio.gather(*(store.change(job["id"], "acme", {"progress": p, "pages_done": p}) for p in (30, 10, 50, 20)))
    ref = await store.get(job["id"])
    assert ref is not None and ref.job["progress"] == 50 and ref.job["pages_done"] == 50
    history = [json.loads(raw) for raw in await redis.lrange(keys.events(job["id"]), 0, -1)]
    seqs = [entry["seq"] for entry in history]
    assert seqs == list(range(1, len(history) + 1))
    progress = [entry["job"]["progress"] for entry in history]
    assert progress == sorted(progress)


async def test_another_tenant_cannot_read_a_job(redis: Redis) -> None:
    store, job = await make(redis, tenant="acme")
    assert (await store.get_for_tenant(job["id"], "acme")).job["id"] == job["id"]
    for tenant in ("globex", "acm", "acme "):
        try:
            await store.get_for_tenant(job["id"], tenant)
        except Exception as exc:  # noqa: BLE001 - the type is asserted below
            assert exc.__class__.__name__ == "NotFound"
        else:
            raise AssertionError("another tenant read the job")


async def test_delete_removes_every_key_and_tells_the_feed(redis: Redis) -> None:
    store, job = await make(redis)
    await store.delete(job["id"], "acme")
    assert [k async for k in redis.scan_iter(match=f"*{job['id']}*")] == []
    last = json.loads((await redis.lrange(keys.feed("acme"), -1, -1))[0])
    assert last["event"] == "deleted" and last["job"] == {"id": job["id"]}


async def test_a_paginated_walk_lists_jobs_of_the_same_millisecond_each_once(redis: Redis) -> None:
    store = JobStore(redis, ttl_s=60)
    ids = []
    for _ in range(23):
        job = await store.create(new_job(new_job_id(), filename="a.pdf", options={}, pages_total=1),
                                 tenant="burst", meta={"media_type": "application/pdf"}, document=None)
        ids.append(job["id"])
    # Twenty of them created in one millisecond (as a burst of uploads is), three before and after it.
    scores = {job_id: 1_700_000_000_000 for job_id in ids[3:20]} | {
        job_id: 1_700_000_000_000 + n - 10 for n, job_id in enumerate(ids) if job_id not in ids[3:20]
    }
    await redis.zadd(keys.tenant_jobs("burst"), scores)
    seen: list[str] = []
    cursor = None
    for _ in range(30):
        page, cursor = await store.list_for_tenant("burst", status=None, limit=4, cursor=cursor)
        seen += [job["id"] for job in page]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))
    newest_first = sorted(ids, key=lambda job_id: (scores[job_id], job_id), reverse=True)
    assert seen == newest_first
