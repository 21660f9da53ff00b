"""What a client does to a job once it is submitted: wait for its end, cancel it, delete it."""

from __future__ import annotations

import asyncio
import logging

from arq.constants import default_queue_name, in_progress_key_prefix, job_key_prefix, retry_key_prefix

from service import keys
from service.jobs.cache import ContentCache
from service.jobs.events import EventHub
from service.jobs.record import ACTIVE, CANCELLED, TERMINAL, Job, JobRef, utc_now
from service.jobs.schedule import NORMAL
from service.jobs.store import JobStore
from service.jobs.units import download_arq_id

logger = logging.getLogger(__name__)


async def wait_for_end(hub: EventHub, store: JobStore, job_id: str, timeout_s: float) -> Job | None:
    """The job once it ends within `timeout_s`, else None. Waits on the job's own events, no polling."""
    with hub.job(job_id) as subscription:
        ref = await store.get(job_id)
        if ref is None:
            return None
        if ref.job["status"] in TERMINAL:
            return ref.job
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    event = await subscription.next()
                    if event is None:
                        return None
                    if event.terminal:
                        return event.job
        except TimeoutError:
            return None


async def cancel(store: JobStore, ref: JobRef) -> Job:
    """Stop a queued or running job. Its pages still waiting in the scheduler (and its download, in arq's
    queue) are taken out at once; pages in work are stopped by their workers (the cancel channel, and
    service/worker/lease.py), Tesseract processes included."""
    redis = store.redis
    job_id = ref.job["id"]
    # The flag lives as long as the job: a worker that claimed one of its pages just now still sees it.
    await store.write(job_id, ("SET", keys.cancel(job_id), "1"))
    await redis.publish(keys.CANCEL_CHANNEL, job_id)
    pages_in_work = await store.schedule.cancel(job_id, ref.tenant, ref.meta.get("priority", NORMAL))
    arq_id = download_arq_id(job_id)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.zrem(default_queue_name, arq_id)
        pipe.delete(job_key_prefix + arq_id, retry_key_prefix + arq_id)
        pipe.exists(in_progress_key_prefix + arq_id)
        downloading = bool((await pipe.execute())[2])
    if pages_in_work or downloading:
        logger.info("job %s tenant=%s cancel requested while running", job_id, ref.tenant)
    else:
        # Nothing is in work: no worker will end the job, so it ends here (and its webhook is queued by
        # that same change).
        cancelled = await store.change(
            job_id,
            ref.tenant,
            {"status": CANCELLED, "message": "Cancelled", "finished_at": utc_now()},
            allowed_from=list(ACTIVE),
        )
        if cancelled is not None:
            logger.info("job %s tenant=%s cancelled while %s", job_id, ref.tenant, ref.job["status"])
    current = await store.get(job_id)
    return current.job if current is not None else ref.job


async def delete(store: JobStore, cache: ContentCache, ref: JobRef) -> None:
    assert ref.job["status"] not in ACTIVE
    content = ref.meta.get("content_key")
    if content:
        await cache.forget_job(ref.tenant, content, ref.job["id"])
    await store.delete(ref.job["id"], ref.tenant)
    logger.info("job %s tenant=%s deleted", ref.job["id"], ref.tenant)
