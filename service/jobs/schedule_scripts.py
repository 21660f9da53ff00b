"""The Lua scripts behind the fair scheduler (service/jobs/schedule.py, whose docstring tells the
structure they keep); FUNCTIONS are shared with the job-change script (service/jobs/scripts.py)."""

from __future__ import annotations

from collections.abc import Callable

from service import keys

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
local SCHED_WAKE, SCHED_BATCH = '{keys.SCHED_WAKE_CHANNEL}', '{keys.SCHED_BATCH}'
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
    redis.call('DEL', SCHED_TURN, SCHED_BATCH)
  end
end

local function sched_unschedule(job, tenant, prio)
  redis.call('DEL', sched_pages_key(job))
  redis.call('HDEL', SCHED_SINCE, job)
  redis.call('HDEL', SCHED_BATCH, job)
  local ring = sched_jobs_key(prio, tenant)
  redis.call('ZREM', ring, job)
  if redis.call('ZCARD', ring) == 0 then redis.call('ZREM', sched_tenants_key(prio), tenant) end
  sched_reset_if_idle()
end

local function sched_owner(job)
  local owner = redis.call('HMGET', {_lua_key(keys.meta, "job")}, 'tenant', 'priority')
  return owner[1], owner[2] or 'normal'
end

-- A page back at the front of its job's turn (a lapsed lease, a hand-back, a retry due): one more try
-- (none for a page of a unit that was put back unread).
local function sched_requeue(job, index, now_ms, count_try)
  if not sched_live(job) then return 0 end
  local tenant, prio = sched_owner(job)
  if not tenant then return 0 end
  if count_try then redis.call('HINCRBY', {_lua_key(keys.attempts, "job")}, 'try:' .. index, 1) end
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
ADD = (
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

# ARGV: how many units, now (ms), lease (ms). Lapsed leases are put back first. Returns the earliest
# lease deadline (ms, -1 when none: when this worker should look again even if nobody wakes it), then
# for each page claimed: job, index, try, whether the job was asked to stop, whether the page is stored,
# and the unit it belongs to (1, 2 ...: one page, or up to a job's `ocr:sched:batch` pages of one job).
CLAIM = (
    FUNCTIONS
    + """
local n, now, lease_ms = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
for _, member in ipairs(redis.call('ZRANGEBYSCORE', SCHED_LEASES, '-inf', now, 'LIMIT', 0, """
    + str(RECLAIM_BATCH)
    + """)) do
  redis.call('ZREM', SCHED_LEASES, member)
  local job, index = sched_split(member)
  if job then sched_requeue(job, index, now, true) end
end
local out = {-1}
local steps, units = 0, 0
for _, prio in ipairs({'normal', 'low'}) do
  local tenants = sched_tenants_key(prio)
  while units < n and steps < 10 * n + 100 do
    steps = steps + 1
    local tenant = redis.call('ZRANGE', tenants, 0, 0)[1]
    if not tenant then break end
    local ring = sched_jobs_key(prio, tenant)
    local job = redis.call('ZRANGE', ring, 0, 0)[1]
    if not job then
      redis.call('ZREM', tenants, tenant)
    else
      local pages = sched_pages_key(job)
      local popped = redis.call('ZPOPMIN', pages, tonumber(redis.call('HGET', SCHED_BATCH, job) or '1'))
      if #popped == 0 or not sched_live(job) then
        sched_unschedule(job, tenant, prio)
      else
        units = units + 1
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
        local cancelled = redis.call('EXISTS', """
    + _lua_key(keys.cancel, "job")
    + """)
        for i = 1, #popped, 2 do
          local index = popped[i]
          redis.call('ZADD', SCHED_LEASES, now + lease_ms, job .. ':' .. index)
          local tries = redis.call('HGET', """
    + _lua_key(keys.attempts, "job")
    + """, 'try:' .. index)
          out[#out + 1] = job
          out[#out + 1] = index
          out[#out + 1] = 1 + tonumber(tries or '0')
          out[#out + 1] = cancelled
          out[#out + 1] = redis.call('HEXISTS', """
    + _lua_key(keys.pages, "job")
    + """, tostring(index + 1))
          out[#out + 1] = units
        end
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
RENEW = (
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

# ARGV: now (ms), how many leases to put back, those leases, then the leases of pages done; all of one
# job. Leases put back go to the front of the job's turn without a try counted, and the job's pages are
# claimed one at a time again. Returns 1 when the job was asked to stop: a cancel that saw these leases
# left the ending of the job to this worker.
RELEASE = (
    FUNCTIONS
    + """
local now, back = tonumber(ARGV[1]), tonumber(ARGV[2])
local job
for i = 3, #ARGV do
  local removed = redis.call('ZREM', SCHED_LEASES, ARGV[i])
  local index
  job, index = sched_split(ARGV[i])
  if i < 3 + back and removed == 1 and job then
    redis.call('HDEL', SCHED_BATCH, job)
    sched_requeue(job, index, now, false)
  end
end
if back > 0 then redis.call('PUBLISH', SCHED_WAKE, '1') end
if not job then return 0 end
return redis.call('EXISTS', """
    + _lua_key(keys.cancel, "job")
    + """)
"""
)

# ARGV: now (ms), then lease members. Each page still leased goes back to the front of its job's turn.
HAND_BACK = (
    FUNCTIONS
    + """
local now = tonumber(ARGV[1])
local back = 0
for i = 2, #ARGV do
  if redis.call('ZREM', SCHED_LEASES, ARGV[i]) == 1 then
    local job, index = sched_split(ARGV[i])
    if job then back = back + sched_requeue(job, index, now, true) end
  end
end
if back > 0 then redis.call('PUBLISH', SCHED_WAKE, '1') end
return back
"""
)

# ARGV: job, tenant, priority. Takes the job's waiting pages out; returns 1 when a page of it is leased
# (a worker is on it, and will end the job), else 0.
CANCEL = (
    FUNCTIONS
    + """
sched_unschedule(ARGV[1], ARGV[2], ARGV[3])
return sched_job_leased(ARGV[1]) and 1 or 0
"""
)

# ARGV: now (ms), job, tenant, priority, then the indices of its pages not stored. For a live job with
# nothing waiting and nothing leased (its entries were lost: a Redis restart without persistence), those
# pages wait again. Returns how many (0: the job is not lost).
RECOVER = (
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
WAITING = (
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
