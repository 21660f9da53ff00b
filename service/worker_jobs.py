"""The arq job functions: OCR a range of a document's pages, and the worker's housekeeping.

A document is one or more page ranges, each its own arq job (`ocr_pages`), so several workers can
share a large document. arq runs a job at least once, so every effect here is idempotent:

- each page's result is a field of `ocr:pages:<id>`; a retried range skips the pages already there,
  so a page appears exactly once in the result however often its range ran;
- whichever range finds every page done claims `ocr:finalize:<id>` (SET NX) and assembles the result,
  exactly once;
- the worker renews arq's in-progress key as a short lease (`LEASE_SECONDS`) instead of letting it
  live for the job's whole timeout, so a worker killed with SIGKILL hands its range to the next worker
  within seconds, not minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import socket
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from arq import Retry
from arq.connections import ArqRedis
from arq.constants import default_queue_name, in_progress_key_prefix
from redis.exceptions import RedisError

from service import keys, metrics
from service.cache import ContentCache
from service.connections import redis_client
from service.errors import DocumentError, OcrCancelled, TransientOcrError
from service.jobs import ACTIVE, CANCELLED, COMPLETED, FAILED, QUEUED, RUNNING, TERMINAL, JobRef, JobStore, utc_now
from service.ocr import CancelToken, PageOptions
from service.operations import arq_job_id, stored_ranges
from service.page_pool import PagePool
from settings import Settings, get_settings

logger = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_S = 10


@dataclass
class WorkerState:
    """What one worker process shares between its jobs (kept in arq's ctx)."""

    settings: Settings
    redis: ArqRedis
    store: JobStore
    cache: ContentCache
    pages: PagePool
    worker_id: str
    scratch: Path  # documents as files, for the page processes to read
    tokens: dict[str, set[CancelToken]] = field(default_factory=dict)
    documents: dict[str, tuple[Path, int]] = field(default_factory=dict)  # job id -> (file, ranges using it)
    background: list[asyncio.Task[None]] = field(default_factory=list)

    def cancel_local(self, job_id: str) -> None:
        for token in list(self.tokens.get(job_id, ())):
            token.cancel()

    @contextlib.contextmanager
    def document_file(self, job_id: str, document: bytes) -> Any:
        """The document as a local file while any of this worker's ranges of it run."""
        path, users = self.documents.get(job_id, (self.scratch / job_id, 0))
        if users == 0:
            path.write_bytes(document)
        self.documents[job_id] = (path, users + 1)
        try:
            yield path
        finally:
            path, users = self.documents[job_id]
            if users == 1:
                del self.documents[job_id]
                path.unlink(missing_ok=True)
            else:
                self.documents[job_id] = (path, users - 1)


def retry_delay_s(settings: Settings, job_try: int) -> float:
    """Exponential backoff: RETRY_DELAY_SECONDS, then twice that, four times ..."""
    return float(settings.retry_delay_s * 2 ** max(0, job_try - 1))


async def startup(ctx: dict[str, Any]) -> None:
    settings = get_settings()
    # Tesseract starts one OpenMP thread per core by default; with pages already running in parallel
    # that oversubscribes the CPU (a 300-dpi page went from 1.9 s to 12 s on 2 cores).
    os.environ["OMP_THREAD_LIMIT"] = "1"
    redis = redis_client(settings, ride_out_outages=True)
    store = JobStore(redis, ttl_s=settings.result_ttl_s)
    pages = PagePool(settings.ocr_concurrency, memory_bytes=settings.page_memory_mb * 1024 * 1024)
    await pages.start()
    state = WorkerState(
        settings=settings,
        redis=redis,
        store=store,
        cache=ContentCache(redis, store),
        pages=pages,
        worker_id=f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}",
        scratch=Path(tempfile.mkdtemp(prefix="ocr-worker-")),
    )
    state.background = [
        asyncio.create_task(_heartbeat(state), name="heartbeat"),
        asyncio.create_task(_listen_for_cancels(state), name="cancel-listener"),
    ]
    ctx["state"] = state
    logger.info("worker %s started: %d OCR slots", state.worker_id, settings.ocr_concurrency)


