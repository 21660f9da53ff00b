"""The Lua scripts behind JobStore (service/jobs/store.py): each runs atomically inside Redis.

What they guarantee together:
- A job's record and every key stored for it live without expiry while the job is queued or running;
  the change that ends it gives all of them RESULT_TTL at once (`end_job`), so a live job can never
  vanish, and a finished one leaves nothing behind.
- A write to a per-job key after the end (a late page, a cancel that lost the race) takes the
  record's remaining lifetime (`_WRITE`), so it can neither outlive the job nor expire under it.
- The webhook's arq job is enqueued by the change that ends the job (`end_job`): however a job ends
  (a worker, a cancel in the web, a cache hit), it is queued exactly once, and no crash can fall
  between the end and the enqueue. It carries the job as it ended, so it survives the job's deletion.
- The tenant's indexes (job list, feed) never expire while one of its jobs is live (`keep_tenant`).
- The change that ends a job takes its pages out of the scheduler (service/jobs/schedule.py) in the
  same step: an ended job's pages are never claimed, and it leaves nothing there.
- Creating a job checks the tenant's quota in the same step (`_CREATE`), so a burst of submissions
  cannot all slip under it.
"""

from __future__ import annotations

from service.jobs import schedule_scripts

# The keys and arguments the change function reads (the create script appends more after them).
# KEYS: 1 job, 2 seq, 3 events, 4 feed, 5 feed seq, 6 tenant active set, 7 tenant jobs, 8 meta,
#       9 arq queue, 10 the webhook's arq job key, 11 the document, 12.. every per-job key (keys.job_keys)
# ARGV: 1 change JSON, 2 allowed current statuses ("" any, "-" the job must not exist yet),
#       3 seconds the job's keys live after its end, 4 channel, 5 job id, 6 tenant, 7 job history length,
#       8 feed history length, 9 the metrics counters hash, 10 the terminal statuses (comma-separated),
#       11 the webhook's arq job id, 12 its serialized arq job as a JSON array of the two strings before
#       and after its keyword arguments ("" when the change cannot end the job),
#       13 now (ms, the queue score), 14 seconds the tenant's indexes live after its last live job,
#       15 how long arq keeps a queued job (ms)
_KEEP_TENANT = """
-- The tenant's job list and feed live while any of its jobs does, then a while after the last one.
local function keep_tenant(active, index, feed, feed_seq, ttl)
  if redis.call('SCARD', active) > 0 then
    redis.call('PERSIST', index)
    redis.call('PERSIST', feed)
    redis.call('PERSIST', feed_seq)
  else
    redis.call('EXPIRE', index, ttl * 2)
    redis.call('EXPIRE', feed, ttl)
    -- the feed's counter outlives any one job, so ids keep increasing for reconnecting clients
    redis.call('EXPIRE', feed_seq, ttl * 24)
  end
end
"""

_FUNCTIONS = (
    _KEEP_TENANT
    + schedule_scripts.FUNCTIONS
    + """
local function is_terminal(status)
  return status ~= nil and string.find(',' .. ARGV[10] .. ',', ',' .. status .. ',', 1, true) ~= nil
end

-- The job just ended (`out`: the job object as it ended): everything of it now lives ARGV[3] seconds
-- (the record first, so its data never expires before it: a job that reads completed has its result),
-- it leaves the active set, and its webhook is queued.
local function end_job(out)
  local ttl = tonumber(ARGV[3])
  for i = 12, #KEYS do
    redis.call('EXPIRE', KEYS[i], ttl)
  end
  -- The job's Idempotency-Key (a tenant's key, named in its meta) lives exactly as long as the job.
  local idempotency = redis.call('HGET', KEYS[8], 'idempotency_key')
  if idempotency then redis.call('EXPIRE', idempotency, ttl) end
  redis.call('SREM', KEYS[6], ARGV[5])
  sched_unschedule(ARGV[5], ARGV[6], redis.call('HGET', KEYS[8], 'priority') or 'normal')
  local url = redis.call('HGET', KEYS[8], 'webhook_url')
  if ARGV[12] ~= '' and url and url ~= '' and redis.call('EXISTS', KEYS[10]) == 0 then
    -- arq's own enqueue (arq/connections.py enqueue_job): the serialized job under its key, the id in the
    -- queue. The delivery carries the job as it ended and its URL as keyword arguments, so deleting the
    -- job does not take its webhook with it; arq deletes them with the delivery.
    local envelope = cjson.decode(ARGV[12])
    local payload = envelope[1] .. '{"ended":' .. out .. ',"url":' .. cjson.encode(url) .. '}' .. envelope[2]
    redis.call('SET', KEYS[10], payload, 'PX', tonumber(ARGV[15]))
    redis.call('ZADD', KEYS[9], tonumber(ARGV[13]), ARGV[11])
  end
end

local function apply_change()
  local raw = redis.call('GET', KEYS[1])
  local job
  if ARGV[2] == '-' then
    if raw then return false end
    job = {}
  else
    if not raw then return false end
    job = cjson.decode(raw)
    if ARGV[2] ~= '' and not string.find(',' .. ARGV[2] .. ',', ',' .. job['status'] .. ',', 1, true) then
      return false
    end
  end
  local old_status = job['status']
  local change = cjson.decode(ARGV[1])
  for k, v in pairs(change) do
    -- progress never goes backwards: late results of pages run concurrently must not undo newer ones
    if (k == 'progress' or k == 'pages_done') and type(job[k]) == 'number' and type(v) == 'number' and v < job[k] then
    else
      job[k] = v
    end
  end
  local event = 'progress'
  if job['status'] ~= old_status then
    event = 'status'
    redis.call('HINCRBY', ARGV[9], 'jobs_' .. job['status'], 1)
  end
  local out = cjson.encode(job)
  if is_terminal(old_status) then
    -- a finished job's later changes (its webhook's outcome) keep the lifetime its end gave it
    redis.call('SET', KEYS[1], out, 'KEEPTTL')
  else
    redis.call('SET', KEYS[1], out)
  end
  local seq = redis.call('INCR', KEYS[2])
  redis.call('RPUSH', KEYS[3], '{"seq":' .. seq .. ',"event":"' .. event .. '","job":' .. out .. '}')
  redis.call('LTRIM', KEYS[3], -tonumber(ARGV[7]), -1)
  if is_terminal(job['status']) then
    if not is_terminal(old_status) then end_job(out) end
  else
    redis.call('SADD', KEYS[6], ARGV[5])
    redis.call('PERSIST', KEYS[6])
  end
  local tseq = redis.call('INCR', KEYS[5])
  redis.call('RPUSH', KEYS[4], '{"seq":' .. tseq .. ',"event":"' .. event .. '","job":' .. out .. '}')
  redis.call('LTRIM', KEYS[4], -tonumber(ARGV[8]), -1)
  keep_tenant(KEYS[6], KEYS[7], KEYS[4], KEYS[5], tonumber(ARGV[14]))
  redis.call('PUBLISH', ARGV[4], '{"tenant":"' .. ARGV[6] .. '","id":"' .. ARGV[5] .. '","seq":' .. seq
    .. ',"tseq":' .. tseq .. ',"event":"' .. event .. '","job":' .. out .. '}')
  return out
end
"""
)

