"""The arq job `ocr_pages`: OCR a range of a document's pages, storing each page as it is done.

A document is one or more page ranges, each its own arq job, so several workers can share a large
document. arq runs a job at least once, so every effect here is idempotent: each page's result is a
field of `ocr:pages:<id>`, and a retried range skips the pages already there, so a page appears
exactly once in the result however often its range ran. The range that finds every page done
finishes the job (service/worker/finish.py).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from arq import Retry

from service import keys
from service.errors import DocumentError, DocumentMissing, OcrCancelled, TransientOcrError
from service.jobs.record import QUEUED, RUNNING, TERMINAL, JobRef, utc_now
from service.jobs.units import job_page_indices
from service.ocr import CancelToken, PageOptions
from service.ops import metrics
from service.worker.finish import end_cancelled, end_failed, finish_if_complete
from service.worker.guard import ends_its_job
from service.worker.lease import lease
from service.worker.page_store import store_page
from service.worker.state import WorkerState, retry_delay_s

logger = logging.getLogger(__name__)


@ends_its_job("pages")
async def ocr_pages(ctx: dict[str, Any], job_id: str, first: int, last: int) -> str:
    """OCR the job's pages at positions [first, last) of the pages it reads (`job_page_indices`: all of
    the document's, or its `pages=` selection); the range that completes the document assembles its result."""
    state: WorkerState = ctx["state"]
    job_try: int = ctx["job_try"]
    ref = await state.store.get(job_id)
    if ref is None:
        logger.info("job %s is gone (deleted or expired); nothing to do", job_id)
        return "gone"
    if ref.job["status"] in TERMINAL:
        return str(ref.job["status"])
    token = CancelToken()
    state.tokens.setdefault(job_id, set()).add(token)
    try:
        async with lease(state, ctx["job_id"], job_id, token):
            return await _run_range(state, ref, first, last, job_try, token)
    except asyncio.CancelledError:
        # The worker is shutting down (SIGTERM) or arq gave up on the range: kill Tesseract now, keep
        # the pages already done, and let arq hand the range to the next worker.
        token.cancel()
        logger.info("job %s tenant=%s pages %d-%d handed back (attempt %d)", job_id, ref.tenant, first, last, job_try)
        raise
    finally:
        tokens = state.tokens.get(job_id)
        if tokens is not None:
            tokens.discard(token)
            if not tokens:
                del state.tokens[job_id]


async def _run_range(state: WorkerState, ref: JobRef, first: int, last: int, job_try: int, token: CancelToken) -> str:
    job_id = ref.job["id"]
    if await state.redis.exists(keys.cancel(job_id)):
        return await end_cancelled(state, ref)
    if not await _mark_running(state, ref, first, last, job_try):
        return "not-runnable"
    document = await state.redis.get(keys.document(job_id))
    if document is None:
        return await end_failed(state, ref, DocumentMissing("The stored document has expired."))
    options = PageOptions(
        lang=ref.job["options"]["lang"],
        dpi=ref.job["options"]["dpi"],
        force_ocr=ref.job["options"]["force_ocr"],
        max_pixels=state.settings.max_page_pixels,
        timeout_s=state.settings.job_timeout_s,
    )
    done = {int(n) for n in await state.redis.hkeys(keys.pages(job_id))}  # type: ignore[misc]
    selected = job_page_indices(ref.meta, ref.job["pages_total"])[first:last]
    todo = [index for index in selected if index + 1 not in done]
    with state.document_file(job_id, document) as document_path:
        failure = await _run_pages(state, ref, document_path, todo, options, token)
    if failure is not None:
        return await _after_failure(state, ref, failure, job_try)
    await state.store.write(job_id, ("SADD", keys.ranges(job_id), f"{first}-{last}"))
    return await finish_if_complete(state, ref)


async def _mark_running(state: WorkerState, ref: JobRef, first: int, last: int, job_try: int) -> bool:
    """Move the job to `running` for this attempt; False when it can no longer run (it ended meanwhile)."""
    attempt = max(int(ref.job.get("attempt") or 1), job_try)
    running = await state.store.change(
        ref.job["id"],
        ref.tenant,
        {
            "status": RUNNING,
            "attempt": attempt,
            "message": "Starting" if attempt == 1 else f"Resuming (attempt {attempt})",
            "started_at": ref.job["started_at"] or utc_now(),
        },
        allowed_from=[QUEUED, RUNNING],
    )
    if running is None:
        return False
    if running["status"] != ref.job["status"] or attempt != ref.job.get("attempt"):
        logger.info("job %s tenant=%s running pages %d-%d, attempt %d", ref.job["id"], ref.tenant, first, last, attempt)
    return True


async def _after_failure(state: WorkerState, ref: JobRef, failure: Exception, job_try: int) -> str:
    """End the job for a cancel or a document error; retry a transient error (arq's Retry) until MAX_TRIES."""
    if isinstance(failure, OcrCancelled):
        return await end_cancelled(state, ref)
    if isinstance(failure, DocumentError):
        return await end_failed(state, ref, failure)
    max_tries = state.settings.max_tries
    if job_try >= max_tries:
        return await end_failed(state, ref, TransientOcrError(f"OCR kept failing after {job_try} attempts: {failure}"))
    delay_s = retry_delay_s(state.settings, job_try)
    await state.store.change(
        ref.job["id"],
        ref.tenant,
        {"message": f"Retrying in {delay_s:g} s after a transient error (attempt {job_try} of {max_tries})"},
        allowed_from=[RUNNING],
    )
    logger.warning("job %s tenant=%s transient error, retry in %g s: %s", ref.job["id"], ref.tenant, delay_s, failure)
    raise Retry(defer=delay_s)


async def _run_pages(
    state: WorkerState, ref: JobRef, document: Path, todo: list[int], options: PageOptions, token: CancelToken
) -> Exception | None:
    """Run the pages concurrently; the first expected failure, or None when every page is stored."""
    try:
        async with asyncio.TaskGroup() as group:
            for index in todo:
                group.create_task(_one_page(state, ref, document, index, options, token))
    except ExceptionGroup as errors:
        # One page decides the range's fate: stop the others' processes now rather than let them finish.
        token.cancel()
        for kind in (OcrCancelled, DocumentError, TransientOcrError):
            matched = errors.subgroup(kind)
            if matched is not None:
                return _first_leaf(matched)
        raise
    return None


def _first_leaf(group: BaseExceptionGroup[Exception]) -> Exception:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


async def _one_page(
    state: WorkerState, ref: JobRef, document: Path, index: int, options: PageOptions, token: CancelToken
) -> None:
    job_id, tenant = ref.job["id"], ref.tenant
    total = ref.job["pages_total"]
    page, seconds = await state.pages.run_page(
        document, ref.meta["media_type"], index, options, token, deadline_s=state.settings.page_timeout_s
    )
    pages_done = await store_page(
        state.redis,
        job_id,
        tenant,
        page,
        max_document_bytes=state.settings.max_document_text_bytes,
    )
    await metrics.record_page(state.redis, page.source, seconds)
    # Pages finish out of order when several run at once: the message counts them rather than naming
    # the one that just finished, so it reads in order.
    step = "OCR" if page.source == "ocr" else "Text layer of"
    await state.store.change(
        job_id,
        tenant,
        {
            "pages_done": pages_done,
            # 100 is kept for `completed`: the result is not stored yet.
            "progress": min(99, pages_done * 100 // max(total, 1)),
            "message": f"{step} page {pages_done} of {total}",
        },
        allowed_from=[RUNNING],
    )
