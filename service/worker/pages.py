"""One claimed page: OCR it (or read its text layer), store it, and end the job when it was the last.

Pages come from the fair scheduler (service/jobs/schedule.py) one at a time, each under a lease
(service/worker/lease.py), and several workers share a document page by page. A page runs at least
once, so every effect here is idempotent: each page's result is a field of `ocr:pages:<id>`, a page
found already stored is not run again, and the page that finds every page stored finishes the job
(service/worker/finish.py).

A unit of several pages (a text-layer job's, service/jobs/schedule.py) is read in one turn of a page
process, stored in one script, counted in one progress change and released together. Its pages that
did not come out of their text layers (they need OCR, or failed) are put back unread, to be run one at
a time like any page, so that one slow or failing page never holds the others back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from arq import Retry
from redis.exceptions import RedisError

from service.errors import DocumentError, DocumentMissing, OcrCancelled, TransientOcrError
from service.jobs.record import QUEUED, RUNNING, TERMINAL, JobRef, utc_now
from service.jobs.schedule import Claimed
from service.ocr import CancelToken, PageOptions
from service.ops import metrics
from service.worker.finish import end_cancelled, end_failed, finish_if_complete
from service.worker.guard import count_attempt, fail_job, unexpected_failure
from service.worker.page_store import store_page, store_pages
from service.worker.state import WorkerState, retry_delay_s

logger = logging.getLogger(__name__)


async def run_claimed(state: WorkerState, unit: Sequence[Claimed]) -> None:
    """Run the unit's pages (one, or several of a text-layer job) and then give up their leases: released
    when done, handed back when the worker stops (SIGTERM: the task is cancelled), kept until the retry
    is due when a page failed transiently, put back unread when a unit's page was not read with it."""
    claimed = unit[0]
    job_id = claimed.job_id
    leases = [page.lease for page in unit]
    token = CancelToken()
    state.tokens.setdefault(job_id, set()).add(token)
    release = True
    put_back: list[str] = []
    try:
        try:
            if len(unit) == 1:
                await _run_page(state, claimed, token)
            else:
                put_back = [page.lease for page in await _run_unit(state, unit, token)]
        except Retry as retry:
            release = False
            await state.store.schedule.retry_after(claimed.lease, (retry.defer_score or 0) / 1000)
        except Exception as exc:  # noqa: BLE001 - the point: nothing may leave a job unended
            if len(unit) > 1:  # its pages run again one at a time, where a failure is counted as a page's
                logger.warning("pages %s put back after %s: %s", claimed.lease, type(exc).__name__, exc)
                put_back = leases
                return
            try:
                await unexpected_failure(state, job_id, f"page:{claimed.index}", exc, fail_job)
            except Retry as retry:
                release = False
                await state.store.schedule.retry_after(claimed.lease, (retry.defer_score or 0) / 1000)
    except asyncio.CancelledError:
        # The worker is stopping: kill Tesseract now, and the pages wait again at once for another worker.
        token.cancel()
        release = False
        await state.store.schedule.hand_back(leases)
        logger.info("page %s handed back (try %d)", ", ".join(leases), claimed.tries)
        raise
    finally:
        tokens = state.tokens.get(job_id)
        if tokens is not None:
            tokens.discard(token)
            if not tokens:
                del state.tokens[job_id]
        if release:
            # Should this fail, the leases lapse and the pages, found stored, only finish the job.
            with contextlib.suppress(RedisError, OSError):
                done = [lease for lease in leases if lease not in put_back]
                if await state.store.schedule.release(*done, put_back=put_back):
                    await _end_if_cancelled(state, job_id)


async def _end_if_cancelled(state: WorkerState, job_id: str) -> None:
    """A cancel that found this page in work left the job's end to this worker (service/jobs/control.py)."""
    ref = await state.store.get(job_id)
    if ref is not None and ref.job["status"] not in TERMINAL:
        await end_cancelled(state, ref)


async def _job_to_run(state: WorkerState, pages: Sequence[Claimed]) -> JobRef | None:
    """The job of the claimed `pages` while they are to run; None when it is gone or has ended, or was
    cancelled as they were claimed (then it is ended here)."""
    ref = await state.store.get(pages[0].job_id)
    if ref is None or ref.job["status"] in TERMINAL:
        return None
    if any(page.cancelled for page in pages):
        await end_cancelled(state, ref)
        return None
    return ref


async def _run_page(state: WorkerState, claimed: Claimed, token: CancelToken) -> str:
    job_id, index = claimed.job_id, claimed.index
    ref = await _job_to_run(state, [claimed])
    if ref is None:
        return "not-runnable"
    if claimed.stored:  # stored by a worker that died before it finished the job: only the finishing is left
        return await finish_if_complete(state, ref)
    if not await _mark_running(state, ref, claimed.tries):
        return "not-runnable"
    options = PageOptions(
        lang=ref.job["options"]["lang"],
        dpi=ref.job["options"]["dpi"],
        force_ocr=ref.job["options"]["force_ocr"],
        max_pixels=state.settings.max_page_pixels,
        timeout_s=state.settings.job_timeout_s,
    )
    try:
        async with state.document_file(job_id) as document:
            if document is None:
                return await end_failed(state, ref, DocumentMissing("The stored document has expired."))
            page, seconds = await state.pages.run_page(
                document, ref.meta["media_type"], index, options, token, deadline_s=state.settings.page_timeout_s
            )
        pages_done = await store_page(
            state.redis, job_id, ref.tenant, page, max_document_bytes=state.settings.max_document_text_bytes
        )
    except OcrCancelled:
        return await end_cancelled(state, ref)
    except DocumentError as exc:
        return await end_failed(state, ref, exc)
    except TransientOcrError as exc:
        return await _after_transient(state, ref, index, exc)
    await metrics.record_page(state.redis, page.source, seconds)
    # A line per page, named like its lease (`<job>:<index>`), so a log shows which worker ran which page.
    logger.info("page %s done: %s in %.2f s (try %d)", claimed.lease, page.source, seconds, claimed.tries)
    return await _count_done(state, ref, pages_done, page.source)


