"""Submitting a document: the quota, the cache, storing the job and queueing its units. It never OCRs."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from arq.connections import ArqRedis

from service import keys, netguard
from service.errors import BadRequest, IdempotencyConflict, ServiceUnavailable
from service.jobs.cache import ContentCache, content_key
from service.jobs.documents import check_document
from service.jobs.record import FAILED, QUEUED, Job, new_job, new_job_id, utc_now
from service.jobs.store import AlreadySubmitted, JobStore, too_many_jobs
from service.jobs.units import FETCH_DOCUMENT, UNIT_EXPIRES_MS, download_arq_id, job_page_indices, nothing_selected
from settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Submission:
    """What a client sent, already parsed and validated by the web (service/api/uploads.py)."""

    document: bytes | None  # None when the worker is to download `source_url`
    filename: str
    options: dict[str, Any]  # lang, dpi, force_ocr, priority, pages (when given): what the job object shows
    webhook_url: str | None
    source_url: str | None
    idempotency_key: str | None = None  # the client's Idempotency-Key header


@dataclass(frozen=True)
class Submitted:
    job: Job
    cached: bool = False  # a new job completed at once from the cache
    replayed: bool = False  # the earlier job of the same Idempotency-Key, in its current state


async def submit(
    settings: Settings, store: JobStore, cache: ContentCache, tenant: str, submission: Submission
) -> Submitted:
    """Store and enqueue a document, or find the job an earlier submission with the same
    Idempotency-Key made (IdempotencyConflict when that submission was another document or options)."""
    meta: dict[str, str] = {}
    if submission.idempotency_key is not None:
        meta["idempotency_key"] = keys.idempotency(tenant, submission.idempotency_key)
        meta["idempotency"] = fingerprint(submission)
    # The earlier job may end and expire between the key's read and the job's: then the key is free again.
    for _ in range(3):
        try:
            job, cached = await _submit(settings, store, cache, tenant, submission, dict(meta))
            return Submitted(job, cached=cached)
        except AlreadySubmitted as earlier:
            if earlier.fingerprint != meta["idempotency"]:
                raise IdempotencyConflict(
                    f"This Idempotency-Key was used for job {earlier.job_id}, submitted with another document "
                    "or other options; use a new key for a new submission."
                ) from None
            ref = await store.get(earlier.job_id)
            if ref is not None and ref.tenant == tenant:
                logger.info("job %s tenant=%s submitted again with its Idempotency-Key", earlier.job_id, tenant)
                return Submitted(ref.job, replayed=True)
    raise ServiceUnavailable("The submission could not be matched with its Idempotency-Key; retry.", retry_after_s=1)


def fingerprint(submission: Submission) -> str:
    """What makes two submissions the same one: the document (or its URL) and every option."""
    digest = hashlib.sha256(
        json.dumps(
            [submission.options, submission.webhook_url, submission.source_url], sort_keys=True, separators=(",", ":")
        ).encode()
    )
    digest.update(submission.document or b"")
    return digest.hexdigest()


async def _submit(
    settings: Settings, store: JobStore, cache: ContentCache, tenant: str, submission: Submission, meta: dict[str, str]
) -> tuple[Job, bool]:
    """Store and enqueue a document; returns the job and whether it came from the cache."""
    if "idempotency_key" in meta:
        # Found before the document is checked or the cache asked (taken for good in the create's script).
        earlier = await store.redis.get(meta["idempotency_key"])
        if earlier is not None:
            raise AlreadySubmitted(earlier)
    # A quick refusal before the document is checked; the quota itself is held by `store.create`,
    # which checks it and adds the job in one step, so a burst of submissions cannot all slip under it.
    if await store.active_count(tenant) >= settings.max_active_jobs:
        raise too_many_jobs(settings.max_active_jobs)
    meta["priority"] = submission.options["priority"]
    # Refuse internal addresses now, with a 400 the client sees; the worker checks again when it connects.
    for url in (submission.webhook_url, submission.source_url):
        if url is not None:
            await netguard.resolve(url, allow_private=settings.allow_private_networks)
    if submission.webhook_url:
        meta["webhook_url"] = submission.webhook_url
    if "pages" in submission.options:
        meta["pages"] = submission.options["pages"]
    if submission.document is None:
        return await _submit_url(store, tenant, submission, meta, settings.max_active_jobs), False

    document = submission.document
    checked = await check_document(document, max_pages=settings.max_pages, max_pixels=settings.max_page_pixels)
    meta["document_pages"] = str(checked.pages_total)
    indices = job_page_indices(meta, checked.pages_total)
    pages_total = len(indices)
    if pages_total == 0:
        raise BadRequest(nothing_selected(meta["pages"], checked.pages_total))
    key = content_key(document, submission.options)
    meta |= {"media_type": checked.media_type, "content_key": key, "size": str(len(document))}
    source_id = await cache.lookup(tenant, key)
    if source_id is not None:
        cached = await cache.serve_hit(source_id, tenant=tenant, filename=submission.filename, meta=meta)
        if cached is not None:
            logger.info("job %s tenant=%s completed from cache of %s", cached["id"], tenant, source_id)
            return cached, True

    job = new_job(new_job_id(), filename=submission.filename, options=submission.options, pages_total=pages_total)
    job = await store.create(job, tenant=tenant, meta=meta, document=document, max_active=settings.max_active_jobs)
    await _enqueue_or_fail(store, job, tenant, lambda: store.schedule.add(job["id"], tenant, meta["priority"], indices))
    logger.info("job %s tenant=%s queued: %d pages, %d bytes", job["id"], tenant, pages_total, len(document))
    return job, False


async def _submit_url(
    store: JobStore, tenant: str, submission: Submission, meta: dict[str, str], max_active: int
) -> Job:
    assert submission.source_url is not None
    job = new_job(new_job_id(), filename=submission.filename, options=submission.options, pages_total=None)
    job["message"] = "Queued for download"
    meta["source_url"] = submission.source_url
    job = await store.create(job, tenant=tenant, meta=meta, document=None, max_active=max_active)
    redis = store.redis
    assert isinstance(redis, ArqRedis)
    await _enqueue_or_fail(
        store,
        job,
        tenant,
        lambda: redis.enqueue_job(
            FETCH_DOCUMENT, job["id"], _job_id=download_arq_id(job["id"]), _expires=UNIT_EXPIRES_MS / 1000
        ),
    )
    logger.info("job %s tenant=%s queued for download", job["id"], tenant)
    return job


async def _enqueue_or_fail(store: JobStore, job: Job, tenant: str, enqueue: Callable[[], Awaitable[object]]) -> None:
    """Queue the job's work (its pages in the scheduler, or its download in arq)."""
    try:
        await enqueue()
    except Exception:
        # A job that is recorded but not queued would wait forever: fail it where clients can see it.
        await store.change(
            job["id"],
            tenant,
            {
                "status": FAILED,
                "message": "Could not be queued",
                "error": {"code": ServiceUnavailable.code, "message": "The job could not be queued."},
                "finished_at": utc_now(),
            },
            allowed_from=[QUEUED],
        )
        raise
