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
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from service import keys

NORMAL, LOW = "normal", "low"
PRIORITIES = (NORMAL, LOW)  # the order claims serve them in
# Lapsed leases put back per claim: a bounded script even after a crash of many workers.
RECLAIM_BATCH = 100
# Waiting figures read per priority: bounded at scrape time whatever the number of tenants.
MAX_TENANTS_REPORTED = 1000


def _lua_key(key: Callable[..., str], *lua_names: str) -> str:
    """A Lua expression for `key(*names)` (service/keys.py stays the one place key names are spelled)."""
    return "'" + key(*(f"' .. {name} .. '" for name in lua_names)) + "'"


# Shared by the scheduler's scripts and the job-change script (which calls sched_unschedule).
FUNCTIONS = f"""
local SCHED_LEASES, SCHED_SINCE, SCHED_TURN = '{keys.SCHED_LEASES}', '{keys.SCHED_SINCE}', '{keys.SCHED_TURN}'
local SCHED_WAKE = '{keys.SCHED_WAKE_CHANNEL}'
local function sched_tenants_key(prio) return {_lua_key(keys.sched_tenants, "prio")} end
local function sched_jobs_key(prio, tenant) return {_lua_key(keys.sched_jobs, "prio", "tenant")} end
local function sched_pages_key(job) return {_lua_key(keys.sched_pages, "job")} end

-- Live: the record exists and has no expiry (a job's end gives it one).
local function sched_live(job)
  return redis.call('PTTL', {_lua_key(keys.job, "job")}) == -1
end

-- The job has waiting pages: into its tenant's turn, and the tenant (unless it waits already) into its
-- priority's turn, each just ahead of the one served last.
local function sched_activate(job, tenant, prio, now_ms)
  if redis.call('HSETNX', SCHED_SINCE, job, now_ms) == 0 then return end
  local joining = tonumber(redis.call('GET', SCHED_TURN) or '0') - 0.5
  redis.call('ZADD', sched_jobs_key(prio, tenant), 'NX', joining, job)
  redis.call('ZADD', sched_tenants_key(prio), 'NX', joining, tenant)
end

-- Nothing waits: the clock starts again, so an idle service keeps no scheduler key at all.
local function sched_reset_if_idle()
  if redis.call('EXISTS', sched_tenants_key('normal'), sched_tenants_key('low')) == 0 then
    redis.call('DEL', SCHED_TURN)
  end
end

local function sched_unschedule(job, tenant, prio)
  redis.call('DEL', sched_pages_key(job))
  redis.call('HDEL', SCHED_SINCE, job)
  local ring = sched_jobs_key(prio, tenant)
  redis.call('ZREM', ring, job)
  if redis.call('ZCARD', ring) == 0 then redis.call('ZREM', sched_tenants_key(prio), tenant) end
  sched_reset_if_idle()
end

local function sched_owner(job)
  local owner = redis.call('HMGET', {_lua_key(keys.meta, "job")}, 'tenant', 'priority')
  return owner[1], owner[2] or 'normal'
end

-- A page back at the front of its job's turn (a lapsed lease, a hand-back, a retry due): one more try.
local function sched_requeue(job, index, now_ms)
  if not sched_live(job) then return 0 end
  local tenant, prio = sched_owner(job)
  if not tenant then return 0 end
  redis.call('HINCRBY', {_lua_key(keys.attempts, "job")}, 'try:' .. index, 1)
  redis.call('ZADD', sched_pages_key(job), index, index)
  sched_activate(job, tenant, prio, now_ms)
  return 1
end

local function sched_split(member)
  local job, index = string.match(member, '^(.*):(%d+)$')
  return job, tonumber(index)
end

local function sched_job_leased(job)
  for _, member in ipairs(redis.call('ZRANGE', SCHED_LEASES, 0, -1)) do
    if sched_split(member) == job then return true end
  end
  return false
end
"""

# ARGV: now (ms), job, tenant, priority, then the page indices. Returns how many pages wait now.
_ADD = (
    FUNCTIONS
    + """
local now, job, tenant, prio = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4]
if not sched_live(job) then return 0 end
local pages = sched_pages_key(job)
for i = 5, #ARGV, 500 do
  local batch = {}
  for k = i, math.min(i + 499, #ARGV) do
    batch[#batch + 1] = ARGV[k]
    batch[#batch + 1] = ARGV[k]
  end
  redis.call('ZADD', pages, unpack(batch))
end
sched_activate(job, tenant, prio, now)
redis.call('PUBLISH', SCHED_WAKE, '1')
return redis.call('ZCARD', pages)
"""
)

