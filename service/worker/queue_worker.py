"""arq's Worker, without a wasted transaction on every poll of the queue.

arq polls its queue every WORKER_POLL_DELAY while it has a free job slot, and checks each job id the
poll returns with a WATCH transaction (four round trips) before it starts the job, the jobs this
worker is running itself included: they stay in the queue until they end. When pages were arq jobs
(ranges of them), with one running and a slot free, those checks were most of the worker's own CPU
during OCR (benchmark 1 in BENCHMARKS.md); downloads and webhook deliveries still go through arq.
Ids of jobs this worker is running are dropped before the check; everything else is arq's.
"""

from __future__ import annotations

import asyncio

from arq import worker


class Worker(worker.Worker):
    async def close(self) -> None:
        # arq gathers its job tasks without return_exceptions: a task cancelled by SIGTERM while it awaits
        # its shielded finish re-raises CancelledError out of close(), which then skips on_shutdown (the
        # heartbeat's removal, the page processes' end) and leaves the process with a traceback.
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        self.tasks.clear()
        await super().close()

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        running = {job_id.encode() for job_id, task in self.tasks.items() if not task.done()}
        await super().start_jobs([job_id for job_id in job_ids if job_id not in running])
