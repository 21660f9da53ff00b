"""The cleanup cron: prune index entries of expired jobs, and put back active jobs that lost their
waiting pages or queue entries (a Redis restart without persistence), so that nothing stays stuck."""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from arq import Retry
from arq.constants import default_queue_name, in_progress_key_prefix

from service import keys
from service.errors import UnitFailed
from service.jobs.record import TERMINAL, JobRef
from service.jobs.schedule import NORMAL
from service.jobs.units import FETCH_DOCUMENT, UNIT_EXPIRES_MS, download_arq_id, job_page_indices
from service.worker.finish import end_failed, finish_if_complete
from service.worker.guard import count_attempt, fail_job, unexpected_failure
from service.worker.state import WorkerState

logger = logging.getLogger(__name__)


async def cleanup(ctx: dict[str, Any]) -> None:
    """Cron: prune index entries whose jobs expired, and re-queue active jobs that lost their queue entry
    (their arq job expired or was dropped), so nothing stays stuck."""
    state: WorkerState = ctx["state"]
    redis = state.redis
    await redis.zremrangebyscore(keys.WORKERS, "-inf", time.time() - 300)
    async for index_key in redis.scan_iter(match=keys.tenant_jobs("*"), count=200):
        members = [m.decode() for m in await redis.zrange(index_key, 0, -1)]
        for chunk_start in range(0, len(members), 500):
            chunk = members[chunk_start : chunk_start + 500]
            exists = await redis.mget([keys.job(m) for m in chunk])
            gone = [m for m, raw in zip(chunk, exists, strict=True) if raw is None]
            if gone:
                await redis.zrem(index_key, *gone)
    async for active_key in redis.scan_iter(match=keys.tenant_active("*"), count=200):
        for member in [m.decode() for m in await redis.smembers(active_key)]:  # type: ignore[misc]
            await _check_active(state, active_key.decode(), member)


async def _check_active(state: WorkerState, active_key: str, job_id: str) -> None:
    """One job of a tenant's active set; whatever goes wrong with it, the others are still checked, and
    after MAX_TRIES failures here the job fails rather than stay stuck."""
    try:
        ref = await state.store.get(job_id)
        if ref is None or ref.job["status"] in TERMINAL:
            await state.redis.srem(active_key, job_id)  # type: ignore[misc]
        else:
            await _requeue_if_lost(state, ref)
    except Exception as exc:  # noqa: BLE001 - a damaged job must not stop the cron for every other one
        with contextlib.suppress(Retry):  # the cron's next run is its retry
            await unexpected_failure(state, job_id, "cleanup", exc, fail_job)


async def _requeue_if_lost(state: WorkerState, ref: JobRef) -> None:
    job_id = ref.job["id"]
    total = ref.job["pages_total"]
    if total is None:  # a URL submission whose download is the unit to look for
        await _requeue_download_if_lost(state, ref)
        return
    stored = {int(n) for n in await state.redis.hkeys(keys.pages(job_id))}  # type: ignore[misc]
    missing = [index for index in job_page_indices(ref.meta, total) if index + 1 not in stored]
    if not missing:
        # Every page stored, and the worker that stored the last one died before it finished the job.
        if not await state.redis.exists(keys.finalize(job_id)):
            logger.warning("job %s tenant=%s has every page but no result; finishing it", job_id, ref.tenant)
            await finish_if_complete(state, ref)
        return
    priority = ref.meta.get("priority", NORMAL)
    if not await state.store.schedule.recover(job_id, ref.tenant, priority, missing):
        return  # pages of it wait or run: not lost
    # Counted like a failure: what bounds a job that keeps losing its entries.
    requeued = await count_attempt(state, job_id, "requeued")
    if requeued > state.settings.max_tries:
        await end_failed(state, ref, UnitFailed(f"The job lost its place in the queue {requeued} times."))
        return
    logger.warning("job %s tenant=%s lost its waiting pages; %d scheduled again", job_id, ref.tenant, len(missing))


async def _requeue_download_if_lost(state: WorkerState, ref: JobRef) -> None:
    job_id = ref.job["id"]
    arq_id = download_arq_id(job_id)
    async with state.redis.pipeline(transaction=False) as pipe:
        pipe.zscore(default_queue_name, arq_id)
        pipe.exists(in_progress_key_prefix + arq_id)
        answers = await pipe.execute()
    if any(answers):
        return
    # arq starts its try count again for a re-queued unit: this count is what bounds a unit that arq
    # keeps giving up on (its own max_tries) or that keeps losing its entry.
    requeued = await count_attempt(state, job_id, "requeued")
    if requeued > state.settings.max_tries:
        await end_failed(state, ref, UnitFailed(f"The job lost its place in the queue {requeued} times."))
        return
    logger.warning("job %s tenant=%s lost its queue entries; re-queueing", job_id, ref.tenant)
    await state.redis.enqueue_job(
        FETCH_DOCUMENT, job_id, _job_id=download_arq_id(job_id), _expires=UNIT_EXPIRES_MS / 1000
    )
