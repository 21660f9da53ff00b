"""The worker's page loop: one claim of the fair scheduler per free OCR slot, each unit run as a task.

Page work is not an arq job. arq takes its queue first in, first out, and a unit it has taken is the
worker's until it ends; here each free slot asks the scheduler (service/jobs/schedule.py) for the page
whose turn it is (or a unit of a text-layer job's pages), one Lua call for all the free slots, so a
page that starts waiting is taken by the next slot that frees, on any worker. The loop runs inside
arq's worker (started and stopped with it, beside its heartbeat), which still runs downloads, webhooks
and the cleanup cron. An idle worker sleeps on the scheduler's channel (a publish when pages start
waiting) and looks again by itself only when a lease is due to lapse, or every IDLE_LOOK_S.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time

from redis.exceptions import RedisError

from service.jobs.schedule import Claimed
from service.worker.lease import lease_ms
from service.worker.pages import run_claimed
from service.worker.state import WorkerState

logger = logging.getLogger(__name__)

# An idle worker's look at the scheduler when nobody woke it: a missed publish costs at most this.
IDLE_LOOK_S = 2.0


async def claim_pages(state: WorkerState) -> None:
    """Background task for the worker's lifetime; cancelling it hands the running pages back."""
    slots = state.settings.ocr_concurrency
    try:
        while True:
            state.wake.clear()
            look_again_s = IDLE_LOOK_S
            free = slots - len(set(state.held.values()))
            if free > 0:
                try:
                    claimed, next_lapse = await state.store.schedule.claim(free, lease_ms(state))
                except (RedisError, OSError) as exc:
                    logger.warning("claiming pages failed (%s); trying again", exc)
                    await asyncio.sleep(1)
                    continue
                except Exception as exc:  # noqa: BLE001 - the loop is the worker's life: it must not end
                    logger.error("claiming pages raised %s: %s; trying again", type(exc).__name__, exc)
                    await asyncio.sleep(1)
                    continue
                units = [list(pages) for _, pages in itertools.groupby(claimed, key=lambda page: page.unit)]
                for unit in units:
                    task = asyncio.create_task(_run(state, unit), name=f"page-{unit[0].lease}")
                    for page in unit:
                        state.held[page.lease] = task
                if len(units) == free:
                    continue  # perhaps more waiting, and no free slot to wait for: claim when one frees
                if next_lapse is not None:
                    look_again_s = min(look_again_s, max(0.01, next_lapse - time.time() + 0.01))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(look_again_s):
                    await state.wake.wait()
    finally:
        running = list(set(state.held.values()))
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)


async def _run(state: WorkerState, unit: list[Claimed]) -> None:
    try:
        await run_claimed(state, unit)
    except (RedisError, OSError) as exc:
        # Redis went away mid-page: the lease lapses and the page waits again for whoever is up first.
        logger.warning("page %s left to its lease: %s", unit[0].lease, exc)
    except Exception as exc:  # noqa: BLE001 - not even a failure to record a failure may end the loop's tasks unseen
        logger.error("page %s left to its lease after %s: %s", unit[0].lease, type(exc).__name__, exc)
    finally:
        for page in unit:
            state.held.pop(page.lease, None)
        state.wake.set()  # a slot is free
