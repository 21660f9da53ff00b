"""The leases on the pages a worker runs: renewed every LEASE_SECONDS / 3 while the pages run.

A claimed page carries a lease in the scheduler (service/jobs/schedule.py). Renewed in one call for
all of the worker's pages, it lapses within LEASE_SECONDS of the worker's death (SIGKILL), and the
next claim by any worker puts the page back at the front of its job's turn. The renewal also notices
cancel flags set while this worker's cancel subscription was down.
"""

from __future__ import annotations

import asyncio
import contextlib

from redis.exceptions import RedisError

from service.worker.state import WorkerState


def lease_ms(state: WorkerState) -> int:
    return state.settings.lease_s * 1000


async def renew_leases(state: WorkerState) -> None:
    """Background task for the worker's lifetime."""
    while True:
        await asyncio.sleep(state.settings.lease_s / 3)
        with contextlib.suppress(RedisError, OSError):
            for job_id in await state.store.schedule.renew(list(state.held), lease_ms(state)):
                state.cancel_local(job_id)
