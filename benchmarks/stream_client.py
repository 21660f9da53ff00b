"""One client process of the streams benchmark (`python -m benchmarks.stream_client`).

Light on purpose (raw asyncio sockets, benchmarks/sse.py), so that a few of them hold thousands of
streams without being what limits the web. It reads its orders as one JSON line on stdin, says
`ready`, waits for `go` (so that several client processes open at the same moment), opens its streams
(all at once, or `at_once` at a time), reports how they were answered, reads every stream until its
end (a job's terminal event; for a feed, the end of the job named `until`), and prints what each got.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from benchmarks import sse
from benchmarks.processes import raise_open_file_limit

TERMINAL = frozenset({"completed", "failed", "cancelled"})


async def _open(port: int, order: dict[str, Any], gate: asyncio.Semaphore | None) -> sse.Stream | int:
    try:
        if gate is None:
            return await sse.open_stream("127.0.0.1", port, order["path"], headers=order["headers"], timeout_s=120)
        async with gate:
            return await sse.open_stream("127.0.0.1", port, order["path"], headers=order["headers"], timeout_s=120)
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return 0  # no answer at all


async def _read(stream: sse.Stream, order: dict[str, Any], deadline: float) -> dict[str, Any]:
    until = order.get("until")
    ids: list[int] = []
    final_wall = 0.0
    try:
        async with asyncio.timeout(max(deadline - time.monotonic(), 0.1)):
            while (event := await stream.next_event()) is not None:
                if event.id is not None:
                    ids.append(event.id)
                final_wall = event.received_wall
                if until is None and (event.data.get("status") in TERMINAL or event.name == "deleted"):
                    break
                if until is not None and event.data.get("id") == until and event.data.get("status") in TERMINAL:
                    break
    except (TimeoutError, OSError, ValueError, asyncio.IncompleteReadError):
        pass
    stream.close()
    return {"key": order["key"], "ids": ids, "final": final_wall}


async def main() -> None:
    raise_open_file_limit()
    orders = json.loads(sys.stdin.readline())
    port, deadline_s = orders["port"], orders["deadline_s"]
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # "go"
    gate = asyncio.Semaphore(orders["at_once"]) if orders["at_once"] else None
    started = time.monotonic()
    opened = await asyncio.gather(*(_open(port, order, gate) for order in orders["streams"]))
    statuses: dict[str, int] = {}
    for result in opened:
        status = result if isinstance(result, int) else result.status
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    print(json.dumps({"statuses": statuses, "open_s": time.monotonic() - started}), flush=True)
    deadline = time.monotonic() + deadline_s
    reads = [
        _read(stream, order, deadline)
        for stream, order in zip(opened, orders["streams"], strict=True)
        if not isinstance(stream, int) and stream.status == 200
    ]
    cpu_before = time.process_time()
    results = await asyncio.gather(*reads)
    print(json.dumps({"streams": results, "cpu_s": time.process_time() - cpu_before}), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