APPLY_CHANGE = _FUNCTIONS + "return apply_change()\n"

# The change's KEYS and ARGV, then ARGV: 16 the most live jobs the tenant may have ("" no limit),
# 17 the creation time (ms, the listing's score), 18 "1" when a document follows, 19 the document,
# 20 the job's Idempotency-Key record ("" without one; then its key is the last of KEYS), 21.. the meta
# hash's fields and values. Returns -1 when the quota is full, {the record} when the Idempotency-Key is
# taken already (by a job that lives: the record expires with it), else what a change returns.
CREATE = (
    _FUNCTIONS
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
-- An Idempotency-Key is checked and taken in this one step: of concurrent identical submissions, one
-- creates the job.
if ARGV[20] ~= '' then
  local earlier = redis.call('GET', KEYS[#KEYS])
  if earlier then return {earlier} end
end
if ARGV[16] ~= '' and redis.call('SCARD', KEYS[6]) >= tonumber(ARGV[16]) then return -1 end
if ARGV[20] ~= '' then redis.call('SET', KEYS[#KEYS], ARGV[20]) end
redis.call('HSET', KEYS[8], unpack(ARGV, 21))
if ARGV[18] == '1' then redis.call('SET', KEYS[11], ARGV[19]) end
redis.call('ZADD', KEYS[7], tonumber(ARGV[17]), ARGV[5])
return apply_change()
"""
)

# Writes to a job's own keys. KEYS: 1 the job record, 2.. the keys the commands write.
# ARGV: the commands, each as its argument count followed by the command and its arguments.
# Returns the last command's answer.
WRITE = """
local answer
local i = 1
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  answer = redis.call(unpack(ARGV, i + 1, i + n))
  i = i + n + 1
end
-- The written keys share the record's lifetime: none while the job lives, the rest of it once it
-- ended, and none at all once the record is gone (a deleted or expired job).
local ttl_ms = redis.call('PTTL', KEYS[1])
for k = 2, #KEYS do
  if ttl_ms == -2 then
    redis.call('DEL', KEYS[k])
  elseif ttl_ms == -1 then
    redis.call('PERSIST', KEYS[k])
  else
    redis.call('PEXPIRE', KEYS[k], ttl_ms)
  end
end
return answer
"""

# KEYS: feed, feed seq, tenant jobs, tenant active; ARGV: job id, tenant, channel, feed history length,
# the tenant's indexes ttl, then every per-job key to delete
DELETE = (
    _KEEP_TENANT
    + """
-- ARGV[7] is the job's meta (keys.job_keys): its Idempotency-Key goes with it.
local idempotency = redis.call('HGET', ARGV[7], 'idempotency_key')
if idempotency then redis.call('DEL', idempotency) end
redis.call('DEL', unpack(ARGV, 6))
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('SREM', KEYS[4], ARGV[1])
local tseq = redis.call('INCR', KEYS[2])
local job = '{"id":"' .. ARGV[1] .. '"}'
redis.call('RPUSH', KEYS[1], '{"seq":' .. tseq .. ',"event":"deleted","job":' .. job .. '}')
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[4]), -1)
keep_tenant(KEYS[4], KEYS[3], KEYS[1], KEYS[2], tonumber(ARGV[5]))
redis.call('PUBLISH', ARGV[3], '{"tenant":"' .. ARGV[2] .. '","id":"' .. ARGV[1] .. '","seq":0,"tseq":' .. tseq
  .. ',"event":"deleted","job":' .. job .. '}')
"""
)
