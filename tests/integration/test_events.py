"""The event hub and the stream backlog against a real redis-server."""

from __future__ import annotations

import asyncio
import json

from redis.asyncio import Redis

from service.jobs.backlog import read_job_backlog
from service.jobs.events import EventHub
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


async def test_a_slow_stream_keeps_only_the_newest_progress_and_is_ended_past_its_bound(redis: Redis) -> None:
    from service import keys
    from service.jobs import events

    hub = EventHub(redis)
    await hub.start()
    try:
        store = JobStore(redis, ttl_s=60)
        job_id = new_job_id()
        slow = hub.job(job_id)
        probe = hub.job(job_id)
        await store.create(new_job(job_id, filename="a", options={}, pages_total=1), tenant="acme", meta={},
                           document=None)
        changes = events.SUBSCRIBER_QUEUE_EVENTS + 5
        for n in range(changes):
            await store.change(job_id, "acme", {"pages_done": n})
        async with asyncio.timeout(10):
            while (await probe.next()).seq < changes + 1:  # type: ignore[union-attr]
                pass
        # A client that read nothing meanwhile is owed the status it missed, the first progress events
        # (it was not behind yet) and then the newest progress only: its queue did not grow.
        queued = []
        while (event := slow.pop()) is not None:
            queued.append(event)
        assert len(queued) == events.COALESCE_AFTER_EVENTS
        assert (queued[0].seq, queued[0].name) == (1, "status")
        assert [e.seq for e in queued[1:-1]] == list(range(2, events.COALESCE_AFTER_EVENTS))
        assert (queued[-1].seq, queued[-1].name) == (changes + 1, "progress")
        assert queued[-1].job["pages_done"] == changes - 1
        assert not slow.finished
        # Events that cannot be coalesced (any other name: `page`) are never dropped: past the bound the
        # stream is ended instead, and its client resumes from Last-Event-ID.
        for n in range(events.SUBSCRIBER_QUEUE_EVENTS + 5):
            message = {"tenant": "acme", "id": job_id, "seq": changes + 2 + n, "event": "page", "page": {"number": n}}
            await redis.publish(keys.EVENTS_CHANNEL, json.dumps(message))
        received = []
        async with asyncio.timeout(10):
            while (event := await slow.next()) is not None:
                received.append(event)
        assert [e.job["page"]["number"] for e in received] == list(range(len(received)))
        assert received[0].job == {"id": job_id, "page": {"number": 0}}
        assert len(received) == events.SUBSCRIBER_QUEUE_EVENTS
        probe.close()
        assert hub.clients == 0
    finally:
        await hub.stop()
