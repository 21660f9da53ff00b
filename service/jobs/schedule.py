"""The fair scheduler: which page a free worker slot runs next, kept in Redis and changed only in Lua.

The structure (service/keys.py, "The scheduler"): per priority, a sorted set of the tenants with
waiting pages by turn; per priority and tenant, a sorted set of its jobs with waiting pages by turn; per
job, a sorted set of its waiting page indices; a hash of when each job started waiting; a counter of
claims (the turns' clock); and a sorted set of leases, "<job>:<index>" -> when the claim lapses.

A claim takes the first tenant of the `normal` turn (of the `low` one only when no normal page waits),
that tenant's first job, and the job's lowest waiting page; the job and the tenant then go to the back
of their turns (scored with the clock, which the claim advances). Every tenant with waiting pages so
gets one page in turn, whatever its documents' sizes, and within a tenant its jobs alternate. A tenant
or job that starts waiting joins its turn just ahead of the one served last (the clock minus a half),
so a one-page job waits for the pages already running and those of tenants that were waiting before
it, one each, and no more. The claimed page gets a lease that its worker renews; a lapsed lease
(SIGKILL) or a page handed back (SIGTERM) puts the page back at the front of its job's turn, with one
more try counted. A job's entries are taken out by the change that ends it (`sched_unschedule`, run by
service/jobs/scripts.py), and a lease of an ended job is dropped when it lapses or is released:
nothing of a job outlives it. Each page is in exactly one place: waiting, leased, or stored.

A job whose pages come out of their text layers (a few milliseconds each, against a second or two for
an OCR page) is served in units of up to TEXT_LAYER_BATCH pages: its first page stored so marks it
(`ocr:sched:batch`, set by the page-store script, service/worker/page_store.py), and a claim then takes
that many of its waiting pages in its one turn, each under its own lease. Such a unit is still far
shorter than one OCR page, so a newly waiting job starts as soon. Pages of a unit its worker did not
read so (one that needs OCR) are put back without a try counted (`release`), and the mark is dropped:
the job's pages go one at a time again until one more is stored from its text layer.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from service import keys
from service.jobs.schedule_scripts import ADD, CANCEL, CLAIM, HAND_BACK, RECOVER, RELEASE, RENEW, WAITING

NORMAL, LOW = "normal", "low"
PRIORITIES = (NORMAL, LOW)  # the order claims serve them in
# Pages a claim takes at once of a job whose pages come out of their text layers: about 50-100 ms of
# work, well below one OCR page, and a sixteenth of the per-page round trips (BENCHMARKS.md section 2).
TEXT_LAYER_BATCH = 16


@dataclass(frozen=True)
class Claimed:
    """A page a worker slot now holds: run it, then release (or hand back) its lease."""

    job_id: str
    index: int  # 0-based
    tries: int  # 1 on the first run; one more for each lapse, hand-back or retry
    cancelled: bool = False  # its job was asked to stop (when claimed)
    stored: bool = False  # already stored (its worker died before it finished the job)
    unit: int = 1  # pages of one claim with the same unit are run together (a text-layer job's batch)

    @property
    def lease(self) -> str:
        return f"{self.job_id}:{self.index}"


@dataclass(frozen=True)
class TenantWaiting:
    priority: str
    tenant: str
    pages: int
    oldest_wait_s: float


def _now_ms() -> int:
    return int(time.time() * 1000)


class Schedule:
    """The scheduler's operations, each one Lua script (atomic). Shared by the web and the workers."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._add = redis.register_script(ADD)
        self._claim = redis.register_script(CLAIM)
        self._renew = redis.register_script(RENEW)
        self._release = redis.register_script(RELEASE)
        self._hand_back = redis.register_script(HAND_BACK)
        self._cancel = redis.register_script(CANCEL)
        self._recover = redis.register_script(RECOVER)
        self._waiting = redis.register_script(WAITING)

    async def add(self, job_id: str, tenant: str, priority: str, indices: Sequence[int]) -> int:
        """The job's pages wait for workers (nothing happens for a job that is no longer live)."""
        return int(await self._add(args=[_now_ms(), job_id, tenant, priority, *indices]))

    async def claim(self, count: int, lease_ms: int) -> tuple[list[Claimed], float | None]:
        """Pages of up to `count` units, in turn, in unit order; and when the earliest lease lapses (epoch
        seconds), if any. A unit is one page, or several of a text-layer job (TEXT_LAYER_BATCH)."""
        out = await self._claim(args=[count, _now_ms(), lease_ms])
        first = float(out[0])
        claimed = [
            Claimed(
                out[i].decode(), int(out[i + 1]), int(out[i + 2]), bool(out[i + 3]), bool(out[i + 4]), int(out[i + 5])
            )
            for i in range(1, len(out), 6)
        ]
        return claimed, (first / 1000 if first >= 0 else None)

    async def renew(self, leases: Sequence[str], lease_ms: int) -> list[str]:
        """Renew this worker's leases; the ids of their jobs that were asked to stop."""
        if not leases:
            return []
        stopped = await self._renew(args=[_now_ms() + lease_ms, *leases])
        return [job.decode() for job in stopped]

    async def release(self, *leases: str, put_back: Sequence[str] = ()) -> bool:
        """The pages are done (stored, or their job ended): nothing of them is left to schedule; those
        `put_back` (of one unit, not run) wait again at the front of their job's turn, and the job's
        pages are claimed one at a time again. True when their job was asked to stop meanwhile (the
        caller ends it: the cancel counted on a worker to)."""
        return bool(await self._release(args=[_now_ms(), len(put_back), *put_back, *leases]))

    async def retry_after(self, lease: str, delay_s: float) -> None:
        """Keep the page out of turn for `delay_s`, then it waits again at the front of its job's turn."""
        await self.redis.zadd(keys.SCHED_LEASES, {lease: _now_ms() + int(delay_s * 1000)}, xx=True)

    async def hand_back(self, leases: Sequence[str]) -> int:
        """Pages this worker will not finish (it is stopping) wait again at once."""
        if not leases:
            return 0
        return int(await self._hand_back(args=[_now_ms(), *leases]))

    async def cancel(self, job_id: str, tenant: str, priority: str) -> bool:
        """Take the job's waiting pages out; whether a worker holds one of its pages."""
        return bool(await self._cancel(args=[job_id, tenant, priority]))

    async def recover(self, job_id: str, tenant: str, priority: str, missing: Sequence[int]) -> int:
        """Schedule `missing` again if the job has nothing waiting or leased (it lost its entries)."""
        return int(await self._recover(args=[_now_ms(), job_id, tenant, priority, *missing]))

    async def waiting(self) -> list[TenantWaiting]:
        """Per tenant and priority: pages waiting and how long the oldest has waited."""
        out = await self._waiting()
        now_ms = _now_ms()
        return [
            TenantWaiting(
                out[i].decode(),
                out[i + 1].decode(),
                int(out[i + 2]),
                max(0.0, (now_ms - int(out[i + 3])) / 1000) if int(out[i + 3]) >= 0 else 0.0,
            )
            for i in range(0, len(out), 4)
        ]
