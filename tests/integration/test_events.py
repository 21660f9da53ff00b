"""The event hub and the stream backlog against a real redis-server."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from service.jobs.events import EventHub, read_job_backlog
from service.jobs.record import RUNNING, new_job, new_job_id
from service.jobs.store import JobStore


async def test_one_subscription_fans_out_to_every_stream(redis: Redis) -> None:
    hub = EventHub(redis)
    await hub.start()
    try:
        store = JobStore(redis, ttl_s=60)
        job_id = new_job_id()
        subs = [hub.job(job_id) for _ in range(50)]
        feed = hub.tenant("acme")
        clients = await redis.client_list()
        await store.create(new_job(job_id, filename="a", options={}, pages_total=1), tenant="acme", meta={},
                           document=None)
        await store.change(job_id, "acme", {"status": RUNNING})
        for sub in [*subs, feed]:
            first = await asyncio.wait_for(sub.next(), 5)
            second = await asyncio.wait_for(sub.next(), 5)
            assert first is not None and second is not None
            assert (first.seq, second.seq) == (1, 2) and second.name == "status"
        assert len(await redis.client_list()) == len(clients), "no connection per stream"
        assert hub.clients == 51
        for sub in [*subs, feed]:
            sub.close()
        assert hub.clients == 0
    finally:
        await hub.stop()


async def test_backlog_replays_after_last_event_id_or_gives_the_current_state(redis: Redis) -> None:
    store = JobStore(redis, ttl_s=60)
    job_id = new_job_id()
    await store.create(new_job(job_id, filename="a", options={}, pages_total=3), tenant="acme", meta={}, document=None)
    for done in (1, 2, 3):
        await store.change(job_id, "acme", {"status": RUNNING, "pages_done": done})
    current, seq_now = await read_job_backlog(redis, job_id, None)
    assert seq_now == 4 and [(s, e) for s, e, _ in current] == [(4, "status")]
    assert current[0][2]["pages_done"] == 3
    after_two, _ = await read_job_backlog(redis, job_id, 2)
    assert [s for s, _, _ in after_two] == [3, 4]
    up_to_date, _ = await read_job_backlog(redis, job_id, 4)
    assert up_to_date == []
    missing, _ = await read_job_backlog(redis, "f" * 32, None)
    assert missing == []


async def test_a_stream_that_cannot_keep_up_is_ended_not_buffered(redis: Redis) -> None:
    from service.jobs import events

    hub = EventHub(redis)
    await hub.start()
    try:
        store = JobStore(redis, ttl_s=60)
        job_id = new_job_id()
        slow = hub.job(job_id)
        await store.create(new_job(job_id, filename="a", options={}, pages_total=1), tenant="acme", meta={},
                           document=None)
        for n in range(events.SUBSCRIBER_QUEUE_EVENTS + 5):
            await store.change(job_id, "acme", {"pages_done": n})
        received = 0
        while True:
            event = await asyncio.wait_for(slow.next(), 5)
            if event is None:
                break
            received += 1
        assert received < events.SUBSCRIBER_QUEUE_EVENTS + 6
        assert hub.clients == 0
    finally:
        await hub.stop()
