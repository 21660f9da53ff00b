"""arq's Worker, with a lease on every unit it takes, riding out Redis restarts, and without a wasted
transaction on every poll of the queue.

The lease: arq marks a job it takes with an in-progress key that lives for the longest job timeout
plus 10 s (minutes), and a job stays in the queue until it ends. A worker
SIGKILLed in the moment it took a unit, before the unit's own code ran, left that key to block the
unit for all that time: the cleanup cron saw it and took the unit for running. Here the key lives
LEASE_SECONDS from the take, and the worker renews it for every unit it runs (downloads, webhooks,
the cron) every LEASE_SECONDS / 4: a dead worker's units go to the next worker within
LEASE_SECONDS, whatever they were doing when it died.

Redis restarts: arq lets a connection error out of its poll (a `WatchError` when the connection drops
between its WATCH and its EXEC, a `BusyLoadingError` while a restarted Redis loads its append-only
file) and the worker exits. Here such an error skips the rest of that poll; the unit it was taking
stays in the queue, and one whose start or end was cut off runs again when its lease lapses (every
unit is idempotent).

The poll: arq polls its queue every WORKER_POLL_DELAY while it has a free job slot, and checks each
job id the poll returns with a WATCH transaction (four round trips) before it starts the job, the
jobs this worker is running itself included: they stay in the queue until they end. When pages were
arq jobs (ranges of them), with one running and a slot free, those checks were most of the worker's
own CPU during OCR (benchmark 1 in BENCHMARKS.md). Ids of jobs this worker is running are dropped
before the check. (Pages are no longer arq jobs: service/worker/claims.py.)

An idle queue: pages are not in it, so it is empty nearly all the time, and a poll every 10 ms cost
an idle worker 6 % of a core and Redis 1 % (beside Tesseract: BENCHMARKS.md sections 1 and P). A poll
that finds nothing new doubles the wait before the next, up to IDLE_POLL_S; one that finds a unit, or
finds every job slot busy, goes back to WORKER_POLL_DELAY.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from arq import worker
from arq.constants import in_progress_key_prefix
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, WatchError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

# The longest wait between polls of an empty queue: a download or webhook delivery enqueued while the
# worker is idle is taken within this (an idle worker: 0.2-0.3 % of a core, against 6 % polling every 10 ms).
IDLE_POLL_S = 0.25

# What a Redis restart raises out of a poll (BusyLoadingError is a ConnectionError).
RESTART_ERRORS = (RedisConnectionError, RedisTimeoutError, WatchError, OSError)


class Worker(worker.Worker):
    def __init__(
        self, *args: Any, lease_s: float | None = None, idle_poll_s: float | None = None, **kwargs: Any
    ) -> None:
        """`lease_s`: how long a unit taken by a worker that died stays blocked (None: arq's own timeout).
        `idle_poll_s`: the longest wait between polls of an empty queue (None: every poll_delay, as arq)."""
        super().__init__(*args, **kwargs)
        self.lease_s = lease_s
        if lease_s is not None:
            self.in_progress_timeout_s = lease_s
        self.idle_poll_s = idle_poll_s
        # From the last poll to the next while polls find nothing; 0 (arq's poll_delay alone) once one finds work.
        self.poll_interval_s = 0.0
        self._found_nothing = False

    async def main(self) -> None:
        renewer = asyncio.create_task(self._renew_leases(), name="leases") if self.lease_s else None
        try:
            await super().main()
        finally:
            if renewer is not None:
                renewer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renewer

    async def _renew_leases(self) -> None:
        assert self.lease_s is not None
        lease_ms = int(self.lease_s * 1000)
        while True:
            await asyncio.sleep(self.lease_s / 4)
            running = [job_id for job_id, task in self.tasks.items() if not task.done()]
            if not running or self._pool is None:
                continue
            # PEXPIRE never creates a key: a unit that ended meanwhile (its key deleted) is left alone.
            with contextlib.suppress(RedisError, OSError):
                async with self.pool.pipeline(transaction=False) as pipe:
                    for job_id in running:
                        pipe.pexpire(in_progress_key_prefix + job_id, lease_ms)
                    await pipe.execute()

    async def close(self) -> None:
        # arq gathers its job tasks without return_exceptions: a task cancelled by SIGTERM while it awaits
        # its shielded finish re-raises CancelledError out of close(), which then skips on_shutdown (the
        # heartbeat's removal, the page processes' end) and leaves the process with a traceback.
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        self.tasks.clear()
        await super().close()

    async def _poll_iteration(self) -> None:
        self._found_nothing = False  # set by start_jobs, which arq calls only with a job slot free
        try:
            await super()._poll_iteration()
        except RESTART_ERRORS as exc:
            logger.warning("Redis is unavailable (%s: %s); polling again", type(exc).__name__, exc)
            await asyncio.sleep(min(1.0, max(self.poll_delay_s, 0.1)))
            return
        if self.idle_poll_s is None or not self._found_nothing:
            self.poll_interval_s = 0.0
            return
        self.poll_interval_s = min(self.idle_poll_s, 2 * max(self.poll_interval_s, self.poll_delay_s))
        # arq sleeps poll_delay after this returns: the rest of the interval is slept here.
        await asyncio.sleep(max(0.0, self.poll_interval_s - self.poll_delay_s))

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        running = {job_id.encode() for job_id, task in self.tasks.items() if not task.done()}
        self._found_nothing = all(job_id in running for job_id in job_ids)
        for job_id in job_ids:
            if job_id in running:
                continue
            try:
                await super().start_jobs([job_id])
            except RESTART_ERRORS:
                # arq took a job slot for it before its check failed: give the slot back. The unit stays
                # in the queue; if its in-progress key was set before the failure, it lapses with the lease.
                self.job_counter -= 1
                self.sem.release()
                raise

    async def run_job(self, job_id: str, score: int) -> None:
        try:
            await super().run_job(job_id, score)
        except RESTART_ERRORS as exc:
            # Cut off while arq read the job or recorded its end: it stays in the queue, and runs again once
            # its lease lapses.
            logger.warning("unit %s: Redis went away around its start or end (%s); it runs again", job_id, exc)
