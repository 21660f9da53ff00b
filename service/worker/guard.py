"""Every unit of work ends its job, whatever it raises.

A unit (a page, a download, a webhook delivery) that raises something none of its own handlers
expected is retried with backoff, and after MAX_TRIES such failures its job fails with `unit_failed`
(a webhook is marked failed). The failures are counted in the job's own `ocr:attempts:<id>` hash, not
by arq's try counter, which starts again whenever the cleanup cron re-queues a unit: so a unit that
always raises cannot keep its job `running` for ever.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import traceback
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from arq import Retry

from service import keys
from service.errors import UnitFailed
from service.jobs.record import JobRef
from service.worker.finish import end_failed
from service.worker.state import WorkerState, retry_delay_s

logger = logging.getLogger(__name__)

Unit = Callable[..., Coroutine[Any, Any, str]]
GiveUp = Callable[[WorkerState, JobRef, UnitFailed], Awaitable[str]]


async def fail_job(state: WorkerState, ref: JobRef, error: UnitFailed) -> str:
    return await end_failed(state, ref, error)


def ends_its_job(unit: str, *, give_up: GiveUp = fail_job) -> Callable[[Unit], Unit]:
    """Wrap the arq function of a unit named `unit` (its arguments after the job id, if any, are
    added to the name)."""

    def wrap(function: Unit) -> Unit:
        @functools.wraps(function)
        async def run(ctx: dict[str, Any], job_id: str, *args: Any, **kwargs: Any) -> str:
            try:
                return await function(ctx, job_id, *args, **kwargs)
            except (Retry, asyncio.CancelledError):
                raise
            except Exception as exc:  # noqa: BLE001 - the point: nothing may leave a job unended
                name = ":".join([unit, *map(str, args[:1])])
                return await unexpected_failure(ctx["state"], job_id, name, exc, give_up)

        return run

    return wrap


async def count_attempt(state: WorkerState, job_id: str, unit: str) -> int:
    """One more failure (or re-queue) of `unit`; how many there have been for this job."""
    return int(await state.store.write(job_id, ("HINCRBY", keys.attempts(job_id), unit, 1)))


async def unexpected_failure(state: WorkerState, job_id: str, unit: str, exc: Exception, give_up: GiveUp) -> str:
    """Retry the unit with backoff, or, after MAX_TRIES of these, end it for good with a code."""
    while isinstance(exc, ExceptionGroup):  # several pages at once: the first one tells
        exc = exc.exceptions[0]
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    what = f"{type(exc).__name__}: {str(exc)[:200]}"
    ref = await state.store.get(job_id)
    if ref is None:
        logger.warning("job %s %s raised %s; the job is gone", job_id, unit, what)
        return "gone"
    tries = await count_attempt(state, job_id, unit)
    # One line, not a traceback: where it came from is enough to find it, and the job carries the rest.
    logger.error(
        "job %s tenant=%s %s raised %s at %s:%s (failure %d of %d)",
        job_id, ref.tenant, unit, what, where.filename if where else "?", where.lineno if where else "?",
        tries, state.settings.max_tries,
    )  # fmt: skip
    if tries >= state.settings.max_tries:
        return await give_up(state, ref, UnitFailed(f"Unit {unit} failed {tries} times on an unexpected error: {what}"))
    raise Retry(defer=retry_delay_s(state.settings, tries))