async def _run_unit(state: WorkerState, unit: Sequence[Claimed], token: CancelToken) -> Sequence[Claimed]:
    """Several pages of a text-layer job, read from their text layers in one turn of a page process; the
    pages left unread (from the first that needs OCR or failed), which the caller puts back."""
    job_id = unit[0].job_id
    ref = await _job_to_run(state, unit)
    if ref is None:
        return ()
    if not await _mark_running(state, ref, max(page.tries for page in unit)):
        return ()
    try:
        async with state.document_file(job_id) as document:
            if document is None:
                await end_failed(state, ref, DocumentMissing("The stored document has expired."))
                return ()
            packed, seconds = await state.pages.run_text_pages(
                document,
                ref.meta["media_type"],
                [page.index for page in unit],
                token,
                deadline_s=state.settings.page_timeout_s,
            )
        if len(packed) < len(unit):
            left = unit[len(packed)]
            logger.info(
                "page %s and %d after it put back: not read from a text layer", left.lease, len(unit) - len(packed) - 1
            )
        if not packed:
            return unit
        pages_done = await store_pages(
            state.redis, job_id, ref.tenant, packed, max_document_bytes=state.settings.max_document_text_bytes
        )
    except OcrCancelled:
        await end_cancelled(state, ref)
        return ()
    except DocumentError as exc:  # the document's text is over its cap
        await end_failed(state, ref, exc)
        return ()
    except TransientOcrError as exc:
        logger.warning("pages %s put back to run one at a time: %s", unit[0].lease, exc)
        return unit
    await metrics.record_page(state.redis, "text-layer", seconds / len(packed), pages=len(packed))
    logger.info("pages %s..%d done: text-layer in %.2f s", unit[0].lease, unit[len(packed) - 1].index, seconds)
    await _count_done(state, ref, pages_done, "text-layer")
    return unit[len(packed) :]


async def _count_done(state: WorkerState, ref: JobRef, pages_done: int, source: str) -> str:
    """The job's progress once `pages_done` of its pages are stored; its end when that is all of them."""
    total = ref.job["pages_total"]
    # Pages finish out of order when several run at once: the message counts them rather than naming
    # the one that just finished, so it reads in order.
    step = "OCR" if source == "ocr" else "Text layer of"
    await state.store.change(
        ref.job["id"],
        ref.tenant,
        {
            "pages_done": pages_done,
            # 100 is kept for `completed`: the result is not stored yet.
            "progress": min(99, pages_done * 100 // max(total, 1)),
            "message": f"{step} page {pages_done} of {total}",
        },
        allowed_from=[RUNNING],
    )
    if pages_done >= total:
        return await finish_if_complete(state, ref)
    return "page-done"


async def _mark_running(state: WorkerState, ref: JobRef, tries: int) -> bool:
    """The job is `running`, at the highest try any of its pages has reached; False when it can no
    longer run (it ended meanwhile). No change (and no event) when it already reads so."""
    attempt = max(int(ref.job.get("attempt") or 1), tries)
    if ref.job["status"] == RUNNING and attempt == ref.job.get("attempt"):
        return True
    # Several pages of a queued job may start at once: only the first moves it to `running` (one event).
    starting = ref.job["status"] == QUEUED and attempt == ref.job.get("attempt")
    running = await state.store.change(
        ref.job["id"],
        ref.tenant,
        {
            "status": RUNNING,
            "attempt": attempt,
            "message": "Starting" if attempt == 1 else f"Resuming (attempt {attempt})",
            "started_at": ref.job["started_at"] or utc_now(),
        },
        allowed_from=[QUEUED] if starting else [QUEUED, RUNNING],
    )
    if running is None:
        current = await state.store.get(ref.job["id"]) if starting else None
        return current is not None and current.job["status"] == RUNNING
    logger.info("job %s tenant=%s running, attempt %d", ref.job["id"], ref.tenant, attempt)
    return True


async def _after_transient(state: WorkerState, ref: JobRef, index: int, failure: TransientOcrError) -> str:
    """Retry the page with backoff (arq's Retry, turned into a delayed lease) until MAX_TRIES, then fail."""
    failures = await count_attempt(state, ref.job["id"], f"page:{index}")
    max_tries = state.settings.max_tries
    if failures >= max_tries:
        return await end_failed(state, ref, TransientOcrError(f"OCR kept failing after {failures} attempts: {failure}"))
    delay_s = retry_delay_s(state.settings, failures)
    await state.store.change(
        ref.job["id"],
        ref.tenant,
        {"message": f"Retrying in {delay_s:g} s after a transient error (attempt {failures} of {max_tries})"},
        allowed_from=[RUNNING],
    )
    logger.warning("job %s tenant=%s transient error, retry in %g s: %s", ref.job["id"], ref.tenant, delay_s, failure)
    raise Retry(defer=delay_s)
