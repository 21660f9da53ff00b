"""Page events: written by the page-store script with the page, once, resumed from the history."""

from __future__ import annotations

import asyncio
import json

from redis.asyncio import Redis

from service import keys
from service.jobs.backlog import read_job_backlog
from service.jobs.events import EventHub
from service.jobs.page_events import PAGE_FIELDS
from service.jobs.record import COMPLETED, RUNNING, new_job, new_job_id
from service.jobs.store import JOB_HISTORY_EVENTS, JobStore
from service.ocr import PageResult
from service.ocr.record import read_page
from service.worker.page_store import store_page

MAX_BYTES = 10**6


def page(number: int, text: str = "words <&> \"quoted\"\u00e9") -> PageResult:
    return PageResult(number=number, text=text, source="ocr", confidence=91.5, rotation=0, width=850, height=1100)


async def running_job(store: JobStore, pages_total: int = 3) -> str:
    job_id = new_job_id()
    job = new_job(job_id, filename="a", options={}, pages_total=pages_total)
    await store.create(job, tenant="acme", meta={}, document=None)
    await store.change(job_id, "acme", {"status": RUNNING})
    return job_id


async def test_a_page_is_published_once_with_the_next_id_and_not_to_the_feed(redis: Redis) -> None:
    hub = EventHub(redis)
    await hub.start()
    try:
        store = JobStore(redis, ttl_s=60)
        job_id = await running_job(store)
        with hub.job(job_id) as stream, hub.tenant("acme") as feed:
            assert await store_page(redis, job_id, "acme", page(2), max_document_bytes=MAX_BYTES) == 1
            # Stored again (its range retried after a worker died): stored, not announced again.
            assert await store_page(redis, job_id, "acme", page(2), max_document_bytes=MAX_BYTES) == 1
            await store.change(job_id, "acme", {"pages_done": 1})
            # (The hub may still deliver the job's earlier events, published before the streams joined.)
            heard = [await asyncio.wait_for(stream.next(), 5) for _ in range(2)]
            while heard[-1] is not None and heard[-1].name != "progress":
                heard.append(await asyncio.wait_for(stream.next(), 5))
            first, second = heard[-2:]
            assert first is not None and second is not None
            assert (first.seq, first.name, second.seq, second.name) == (3, "page", 4, "progress")
            assert first.job == {"id": job_id, "page": page(2).to_dict()}
            assert not first.terminal
            # The feed hears the changes of the job only.
            while (change := await asyncio.wait_for(feed.next(), 5)) is not None and change.name != "progress":
                assert change.name == "status"
            assert feed.pop() is None
        assert await redis.get(keys.seq(job_id)) == b"4"
    finally:
        await hub.stop()


async def test_the_history_keeps_a_reference_and_a_resume_reads_the_page_back(redis: Redis) -> None:
    store = JobStore(redis, ttl_s=60)
    job_id = await running_job(store)
    for number in (1, 3):
        await store_page(redis, job_id, "acme", page(number), max_document_bytes=MAX_BYTES)
    history = [json.loads(raw) for raw in await redis.lrange(keys.events(job_id), 0, -1)]  # type: ignore[misc]
    assert history[-2:] == [{"seq": 3, "event": "page", "page": 1}, {"seq": 4, "event": "page", "page": 3}]
    resumed, seq_now = await read_job_backlog(redis, job_id, 2)
    assert seq_now == 4
    assert [(seq, name) for seq, name, _ in resumed] == [(3, "page"), (4, "page")]
    # The page as stored (its record), less what else a page stores (its words).
    stored = read_page(await redis.hget(keys.pages(job_id), "3"))  # type: ignore[misc]
    assert resumed[1][2] == {"id": job_id, "page": stored.to_dict()}
    assert list(resumed[1][2]["page"]) == list(PAGE_FIELDS)
    # Resumed from beyond the kept history: the current state.
    await redis.ltrim(keys.events(job_id), -1, -1)  # type: ignore[misc]
    expired, _ = await read_job_backlog(redis, job_id, 1)
    assert [(seq, name, data["status"]) for seq, name, data in expired] == [(4, "status", RUNNING)]


async def test_no_event_once_the_job_ended_and_the_history_stays_bounded(redis: Redis) -> None:
    store = JobStore(redis, ttl_s=60)
    job_id = await running_job(store, pages_total=JOB_HISTORY_EVENTS + 10)
    for number in range(1, JOB_HISTORY_EVENTS + 11):
        await store_page(redis, job_id, "acme", page(number, "x" * 2000), max_document_bytes=10**8)
    assert await redis.llen(keys.events(job_id)) == JOB_HISTORY_EVENTS  # type: ignore[misc]
    # References, not copies of the text: the history is small whatever the pages hold.
    assert await redis.memory_usage(keys.events(job_id)) < 64 * JOB_HISTORY_EVENTS
    await store.change(job_id, "acme", {"status": COMPLETED})
    seq = await redis.get(keys.seq(job_id))
    await store_page(redis, job_id, "acme", page(JOB_HISTORY_EVENTS + 11), max_document_bytes=10**8)
    assert await redis.get(keys.seq(job_id)) == seq, "a late page of an ended job is not announced"
