"""The worker's start and stop, and what runs beside its arq jobs: the page loop, the leases' renewal,
the heartbeat and the cancel listener."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from redis.exceptions import RedisError

from service import keys
from service.connections import redis_client
from service.jobs.cache import ContentCache
from service.jobs.store import JobStore
from service.worker.claims import claim_pages
from service.worker.lease import renew_leases
from service.worker.page_pool import PagePool
from service.worker.state import WorkerState
from settings import get_settings

logger = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_S = 10
# Shutdown steps are bounded (see `_bounded`); together well inside the platform's 30 s before SIGKILL.
HAND_BACK_S = 3.0
SHUTDOWN_STEP_S = 2.0


async def startup(ctx: dict[str, Any]) -> None:
    settings = get_settings()
    redis = redis_client(settings, ride_out_outages=True)
    store = JobStore(redis, ttl_s=settings.result_ttl_s)
    pages = PagePool(
        settings.ocr_concurrency,
        memory_bytes=settings.page_memory_mb * 1024 * 1024,
        max_page_bytes=settings.max_page_text_bytes,
    )
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
        asyncio.create_task(_listen(state), name="listener"),
        asyncio.create_task(renew_leases(state), name="leases"),
        # Last: stopping it hands the running pages back, which the others must outlive.
        asyncio.create_task(claim_pages(state), name="pages"),
    ]
    ctx["state"] = state
    logger.info("worker %s started: %d OCR slots", state.worker_id, settings.ocr_concurrency)


async def shutdown(ctx: dict[str, Any]) -> None:
    state: WorkerState | None = ctx.get("state")
    if state is None:
        return
    # The page loop first: it hands its pages back while the lease renewal still keeps them.
    pages, others = state.background[-1], state.background[:-1]
    pages.cancel()
    await _bounded("handing pages back", asyncio.gather(pages, return_exceptions=True), HAND_BACK_S)
    for task in others:
        task.cancel()
    await _bounded("stopping the heartbeat and listener", asyncio.gather(*others, return_exceptions=True))
    with contextlib.suppress(RedisError, OSError):
        await _bounded("leaving the workers' set", state.redis.zrem(keys.WORKERS, state.worker_id))
    await _bounded("stopping the page processes", state.pages.close())
    shutil.rmtree(state.scratch, ignore_errors=True)
    await _bounded("closing Redis", state.redis.aclose())
    logger.info("worker %s stopped", state.worker_id)


async def _bounded(step: str, work: Awaitable[object], limit_s: float = SHUTDOWN_STEP_S) -> None:
    """One step of the shutdown, given `limit_s`: SIGTERM ends the worker within seconds (the platform
    SIGKILLs it 30 s later), so a step that hangs (a page process being started as the signal came, a
    connection that does not answer) is logged and left behind rather than holding the others up. A
    page not handed back is not lost: its lease lapses."""
    try:
        async with asyncio.timeout(limit_s):
            await work
    except TimeoutError:
        logger.warning("worker shutdown: %s took over %g s; going on without it", step, limit_s)


async def _heartbeat(state: WorkerState) -> None:
    while True:
        with contextlib.suppress(RedisError, OSError):
            await state.redis.zadd(keys.WORKERS, {state.worker_id: time.time()})
        await asyncio.sleep(HEARTBEAT_INTERVAL_S)


async def _listen(state: WorkerState) -> None:
    """Stop local page work the moment a client cancels its job (see service/jobs/control.py), and wake
    the page loop when pages start waiting (service/jobs/schedule.py)."""
    listener = redis_client(state.settings, socket_timeout_s=None)
    try:
        while True:
            pubsub = listener.pubsub()
            try:
                await pubsub.subscribe(keys.CANCEL_CHANNEL, keys.SCHED_WAKE_CHANNEL)
                # Pages may have started waiting while this subscription was down.
                state.wake.set()
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
                    if message is None:
                        await pubsub.ping()
                    elif message["type"] != "message":
                        continue
                    elif message["channel"] == keys.SCHED_WAKE_CHANNEL.encode():
                        state.wake.set()
                    else:
                        state.cancel_local(message["data"].decode())
            except (RedisError, OSError):
                await asyncio.sleep(1)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
    finally:
        await listener.aclose()