# ARGV: how many pages, now (ms), lease (ms). Lapsed leases are put back first. Returns the earliest
# lease deadline (ms, -1 when none: when this worker should look again even if nobody wakes it), then
# for each page claimed: job, index, try, whether the job was asked to stop, whether the page is stored.
_CLAIM = (
    FUNCTIONS
    + """
local n, now, lease_ms = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
for _, member in ipairs(redis.call('ZRANGEBYSCORE', SCHED_LEASES, '-inf', now, 'LIMIT', 0, """
    + str(RECLAIM_BATCH)
    + """)) do
  redis.call('ZREM', SCHED_LEASES, member)
  local job, index = sched_split(member)
  if job then sched_requeue(job, index, now) end
end
local out = {-1}
local steps = 0
for _, prio in ipairs({'normal', 'low'}) do
  local tenants = sched_tenants_key(prio)
  while #out < 5 * n + 1 and steps < 10 * n + 100 do
    steps = steps + 1
    local tenant = redis.call('ZRANGE', tenants, 0, 0)[1]
    if not tenant then break end
    local ring = sched_jobs_key(prio, tenant)
    local job = redis.call('ZRANGE', ring, 0, 0)[1]
    if not job then
      redis.call('ZREM', tenants, tenant)
    else
      local pages = sched_pages_key(job)
      local popped = redis.call('ZPOPMIN', pages)
      if #popped == 0 or not sched_live(job) then
        sched_unschedule(job, tenant, prio)
      else
        local index = popped[1]
        local turn = redis.call('INCR', SCHED_TURN)
        if redis.call('ZCARD', pages) == 0 then
          redis.call('HDEL', SCHED_SINCE, job)
          redis.call('ZREM', ring, job)
        else
          redis.call('ZADD', ring, turn, job)
        end
        if redis.call('ZCARD', ring) == 0 then
          redis.call('ZREM', tenants, tenant)
        else
          redis.call('ZADD', tenants, turn, tenant)
        end
        redis.call('ZADD', SCHED_LEASES, now + lease_ms, job .. ':' .. index)
        local tries = redis.call('HGET', """
    + _lua_key(keys.attempts, "job")
    + """, 'try:' .. index)
        out[#out + 1] = job
        out[#out + 1] = index
        out[#out + 1] = 1 + tonumber(tries or '0')
        out[#out + 1] = redis.call('EXISTS', """
    + _lua_key(keys.cancel, "job")
    + """)
        out[#out + 1] = redis.call('HEXISTS', """
    + _lua_key(keys.pages, "job")
    + """, tostring(index + 1))
      end
    end
  end
end
sched_reset_if_idle()
local first = redis.call('ZRANGE', SCHED_LEASES, 0, 0, 'WITHSCORES')
if #first > 0 then out[1] = first[2] end
return out
"""
)

# ARGV: the new deadline (ms), then the lease members this worker holds. Renews only leases that still
# exist (one that lapsed went back to its job). Returns the jobs among them that were asked to stop.
_RENEW = (
    FUNCTIONS
    + """
local stopped, seen = {}, {}
for i = 2, #ARGV do
  redis.call('ZADD', SCHED_LEASES, 'XX', ARGV[1], ARGV[i])
  local job = sched_split(ARGV[i])
  if job and not seen[job] then
    seen[job] = true
    if redis.call('EXISTS', """
    + _lua_key(keys.cancel, "job")
    + """) == 1 then stopped[#stopped + 1] = job end
  end
end
return stopped
"""
)

# ARGV: the lease member. Returns 1 when its job was asked to stop: a cancel that saw this lease left
# the ending of the job to this worker.
_RELEASE = (
    FUNCTIONS
    + """
redis.call('ZREM', SCHED_LEASES, ARGV[1])
local job = sched_split(ARGV[1])
return redis.call('EXISTS', """
    + _lua_key(keys.cancel, "job")
    + """)
"""
)

# ARGV: now (ms), then lease members. Each page still leased goes back to the front of its job's turn.
_HAND_BACK = (
    FUNCTIONS
    + """
local now = tonumber(ARGV[1])
local back = 0
for i = 2, #ARGV do
  if redis.call('ZREM', SCHED_LEASES, ARGV[i]) == 1 then
    local job, index = sched_split(ARGV[i])
    if job then back = back + sched_requeue(job, index, now) end
  end
end
if back > 0 then redis.call('PUBLISH', SCHED_WAKE, '1') end
return back
"""
)

