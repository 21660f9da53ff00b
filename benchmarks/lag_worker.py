"""The service's arq worker run inside this process, next to an event-loop lag probe.

`python -m benchmarks.lag_worker OUT.json` (with the service's environment) builds arq's Worker from
`worker.WorkerSettings`, exactly as `python worker.py` does, and runs it on this process's event loop
together with a probe that sleeps 10 ms over and over and records how late each wake-up is. On SIGTERM
the worker shuts down as usual and the samples, stamped with wall-clock time, are written to OUT.json.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path

PROBE_INTERVAL_S = 0.01


async def probe(samples: list[tuple[float, float]]) -> None:
    while True:
        started = time.perf_counter()
        await asyncio.sleep(PROBE_INTERVAL_S)
        lag_s = time.perf_counter() - started - PROBE_INTERVAL_S
        samples.append((time.time(), lag_s * 1000))


async def main(out: Path) -> None:
    from arq.worker import create_worker

    import worker as worker_module
    from service.logs import configure_logging

    configure_logging(worker_module.settings)
    samples: list[tuple[float, float]] = []
    prober = asyncio.create_task(probe(samples))
    worker = create_worker(worker_module.WorkerSettings)  # type: ignore[arg-type]
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await worker.async_run()
    finally:
        prober.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await prober
        out.write_text(json.dumps(samples))
        # A unit still finishing its bookkeeping when SIGTERM came is cancelled; arq re-raises that here.
        with contextlib.suppress(asyncio.CancelledError):
            await worker.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
