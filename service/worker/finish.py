"""How a job ends: assembling its result exactly once, or failing or cancelling it.

The change that ends a job also starts the RESULT_TTL of all it stored and queues its webhook, in
one step (service/jobs/scripts.py), so nothing here follows an end up.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from service import keys
from service.errors import ServiceError
from service.jobs.record import ACTIVE, CANCELLED, COMPLETED, FAILED, RUNNING, JobRef, utc_now
from service.ops import metrics
from service.worker.state import WorkerState

logger = logging.getLogger(__name__)


async def finish_if_complete(state: WorkerState, ref: JobRef) -> str:
    job_id, tenant = ref.job["id"], ref.tenant
    total = ref.job["pages_total"]
    if await state.redis.hlen(keys.pages(job_id)) < total:  # type: ignore[misc]
        return "pages-left"
    refused = await _claim_assembly(state, job_id)
    if refused is not None:
        return refused
    result = await _assemble_result(state, ref)
    await state.store.write(job_id, ("SET", keys.result(job_id), json.dumps(result)))
    # The cache entry goes in before the completion is published: a client that resubmits the moment it
    # hears "completed" must hit. (A lookup only serves completed jobs, so an entry that is early is harmless.)
    if ref.meta.get("content_key"):
        await state.cache.remember(tenant, ref.meta["content_key"], job_id)
    # Counted before the completion is published, like the cache entry: a client that hears "completed"
    # and then reads /metrics finds the job in the histogram.
    await metrics.record_job_duration(state.redis, result["duration_ms"] / 1000)
    completed = await state.store.change(
        job_id,
        tenant,
        {"status": COMPLETED, "progress": 100, "pages_done": total, "message": "Completed", "finished_at": utc_now()},
        allowed_from=[RUNNING],
    )
    if completed is None:
        return "not-completed"
    logger.info("job %s tenant=%s completed: %d pages in %d ms", job_id, tenant, total, result["duration_ms"])
    return COMPLETED


async def _claim_assembly(state: WorkerState, job_id: str) -> str | None:
    """None when this worker is to assemble the result, else why not.

    Several pages may find the document complete at once; exactly one assembles it. The claim lapses
    like a lease: should its holder die mid-assembly, its page's lapsed lease brings the page back, and
    whoever claims it, finding it stored, finishes the job (or the cleanup cron does); the completion
    itself is guarded, so a result is never published twice.
    """
    claimed = await state.redis.set(keys.finalize(job_id), state.worker_id, nx=True, ex=state.settings.lease_s * 3)
    if claimed:
        return None
    current = await state.store.get(job_id)
    if current is not None and current.job["status"] == COMPLETED:
        return COMPLETED
    holder = await state.redis.get(keys.finalize(job_id))
    if holder is not None and holder.decode() != state.worker_id:
        return "finalizing-elsewhere"
    return None


async def _assemble_result(state: WorkerState, ref: JobRef) -> dict[str, Any]:
    """The result's own fields. Its text and pages stay in `ocr:pages:<id>`, served from there in page
    order (service/jobs/results.py): a large document is never joined into one value."""
    job_id = ref.job["id"]
    current = await state.store.get(job_id)
    started_at = (current.job["started_at"] if current else None) or utc_now()
    duration_ms = int((datetime.now().astimezone() - datetime.fromisoformat(started_at)).total_seconds() * 1000)
    return {
        "id": job_id,
        "pages_total": ref.job["pages_total"],
        "lang": ref.job["options"]["lang"],
        "duration_ms": max(duration_ms, 0),
    }


async def end_failed(state: WorkerState, ref: JobRef, error: ServiceError) -> str:
    """Fail the job with `error`'s code and message (a code of service/errors.py's tree)."""
    ended = await state.store.change(
        ref.job["id"],
        ref.tenant,
        {"status": FAILED, "message": "Failed", "error": error.to_dict(), "finished_at": utc_now()},
        allowed_from=list(ACTIVE),
    )
    if ended is not None:
        logger.info("job %s tenant=%s failed: %s", ref.job["id"], ref.tenant, error.code)
    return FAILED


async def end_cancelled(state: WorkerState, ref: JobRef) -> str:
    ended = await state.store.change(
        ref.job["id"],
        ref.tenant,
        {"status": CANCELLED, "message": "Cancelled", "finished_at": utc_now()},
        allowed_from=list(ACTIVE),
    )
    if ended is not None:
        # Its other running pages stop too: they see the flag through the cancel channel or their lease.
        logger.info("job %s tenant=%s cancelled while running", ref.job["id"], ref.tenant)
    return CANCELLED
