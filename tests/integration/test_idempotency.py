"""An Idempotency-Key lives exactly as long as its job: taken in the create's step, expired by its end."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from service import keys
from service.jobs.record import COMPLETED, new_job, new_job_id
from service.jobs.store import AlreadySubmitted, JobStore


async def test_the_key_is_taken_once_kept_while_the_job_lives_and_ends_with_it(redis: Redis) -> None:
    store = JobStore(redis, ttl_s=60)
    name = keys.idempotency("acme", "k-1")
    meta = {"idempotency_key": name, "idempotency": "f1"}
    first = new_job_id()
    await store.create(new_job(first, filename="a", options={}, pages_total=1), tenant="acme", meta=meta, document=None)
    assert await redis.get(name) == f"{first} f1".encode() and await redis.ttl(name) == -1
    with pytest.raises(AlreadySubmitted) as taken:
        second = new_job(new_job_id(), filename="a", options={}, pages_total=1)
        await store.create(second, tenant="acme", meta=meta | {"idempotency": "f2"}, document=None, max_active=0)
    assert (taken.value.job_id, taken.value.fingerprint) == (first, "f1")
    assert await redis.exists(keys.job(second["id"])) == 0, "nothing of the second job was stored"
    await store.change(first, "acme", {"status": COMPLETED})
    assert 0 < await redis.ttl(name) <= 60
    await store.delete(first, "acme")
    assert await redis.exists(name) == 0


async def test_a_refused_create_does_not_take_the_key(redis: Redis) -> None:
    store = JobStore(redis, ttl_s=60)
    name = keys.idempotency("acme", "k-2")
    job = new_job(new_job_id(), filename="a", options={}, pages_total=1)
    with pytest.raises(Exception, match="queued or running"):
        await store.create(
            job, tenant="acme", meta={"idempotency_key": name, "idempotency": "f"}, document=None, max_active=0
        )
    assert await redis.exists(name) == 0
