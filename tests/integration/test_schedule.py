"""The fair scheduler's Lua (service/jobs/schedule.py) against a real redis-server: turns across tenants
and jobs, priorities, leases that lapse or are handed back, cancel, and nothing left once jobs end."""

from __future__ import annotations

import asyncio
from collections import Counter

from redis.asyncio import Redis

from service import keys
from service.jobs.record import ACTIVE, CANCELLED, COMPLETED, RUNNING, new_job, new_job_id
from service.jobs.schedule import LOW, NORMAL, TEXT_LAYER_BATCH, Claimed
from service.jobs.store import JobStore
from service.ocr import PageResult
from service.worker.page_store import store_page

LEASE_MS = 5000


async def scheduled(store: JobStore, tenant: str, pages: int, priority: str = NORMAL) -> str:
    job = new_job(new_job_id(), filename="a.pdf", options={"lang": "eng"}, pages_total=pages)
    meta = {"media_type": "application/pdf", "priority": priority}
    await store.create(job, tenant=tenant, meta=meta, document=b"%PDF-")
    await store.schedule.add(job["id"], tenant, priority, list(range(pages)))
    return job["id"]


async def claim_all(store: JobStore, limit: int = 1000) -> list[Claimed]:
    """Claim one page at a time, releasing each, as a one-slot worker would."""
    taken: list[Claimed] = []
    for _ in range(limit):
        claimed, _ = await store.schedule.claim(1, LEASE_MS)
        if not claimed:
            return taken
        taken += claimed
        await store.schedule.release(claimed[0].lease)
    return taken


async def scheduler_keys(redis: Redis) -> list[bytes]:
    return sorted([key async for key in redis.scan_iter(match="ocr:sched:*")])


async def test_tenants_take_turns_whatever_their_sizes_and_jobs_alternate_within_a_tenant(redis: Redis) -> None:
    store = JobStore(redis, ttl_s=60)
    big = await scheduled(store, "a", 20)
    first, _ = await store.schedule.claim(1, LEASE_MS)  # A's document is running
    assert [(c.job_id, c.index) for c in first] == [(big, 0)]
    small_b = await scheduled(store, "b", 1)
    small_a = await scheduled(store, "a", 1)
    c40 = await scheduled(store, "c", 6)
    order = [c.job_id for c in await claim_all(store)]
    # Those that start waiting join just ahead of the tenant served last (A); then tenants alternate, one
    # page each, and A's own small job comes at A's first turn.
    assert order[:5] == [small_b, c40, small_a, c40, big], order
    while_both = order[1 : 1 + 2 * 6]
    assert Counter(while_both)[c40] == 6 and 0.35 <= 6 / len(while_both) <= 0.65, order
    assert len(order) == 1 + 1 + 6 + 19 and Counter(order)[big] == 19, order


async def test_low_priority_pages_run_only_when_no_normal_page_waits(redis: Redis) -> None:
    store = JobStore(redis, ttl_s=60)
    bulk = await scheduled(store, "a", 5, LOW)
    first, _ = await store.schedule.claim(1, LEASE_MS)
    assert first[0].job_id == bulk
    urgent = await scheduled(store, "b", 2)
    order = [c.job_id for c in await claim_all(store)]
    assert order == [urgent, urgent, bulk, bulk, bulk, bulk], order


async def test_a_lapsed_lease_puts_the_page_back_first_in_its_jobs_turn_with_one_more_try(redis: Redis) -> None:
    store = JobStore(redis, ttl_s=60)
    job_id = await scheduled(store, "a", 3)
    claimed, lapse_at = await store.schedule.claim(2, 200)
    assert [c.index for c in claimed] == [0, 1] and all(c.tries == 1 for c in claimed)
    assert lapse_at is not None
    await store.schedule.release(claimed[0].lease)
    await asyncio.sleep(0.3)  # the worker holding page 1 died (after storing it): its lease lapses
    await store.write(job_id, ("HSET", keys.pages(job_id), 2, "{}"))
    again, _ = await store.schedule.claim(5, LEASE_MS)
    assert [(c.index, c.tries, c.stored) for c in again] == [(1, 2, True), (2, 1, False)]
    assert all(c.job_id == job_id for c in again)


async def test_a_handed_back_page_waits_again_at_once_and_renewal_reports_cancels(redis: Redis) -> None:
    store = JobStore(redis, ttl_s=60)
    job_id = await scheduled(store, "a", 2)
    claimed, _ = await store.schedule.claim(1, LEASE_MS)
    assert await store.schedule.renew([claimed[0].lease], LEASE_MS) == []
    await store.write(job_id, ("SET", keys.cancel(job_id), "1"))
    assert await store.schedule.renew([claimed[0].lease], LEASE_MS) == [job_id]
    assert await store.schedule.hand_back([claimed[0].lease]) == 1
    again, _ = await store.schedule.claim(2, LEASE_MS)
    assert [(c.index, c.tries) for c in again] == [(0, 2), (1, 1)]
    # The claim says what the worker would otherwise ask: the job was asked to stop.
    assert all(c.cancelled and not c.stored for c in again)