# ARGV: job, tenant, priority. Takes the job's waiting pages out; returns 1 when a page of it is leased
# (a worker is on it, and will end the job), else 0.
_CANCEL = (
    FUNCTIONS
    + """
sched_unschedule(ARGV[1], ARGV[2], ARGV[3])
return sched_job_leased(ARGV[1]) and 1 or 0
"""
)

# ARGV: now (ms), job, tenant, priority, then the indices of its pages not stored. For a live job with
# nothing waiting and nothing leased (its entries were lost: a Redis restart without persistence), those
# pages wait again. Returns how many (0: the job is not lost).
_RECOVER = (
    FUNCTIONS
    + """
local now, job, tenant, prio = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4]
if not sched_live(job) or #ARGV < 5 then return 0 end
if redis.call('ZCARD', sched_pages_key(job)) > 0 or sched_job_leased(job) then return 0 end
for i = 5, #ARGV do redis.call('ZADD', sched_pages_key(job), ARGV[i], ARGV[i]) end
sched_activate(job, tenant, prio, now)
redis.call('PUBLISH', SCHED_WAKE, '1')
return #ARGV - 4
"""
)

# Returns priority, tenant, waiting pages, ms since its oldest waiting page waits, for each tenant in a
# turn (at most MAX_TENANTS_REPORTED per priority).
_WAITING = (
    FUNCTIONS
    + """
local out = {}
for _, prio in ipairs({'normal', 'low'}) do
  for _, tenant in ipairs(redis.call('ZRANGE', sched_tenants_key(prio), 0, """
    + str(MAX_TENANTS_REPORTED - 1)
    + """)) do
    local waiting, since = 0, nil
    for _, job in ipairs(redis.call('ZRANGE', sched_jobs_key(prio, tenant), 0, -1)) do
      waiting = waiting + redis.call('ZCARD', sched_pages_key(job))
      local at = tonumber(redis.call('HGET', SCHED_SINCE, job) or '')
      if at and (since == nil or at < since) then since = at end
    end
    for _, value in ipairs({prio, tenant, waiting, since or -1}) do out[#out + 1] = value end
  end
end
return out
"""
)


@dataclass(frozen=True)
class Claimed:
    """A page a worker slot now holds: run it, then release (or hand back) its lease."""

    job_id: str
    index: int  # 0-based
    tries: int  # 1 on the first run; one more for each lapse, hand-back or retry
    cancelled: bool = False  # its job was asked to stop (when claimed)
    stored: bool = False  # already stored (its worker died before it finished the job)

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
        self._add = redis.register_script(_ADD)
        self._claim = redis.register_script(_CLAIM)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        self._hand_back = redis.register_script(_HAND_BACK)
        self._cancel = redis.register_script(_CANCEL)
        self._recover = redis.register_script(_RECOVER)
        self._waiting = redis.register_script(_WAITING)

    async def add(self, job_id: str, tenant: str, priority: str, indices: Sequence[int]) -> int:
        """The job's pages wait for workers (nothing happens for a job that is no longer live)."""
        return int(await self._add(args=[_now_ms(), job_id, tenant, priority, *indices]))

    async def claim(self, count: int, lease_ms: int) -> tuple[list[Claimed], float | None]:
        """Up to `count` pages, in turn; and when the earliest lease lapses (epoch seconds), if any."""
        out = await self._claim(args=[count, _now_ms(), lease_ms])
        first = float(out[0])
        claimed = [
            Claimed(out[i].decode(), int(out[i + 1]), int(out[i + 2]), bool(out[i + 3]), bool(out[i + 4]))
            for i in range(1, len(out), 5)
        ]
        return claimed, (first / 1000 if first >= 0 else None)

    async def renew(self, leases: Sequence[str], lease_ms: int) -> list[str]:
        """Renew this worker's leases; the ids of their jobs that were asked to stop."""
        if not leases:
            return []
        stopped = await self._renew(args=[_now_ms() + lease_ms, *leases])
        return [job.decode() for job in stopped]

    async def release(self, lease: str) -> bool:
        """The page is done (stored, or its job ended): nothing of it is left to schedule. True when its
        job was asked to stop meanwhile (the caller ends it: the cancel counted on a worker to)."""
        return bool(await self._release(args=[lease]))

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