async def shutdown(ctx: dict[str, Any]) -> None:
    state: WorkerState | None = ctx.get("state")
    if state is None:
        return
    for task in state.background:
        task.cancel()
    await asyncio.gather(*state.background, return_exceptions=True)
    with contextlib.suppress(RedisError, OSError):
        await state.redis.zrem(keys.WORKERS, state.worker_id)
    await state.pages.close()
    shutil.rmtree(state.scratch, ignore_errors=True)
    await state.redis.aclose()
    logger.info("worker %s stopped", state.worker_id)


async def _heartbeat(state: WorkerState) -> None:
    while True:
        with contextlib.suppress(RedisError, OSError):
            await state.redis.zadd(keys.WORKERS, {state.worker_id: time.time()})
        await asyncio.sleep(HEARTBEAT_INTERVAL_S)


async def _listen_for_cancels(state: WorkerState) -> None:
    """Stop local page work the moment a client cancels its job (see operations.cancel)."""
    listener = redis_client(state.settings, socket_timeout_s=None)
    try:
        while True:
            pubsub = listener.pubsub()
            try:
                await pubsub.subscribe(keys.CANCEL_CHANNEL)
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
                    if message is None:
                        await pubsub.ping()
                    elif message["type"] == "message":
                        state.cancel_local(message["data"].decode())
            except (RedisError, OSError):
                await asyncio.sleep(1)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
    finally:
        await listener.aclose()


@contextlib.asynccontextmanager
async def lease(state: WorkerState, arq_id: str, job_id: str, token: CancelToken) -> Any:
    """Hold arq's in-progress key on a short lease while the range runs, and notice cancel flags
    set while this worker's cancel subscription was down."""
    key = in_progress_key_prefix + arq_id
    lease_ms = state.settings.lease_s * 1000

    async def renew() -> None:
        while True:
            with contextlib.suppress(RedisError, OSError):
                await state.redis.pexpire(key, lease_ms)
                if await state.redis.exists(keys.cancel(job_id)):
                    token.cancel()
            await asyncio.sleep(state.settings.lease_s / 4)

    renewer = asyncio.create_task(renew(), name=f"lease-{arq_id}")
    try:
        yield
    finally:
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer


async def ocr_pages(ctx: dict[str, Any], job_id: str, first: int, last: int) -> str:
    """OCR pages [first, last) of a job; the range that completes the document assembles its result."""
    state: WorkerState = ctx["state"]
    job_try: int = ctx["job_try"]
    ref = await state.store.get(job_id)
    if ref is None:
        logger.info("job %s is gone (deleted or expired); nothing to do", job_id)
        return "gone"
    if ref.job["status"] in TERMINAL:
        return ref.job["status"]
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