async def test_cancel_takes_waiting_pages_out_and_says_whether_one_is_in_work(redis: Redis) -> None:
    store = JobStore(redis, ttl_s=60)
    idle = await scheduled(store, "a", 3)
    assert await store.schedule.cancel(idle, "a", NORMAL) is False
    busy = await scheduled(store, "a", 3)
    claimed, _ = await store.schedule.claim(1, LEASE_MS)
    assert claimed[0].job_id == busy
    assert await store.schedule.cancel(busy, "a", NORMAL) is True
    assert (await store.schedule.claim(5, LEASE_MS))[0] == []
    await store.write(busy, ("SET", keys.cancel(busy), "1"))
    assert await store.schedule.release(claimed[0].lease) is True, "the worker is told to end the job"


async def test_a_jobs_end_takes_its_entries_out_and_nothing_is_left(redis: Redis) -> None:
    store = JobStore(redis, ttl_s=60)
    done = await scheduled(store, "a", 3)
    cancelled = await scheduled(store, "b", 4, LOW)
    waiting = await store.schedule.waiting()
    assert {(w.tenant, w.priority, w.pages) for w in waiting} == {("a", NORMAL, 3), ("b", LOW, 4)}
    claimed, _ = await store.schedule.claim(1, LEASE_MS)
    await store.change(done, "a", {"status": RUNNING}, allowed_from=list(ACTIVE))
    await store.change(cancelled, "b", {"status": CANCELLED}, allowed_from=list(ACTIVE))
    await store.change(done, "a", {"status": COMPLETED}, allowed_from=[RUNNING])
    assert await scheduler_keys(redis) == [keys.SCHED_LEASES.encode()]
    assert await store.schedule.waiting() == []
    # The lease of the ended job's running page is dropped when released, or when it lapses.
    await store.schedule.release(claimed[0].lease)
    assert await scheduler_keys(redis) == []


async def test_pages_of_an_ended_job_are_not_put_back_when_their_lease_lapses(redis: Redis) -> None:
    store = JobStore(redis, ttl_s=60)
    job_id = await scheduled(store, "a", 2)
    await store.schedule.claim(2, 100)
    await store.change(job_id, "a", {"status": CANCELLED}, allowed_from=list(ACTIVE))
    await asyncio.sleep(0.2)
    assert (await store.schedule.claim(2, LEASE_MS))[0] == []
    assert await scheduler_keys(redis) == []


async def test_recover_schedules_a_live_job_that_lost_its_entries_once(redis: Redis) -> None:
    store = JobStore(redis, ttl_s=60)
    job_id = await scheduled(store, "a", 3)
    assert await store.schedule.recover(job_id, "a", NORMAL, [0, 1, 2]) == 0, "it waits: not lost"
    await redis.delete(keys.sched_pages(job_id), keys.SCHED_SINCE, keys.sched_jobs(NORMAL, "a"))
    await redis.delete(keys.sched_tenants(NORMAL))
    assert await store.schedule.recover(job_id, "a", NORMAL, [1, 2]) == 2
    assert [c.index for c in await claim_all(store)] == [1, 2]


async def test_a_text_layer_job_is_claimed_in_units_and_a_unit_put_back_goes_one_page_at_a_time(
    redis: Redis,
) -> None:
    store = JobStore(redis, ttl_s=60)
    text = await scheduled(store, "a", 40)
    other = await scheduled(store, "b", 3)
    first, _ = await store.schedule.claim(1, LEASE_MS)
    assert [(c.job_id, c.index) for c in first] == [(text, 0)]
    # Its first page came out of its text layer: the page-store script marks the job for units.
    page = PageResult(number=1, text="x", source="text-layer", confidence=None, rotation=0, width=612, height=792)
    await store_page(redis, text, "a", page, max_document_bytes=10**6)
    await store.schedule.release(first[0].lease)

    claimed, _ = await store.schedule.claim(3, LEASE_MS)
    units = [[(c.job_id, c.index) for c in claimed if c.unit == unit] for unit in (1, 2, 3)]
    # A unit takes one turn: b's page, then TEXT_LAYER_BATCH pages of the text-layer job, then b again.
    assert units == [[(other, 0)], [(text, i) for i in range(1, TEXT_LAYER_BATCH + 1)], [(other, 1)]]
    assert await redis.zcard(keys.SCHED_LEASES) == TEXT_LAYER_BATCH + 2, "a lease for each page"

    # Page 6 of the unit needed OCR: it and those after it are put back unread, at the front of the job's
    # turn, without a try counted; the job's pages are then claimed one at a time.
    unit = [c for c in claimed if c.job_id == text]
    await store.schedule.release(*[c.lease for c in unit[:5]], put_back=[c.lease for c in unit[5:]])
    assert not await redis.hexists(keys.SCHED_BATCH, text)
    assert await redis.zcard(keys.SCHED_LEASES) == 2
    again = [c for c in await claim_all(store) if c.job_id == text]
    assert [c.index for c in again] == list(range(6, 40))
    assert all(c.tries == 1 for c in again), "pages put back unread count no try"
    await store.change(text, "a", {"status": CANCELLED}, allowed_from=list(ACTIVE))
    await store.change(other, "b", {"status": CANCELLED}, allowed_from=list(ACTIVE))
    for lease in (claimed[0].lease, claimed[-1].lease):
        await store.schedule.release(lease)
    assert await scheduler_keys(redis) == []
