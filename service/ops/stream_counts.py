"""How many SSE streams every web process holds, so that `ocr_sse_clients` also makes sense in total.

With WEB_CONCURRENCY > 1 (or several web dynos) each process has its own hub and its own streams, and
a scrape of /metrics lands on one of them. So each process reports its count into one Redis hash
(`ocr:sse-clients`: process id -> "<count> <unix time>"): when it changes, at most once a second, and
every REPORT_EVERY_S regardless. A reader sums the reports younger than STALE_AFTER_S (a process that
died without saying so drops out by then, and its field is removed) with its own count as it is now.
A process removes its field when it stops; the hash expires when no process reports any more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from service import keys

logger = logging.getLogger(__name__)

CHECK_EVERY_S = 1.0
REPORT_EVERY_S = 5.0
STALE_AFTER_S = 15.0


@dataclass(frozen=True, slots=True)
class StreamTotals:
    here: int  # this process's streams, as of now
    everywhere: int  # every web process's, as each last reported (this one's as of now)
    processes: int  # web processes that reported in the last STALE_AFTER_S, this one included


class StreamCounts:
    """This process's count of streams, reported to Redis for the others to read, and the sum of all."""

    def __init__(self, redis: Redis, count: Callable[[], int]) -> None:
        self.redis = redis
        self.count = count
        # Unique across dynos and restarts: a host's pids are reused, and so are dyno host names.
        self.process_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Report once now (the process counts from its first request on), then keep reporting."""
        with contextlib.suppress(RedisError, OSError):
            await self.report(self.count())
        self._task = asyncio.create_task(self._report_while_running(), name="stream-counts")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(RedisError, OSError):
            await self.redis.hdel(keys.SSE_CLIENTS, self.process_id)  # type: ignore[misc]

    async def report(self, count: int) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:  # the hash never lives without its expiry
            pipe.hset(keys.SSE_CLIENTS, self.process_id, f"{count} {time.time():.0f}")
            pipe.expire(keys.SSE_CLIENTS, int(STALE_AFTER_S * 2))
            await pipe.execute()

    async def _report_while_running(self) -> None:
        reported, reported_at = -1, 0.0
        while True:
            count, now = self.count(), time.monotonic()
            if count != reported or now - reported_at >= REPORT_EVERY_S:
                try:
                    await self.report(count)
                    reported, reported_at = count, now
                except (RedisError, OSError) as exc:
                    # Redis down: the streams are ending anyway (the hub lost it); report once it is back.
                    logger.debug("could not report the stream count (%s)", exc)
            await asyncio.sleep(CHECK_EVERY_S)

    def totals(self, reports: dict[bytes, bytes], now_s: float) -> tuple[StreamTotals, list[str]]:
        """The totals from the hash as read (`HGETALL`), and the fields of processes gone quiet."""
        here = self.count()
        everywhere, processes, stale = here, 1, []
        for field, raw in reports.items():
            process = field.decode(errors="replace")
            if process == self.process_id:
                continue
            count, _, at_s = raw.partition(b" ")
            try:
                fresh = now_s - float(at_s) <= STALE_AFTER_S
                streams = int(count)
            except ValueError:
                fresh, streams = False, 0
            if not fresh:
                stale.append(process)
                continue
            everywhere += streams
            processes += 1
        return StreamTotals(here, everywhere, processes), stale
