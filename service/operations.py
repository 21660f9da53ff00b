"""What the web process does to jobs: submit, wait for, cancel and delete them. It never OCRs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from arq.connections import ArqRedis
from arq.constants import default_queue_name, in_progress_key_prefix, job_key_prefix, retry_key_prefix

from service import keys, netguard
from service.cache import ContentCache, content_key
from service.errors import TooManyJobs, TooManyPages, UnsupportedMediaType
from service.events import EventHub
from service.jobs import (
    ACTIVE,
    CANCELLED,
    FAILED,
    QUEUED,
    TERMINAL,
    Job,
    JobRef,
    JobStore,
    new_job,
    new_job_id,
    utc_now,
)
from service.ocr import count_pages, sniff_media_type
from service.uploads import Submission
from settings import Settings

logger = logging.getLogger(__name__)

OCR_FUNCTION = "ocr_pages"
FETCH_FUNCTION = "fetch_document"


@dataclass(frozen=True)
class Services:
    settings: Settings
    redis: ArqRedis
    store: JobStore
    cache: ContentCache
    hub: EventHub
    installed_langs: frozenset[str]


def page_ranges(pages_total: int, split_pages: int) -> list[tuple[int, int]]:
    """0-based [first, last) ranges of at most `split_pages` pages, each run as its own arq job."""
    return [(first, min(first + split_pages, pages_total)) for first in range(0, pages_total, split_pages)]


def encode_ranges(ranges: list[tuple[int, int]]) -> str:
    """How a job's ranges are kept in its meta hash: `0-40,40-80,...`."""
    return ",".join(f"{first}-{last}" for first, last in ranges)


def stored_ranges(meta: dict[str, str]) -> list[tuple[int, int]]:
    """The ranges a job was split into, read back from its meta hash (none before a download finished)."""
    return [(int(first), int(last)) for first, last in (r.split("-") for r in meta.get("ranges", "").split(",") if r)]


def arq_job_id(job_id: str, first: int) -> str:
    return f"{job_id}:{first}"


async def submit(services: Services, tenant: str, submission: Submission) -> tuple[Job, bool]:
    """Store and enqueue a document; returns the job and whether it came from the cache."""
    settings = services.settings
    if await services.store.active_count(tenant) >= settings.max_active_jobs:
        raise TooManyJobs(
            f"This tenant already has {settings.max_active_jobs} queued or running jobs; retry when some finish.",
            retry_after_s=5,
        )
    meta: dict[str, str] = {}
    # Refuse internal addresses now, with a 400 the client sees; the worker checks again when it connects.
    for url in (submission.webhook_url, submission.source_url):
        if url is not None:
            await netguard.resolve(url, allow_private=settings.allow_private_networks)
    if submission.webhook_url:
        meta["webhook_url"] = submission.webhook_url
    if submission.document is None:
        return await _submit_url(services, tenant, submission, meta), False

    document = submission.document
    media_type = sniff_media_type(document[:1024])
    if media_type is None:
        raise UnsupportedMediaType("The document is not a PDF, PNG, JPEG or TIFF (judged from its bytes).")
    # Opening a large PDF takes a while: keep the event loop free for other requests.
    pages_total = await asyncio.to_thread(count_pages, document, media_type)
    if pages_total > settings.max_pages:
        raise TooManyPages(f"The document has {pages_total} pages; the limit is {settings.max_pages}.")

    key = content_key(document, submission.options)
    meta |= {"media_type": media_type, "content_key": key, "size": str(len(document))}
    source_id = await services.cache.lookup(tenant, key)
    if source_id is not None:
        cached = await services.cache.serve_hit(source_id, tenant=tenant, filename=submission.filename, meta=meta)
        if cached is not None:
            logger.info("job %s tenant=%s completed from cache of %s", cached["id"], tenant, source_id)
            return cached, True

    job = new_job(new_job_id(), filename=submission.filename, options=submission.options, pages_total=pages_total)
    ranges = page_ranges(pages_total, settings.split_pages)
    meta["ranges"] = encode_ranges(ranges)
    job = await services.store.create(job, tenant=tenant, meta=meta, document=document)
    await _enqueue(services, job, tenant, ranges)
    logger.info("job %s tenant=%s queued: %d pages, %d bytes", job["id"], tenant, pages_total, len(document))
    return job, False