async def _run_range(
    state: WorkerState, ref: JobRef, first: int, last: int, job_try: int, token: CancelToken
) -> str:
    job_id, tenant, store = ref.job["id"], ref.tenant, state.store
    if await state.redis.exists(keys.cancel(job_id)):
        return await _end_cancelled(state, ref)
    attempt = max(int(ref.job.get("attempt") or 1), job_try)
    running = await store.change(
        job_id,
        tenant,
        {
            "status": RUNNING,
            "attempt": attempt,
            "message": "Starting" if attempt == 1 else f"Resuming (attempt {attempt})",
            "started_at": ref.job["started_at"] or utc_now(),
        },
        allowed_from=[QUEUED, RUNNING],
    )
    if running is None:
        return "not-runnable"
    if running["status"] != ref.job["status"] or attempt != ref.job.get("attempt"):
        logger.info("job %s tenant=%s running pages %d-%d, attempt %d", job_id, tenant, first, last, attempt)

    document = await state.redis.get(keys.document(job_id))
    if document is None:
        return await _end_failed(state, ref, "document_missing", "The stored document has expired.")
    options = PageOptions(
        lang=ref.job["options"]["lang"],
        dpi=ref.job["options"]["dpi"],
        force_ocr=ref.job["options"]["force_ocr"],
        max_pixels=state.settings.max_page_pixels,
        timeout_s=state.settings.job_timeout_s,
    )
    done = {int(n) for n in await state.redis.hkeys(keys.pages(job_id))}
    todo = [index for index in range(first, last) if index + 1 not in done]
    with state.document_file(job_id, document) as document_path:
        failure = await _run_pages(state, ref, document_path, todo, options, token)
    if isinstance(failure, OcrCancelled):
        return await _end_cancelled(state, ref)
    if isinstance(failure, DocumentError):
        return await _end_failed(state, ref, failure.code, failure.message)
    if isinstance(failure, TransientOcrError):
        max_tries = state.settings.max_tries
        if job_try >= max_tries:
            return await _end_failed(state, ref, "ocr_failed", f"OCR kept failing after {job_try} attempts: {failure}")
        delay_s = retry_delay_s(state.settings, job_try)
        await store.change(
            job_id,
            tenant,
            {"message": f"Retrying in {delay_s:g} s after a transient error (attempt {job_try} of {max_tries})"},
            allowed_from=[RUNNING],
        )
        logger.warning("job %s tenant=%s transient error, retry in %g s: %s", job_id, tenant, delay_s, failure)
        raise Retry(defer=delay_s)

    await state.redis.sadd(keys.ranges(job_id), f"{first}-{last}")
    return await _finish_if_complete(state, ref)


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
    async with state.redis.pipeline(transaction=True) as pipe:
        pipe.hset(keys.pages(job_id), str(page.number), json.dumps(page.to_dict()))
        pipe.expire(keys.pages(job_id), state.settings.result_ttl_s)
        if page.text_pdf is not None:
            pipe.hset(keys.layers(job_id), str(page.number), page.text_pdf)
            pipe.expire(keys.layers(job_id), state.settings.result_ttl_s)
        pipe.hlen(keys.pages(job_id))
        *_, pages_done = await pipe.execute()
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


async def _finish_if_complete(state: WorkerState, ref: JobRef) -> str:
    job_id, tenant = ref.job["id"], ref.tenant
    total = ref.job["pages_total"]
    if await state.redis.hlen(keys.pages(job_id)) < total:
        return "range-done"
    # Several ranges may find the document complete at once; exactly one assembles it. The claim lapses
    # like a lease: should its holder die mid-assembly, the cleanup cron's re-queued range takes over
    # (and the completion itself is guarded, so a result is never published twice).
    claimed = await state.redis.set(
        keys.finalize(job_id), state.worker_id, nx=True, ex=state.settings.lease_s * 3
    )
    if not claimed:
        current = await state.store.get(job_id)
        if current is not None and current.job["status"] == COMPLETED:
            return COMPLETED
        holder = await state.redis.get(keys.finalize(job_id))
        if holder is not None and holder.decode() != state.worker_id:
            return "finalizing-elsewhere"
    raw_pages = await state.redis.hgetall(keys.pages(job_id))
    pages = sorted((json.loads(raw) for raw in raw_pages.values()), key=lambda p: p["number"])
    current = await state.store.get(job_id)
    started_at = (current.job["started_at"] if current else None) or utc_now()
    duration_ms = int((datetime.now().astimezone() - datetime.fromisoformat(started_at)).total_seconds() * 1000)
    result = {
        "id": job_id,
        "text": "\f".join(p["text"] for p in pages),
        "pages": pages,
        "pages_total": total,
        "lang": ref.job["options"]["lang"],
        "duration_ms": max(duration_ms, 0),
    }
    ttl_s = state.settings.result_ttl_s
    await state.redis.set(keys.result(job_id), json.dumps(result), ex=ttl_s)
    # The cache entry goes in before the completion is published: a client that resubmits the moment it
    # hears "completed" must hit. (A lookup only serves completed jobs, so an entry that is early is harmless.)
    if ref.meta.get("content_key"):
        await state.cache.remember(tenant, ref.meta["content_key"], job_id)
    completed = await state.store.change(
        job_id,
        tenant,
        {"status": COMPLETED, "progress": 100, "pages_done": total, "message": "Completed", "finished_at": utc_now()},
        allowed_from=[RUNNING],
    )
    if completed is None:
        return "not-completed"
    # Everything the job stored now lives RESULT_TTL from its end.
    async with state.redis.pipeline(transaction=False) as pipe:
        for key in keys.job_keys(job_id):
            pipe.expire(key, ttl_s)
        await pipe.execute()
    await metrics.record_job_duration(state.redis, duration_ms / 1000)
    await _after_end(state, ref)
    logger.info("job %s tenant=%s completed: %d pages in %d ms", job_id, tenant, total, duration_ms)
    return COMPLETED


