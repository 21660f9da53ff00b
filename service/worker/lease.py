"""A worker's claim on a running range: arq's in-progress key, held on a short lease.

arq keeps a job's in-progress key for the job's whole timeout; renewed every LEASE_SECONDS / 4
instead, it lapses within LEASE_SECONDS of a worker's death (SIGKILL), and the range goes to the
next worker within seconds, not minutes. The renewal also notices cancel flags set while this
worker's cancel subscription was down.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from arq.constants import in_progress_key_prefix
from redis.exceptions import RedisError

from service import keys
from service.ocr import CancelToken
from service.worker.state import WorkerState


@contextlib.asynccontextmanager
async def lease(state: WorkerState, arq_id: str, job_id: str, token: CancelToken) -> AsyncIterator[None]:
    """Hold arq's in-progress key on a short lease while the range runs; cancel `token` when the job's
    cancel flag is seen."""
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