async def _submit_url(services: Services, tenant: str, submission: Submission, meta: dict[str, str]) -> Job:
    assert submission.source_url is not None
    job = new_job(new_job_id(), filename=submission.filename, options=submission.options, pages_total=None)
    job["message"] = "Queued for download"
    meta["source_url"] = submission.source_url
    job = await services.store.create(job, tenant=tenant, meta=meta, document=None)
    await _enqueue_or_fail(services, job, tenant, [(FETCH_FUNCTION, (job["id"],), job["id"])])
    logger.info("job %s tenant=%s queued for download", job["id"], tenant)
    return job


async def _enqueue(services: Services, job: Job, tenant: str, ranges: list[tuple[int, int]]) -> None:
    calls = [(OCR_FUNCTION, (job["id"], first, last), arq_job_id(job["id"], first)) for first, last in ranges]
    await _enqueue_or_fail(services, job, tenant, calls)


async def _enqueue_or_fail(
    services: Services, job: Job, tenant: str, calls: Sequence[tuple[str, tuple[object, ...], str]]
) -> None:
    try:
        for function, args, arq_id in calls:
            await services.redis.enqueue_job(function, *args, _job_id=arq_id)
    except Exception:
        # A job that is recorded but not queued would wait forever: fail it where clients can see it.
        await services.store.change(
            job["id"],
            tenant,
            {
                "status": FAILED,
                "message": "Could not be queued",
                "error": {"code": "service_unavailable", "message": "The job could not be queued."},
                "finished_at": utc_now(),
            },
            allowed_from=[QUEUED],
        )
        raise


async def wait_for_end(services: Services, job_id: str, timeout_s: float) -> Job | None:
    """The job once it ends within `timeout_s`, else None. Waits on the job's own events, no polling."""
    with services.hub.job(job_id) as subscription:
        ref = await services.store.get(job_id)
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


async def cancel(services: Services, ref: JobRef) -> Job:
    """Stop a queued or running job. Its units still waiting in arq's queue are taken out at once; units
    in work are stopped by their workers (service/worker_jobs.py), Tesseract processes included."""
    redis = services.redis
    job_id = ref.job["id"]
    await redis.set(keys.cancel(job_id), b"1", ex=services.settings.result_ttl_s)
    await redis.publish(keys.CANCEL_CHANNEL, job_id)
    arq_ids = [arq_job_id(job_id, first) for first, _ in stored_ranges(ref.meta)]
    arq_ids.append(job_id)  # the download job of a URL submission
    async with redis.pipeline(transaction=True) as pipe:
        pipe.zrem(default_queue_name, *arq_ids)
        pipe.delete(*(job_key_prefix + a for a in arq_ids), *(retry_key_prefix + a for a in arq_ids))
        for arq_id in arq_ids:
            pipe.exists(in_progress_key_prefix + arq_id)
        in_progress = any((await pipe.execute())[2:])
    if in_progress:
        logger.info("job %s tenant=%s cancel requested while running", job_id, ref.tenant)
    else:
        # Nothing is in work: no worker will end the job, so it ends here.
        cancelled = await services.store.change(
            job_id,
            ref.tenant,
            {"status": CANCELLED, "message": "Cancelled", "finished_at": utc_now()},
            allowed_from=list(ACTIVE),
        )
        if cancelled is not None:
            logger.info("job %s tenant=%s cancelled while %s", job_id, ref.tenant, ref.job["status"])
    current = await services.store.get(job_id)
    return current.job if current is not None else ref.job


async def delete(services: Services, ref: JobRef) -> None:
    assert ref.job["status"] not in ACTIVE
    content = ref.meta.get("content_key")
    if content:
        await services.cache.forget_job(ref.tenant, content, ref.job["id"])
    await services.store.delete(ref.job["id"], ref.tenant)
    logger.info("job %s tenant=%s deleted", ref.job["id"], ref.tenant)