async def _end_failed(state: WorkerState, ref: JobRef, code: str, message: str) -> str:
    ended = await state.store.change(
        ref.job["id"],
        ref.tenant,
        {"status": FAILED, "message": "Failed", "error": {"code": code, "message": message}, "finished_at": utc_now()},
        allowed_from=list(ACTIVE),
    )
    if ended is not None:
        logger.info("job %s tenant=%s failed: %s", ref.job["id"], ref.tenant, code)
        await _after_end(state, ref)
    return FAILED


async def _end_cancelled(state: WorkerState, ref: JobRef) -> str:
    ended = await state.store.change(
        ref.job["id"],
        ref.tenant,
        {"status": CANCELLED, "message": "Cancelled", "finished_at": utc_now()},
        allowed_from=list(ACTIVE),
    )
    if ended is not None:
        logger.info("job %s tenant=%s cancelled while running", ref.job["id"], ref.tenant)
        # Other ranges of the document stop too: they see the flag through their lease.
        await _after_end(state, ref)
    return CANCELLED


async def _after_end(state: WorkerState, ref: JobRef) -> None:
    """Side effects of a job's end that run once: the webhook."""
    if ref.meta.get("webhook_url"):
        await state.redis.enqueue_job("deliver_webhook", ref.job["id"], _job_id=f"{ref.job['id']}:webhook")


async def cleanup(ctx: dict[str, Any]) -> None:
    """Cron: prune index entries whose jobs expired, and re-queue active jobs that lost their queue entry
    (their arq job expired or was dropped), so nothing stays stuck."""
    state: WorkerState = ctx["state"]
    redis = state.redis
    await redis.zremrangebyscore(keys.WORKERS, "-inf", time.time() - 300)
    async for index_key in redis.scan_iter(match="ocr:tenant-jobs:*", count=200):
        members = [m.decode() for m in await redis.zrange(index_key, 0, -1)]
        for chunk_start in range(0, len(members), 500):
            chunk = members[chunk_start : chunk_start + 500]
            exists = await redis.mget([keys.job(m) for m in chunk])
            gone = [m for m, raw in zip(chunk, exists, strict=True) if raw is None]
            if gone:
                await redis.zrem(index_key, *gone)
    async for active_key in redis.scan_iter(match="ocr:tenant-active:*", count=200):
        for member in [m.decode() for m in await redis.smembers(active_key)]:
            ref = await state.store.get(member)
            if ref is None or ref.job["status"] in TERMINAL:
                await redis.srem(active_key, member)
            else:
                await _requeue_if_lost(state, ref)


async def _requeue_if_lost(state: WorkerState, ref: JobRef) -> None:
    job_id = ref.job["id"]
    ranges = stored_ranges(ref.meta)
    # No ranges yet: a URL submission whose download job is the one to look for.
    arq_ids = [arq_job_id(job_id, first) for first, _ in ranges] or [job_id]
    async with state.redis.pipeline(transaction=False) as pipe:
        for arq_id in arq_ids:
            pipe.zscore(default_queue_name, arq_id)
            pipe.exists(in_progress_key_prefix + arq_id)
        answers = await pipe.execute()
    if any(answers):
        return
    logger.warning("job %s tenant=%s lost its queue entries; re-queueing", job_id, ref.tenant)
    if not ranges:
        await state.redis.enqueue_job("fetch_document", job_id, _job_id=job_id)
        return
    done = {r.decode() for r in await state.redis.smembers(keys.ranges(job_id))}
    missing = [r for r in ranges if f"{r[0]}-{r[1]}" not in done] or ranges[-1:]
    for first, last in missing:
        await state.redis.enqueue_job("ocr_pages", job_id, first, last, _job_id=arq_job_id(job_id, first))

