"""Where job records live in Redis, and how they change.

A job is a JSON object in Redis (`ocr:job:<id>`, see service/jobs/record.py). Every change
goes through one Lua script that, atomically, checks the transition is allowed, merges the change,
keeps `progress` and `pages_done` from going backwards, appends the event to the job's history and
to its tenant's feed, keeps the tenant's set of active jobs, and publishes the event. Because the
history append and the publish happen together, an SSE reader that subscribes first and then reads
the history can never miss an event (see service/jobs/events.py).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from service import keys
from service.errors import NotFound
from service.jobs.record import TERMINAL, Job, JobRef, looks_like_job_id

_TERMINAL_ARG = ",".join(sorted(TERMINAL))
# Where a listing stopped: (creation time in ms, the last job's id, or None for "below that ms").
ListCursor = tuple[int, str | None]
JOB_HISTORY_EVENTS = 500
FEED_HISTORY_EVENTS = 1000

# KEYS: job, seq, events, feed, feed seq, tenant active set
# ARGV: change JSON, allowed current statuses ("" any, "-" the job must not exist yet), ttl seconds,
#       channel, job id, tenant, job history length, feed history length, the metrics counters hash,
#       the terminal statuses (comma-separated)
_APPLY_CHANGE = """
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
  -- progress never goes backwards: late page results of a concurrent range must not undo newer ones
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
local ttl = tonumber(ARGV[3])
redis.call('SET', KEYS[1], out, 'EX', ttl)
local seq = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ttl)
redis.call('RPUSH', KEYS[3], '{"seq":' .. seq .. ',"event":"' .. event .. '","job":' .. out .. '}')
redis.call('LTRIM', KEYS[3], -tonumber(ARGV[7]), -1)
redis.call('EXPIRE', KEYS[3], ttl)
local tseq = redis.call('INCR', KEYS[5])
-- the feed's counter outlives any one job, so ids keep increasing for reconnecting clients
redis.call('EXPIRE', KEYS[5], ttl * 24)
redis.call('RPUSH', KEYS[4], '{"seq":' .. tseq .. ',"event":"' .. event .. '","job":' .. out .. '}')
redis.call('LTRIM', KEYS[4], -tonumber(ARGV[8]), -1)
redis.call('EXPIRE', KEYS[4], ttl)
if string.find(',' .. ARGV[10] .. ',', ',' .. job['status'] .. ',', 1, true) then
  redis.call('SREM', KEYS[6], ARGV[5])
else
  redis.call('SADD', KEYS[6], ARGV[5])
  redis.call('EXPIRE', KEYS[6], ttl)
end
redis.call('PUBLISH', ARGV[4], '{"tenant":"' .. ARGV[6] .. '","id":"' .. ARGV[5] .. '","seq":' .. seq
  .. ',"tseq":' .. tseq .. ',"event":"' .. event .. '","job":' .. out .. '}')
return out
"""


# KEYS: feed, feed seq, tenant jobs, tenant active; ARGV: job id, tenant, channel, feed history length,
# feed counter ttl, then every per-job key to delete
_DELETE = """
redis.call('DEL', unpack(ARGV, 6))
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('SREM', KEYS[4], ARGV[1])
local tseq = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[5]))
local job = '{"id":"' .. ARGV[1] .. '"}'
redis.call('RPUSH', KEYS[1], '{"seq":' .. tseq .. ',"event":"deleted","job":' .. job .. '}')
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[4]), -1)
redis.call('PUBLISH', ARGV[3], '{"tenant":"' .. ARGV[2] .. '","id":"' .. ARGV[1] .. '","seq":0,"tseq":' .. tseq
  .. ',"event":"deleted","job":' .. job .. '}')
"""


class JobStore:
    """Reads and changes job records. Shared by the web process and the workers."""

    def __init__(self, redis: Redis, *, ttl_s: int) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self._apply = redis.register_script(_APPLY_CHANGE)
        self._delete = redis.register_script(_DELETE)

    async def create(self, job: Job, *, tenant: str, meta: dict[str, str], document: bytes | None) -> Job:
        job_id = job["id"]
        created_ms = int(datetime.now(UTC).timestamp() * 1000)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.meta(job_id), mapping={"tenant": tenant, **meta})
            pipe.expire(keys.meta(job_id), self.ttl_s)
            if document is not None:
                pipe.set(keys.document(job_id), document, ex=self.ttl_s)
            pipe.zadd(keys.tenant_jobs(tenant), {job_id: created_ms})
            pipe.expire(keys.tenant_jobs(tenant), self.ttl_s * 2)
            await pipe.execute()
        created = await self.change(job_id, tenant, job, allowed_from="-")
        assert created is not None, "a fresh job id cannot exist already"
        return created

    async def change(
        self, job_id: str, tenant: str, change: dict[str, Any], *, allowed_from: Iterable[str] | str = ""
    ) -> Job | None:
        """Merge `change` into the job and publish it; None when the job is gone or not in `allowed_from`."""
        allowed = allowed_from if isinstance(allowed_from, str) else ",".join(allowed_from)
        out = await self._apply(
            keys=[
                keys.job(job_id),
                keys.seq(job_id),
                keys.events(job_id),
                keys.feed(tenant),
                keys.feed_seq(tenant),
                keys.tenant_active(tenant),
            ],
            args=[
                json.dumps(change),
                allowed,
                self.ttl_s,
                keys.EVENTS_CHANNEL,
                job_id,
                tenant,
                JOB_HISTORY_EVENTS,
                FEED_HISTORY_EVENTS,
                keys.METRICS,
                _TERMINAL_ARG,
            ],
        )
        return json.loads(out) if out else None

    async def get(self, job_id: str) -> JobRef | None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(keys.job(job_id))
            pipe.hgetall(keys.meta(job_id))
            raw, meta = await pipe.execute()
        if not raw or not meta:
            return None
        meta = {k.decode(): v.decode() for k, v in meta.items()}
        return JobRef(job=json.loads(raw), tenant=meta.pop("tenant", ""), meta=meta)

    async def get_for_tenant(self, job_id: str, tenant: str) -> JobRef:
        """The job if it belongs to `tenant`; another tenant's job is NotFound, exactly like an unknown id."""
        ref = await self.get(job_id) if looks_like_job_id(job_id) else None
        if ref is None or not secrets.compare_digest(ref.tenant, tenant):
            raise NotFound(f"No job with id {job_id!r}.")
        return ref

    async def list_for_tenant(
        self, tenant: str, *, status: str | None, limit: int, cursor: ListCursor | None
    ) -> tuple[list[Job], ListCursor | None]:
        """Newest first: by creation time, then by id, so that jobs created in the same millisecond are
        each listed once. The cursor is (creation ms, id) of the previous page's last job; with no id,
        the page starts below that millisecond."""
        found: list[Job] = []
        position = cursor
        batch = max(limit * 2, 50)
        while len(found) < limit:
            entries = await self._entries_after(tenant, position, batch)
            if not entries:
                return found, None
            raws = await self.redis.mget([keys.job(member) for member, _ in entries])
            for (member, created_ms), raw in zip(entries, raws, strict=True):
                position = (created_ms, member)
                if raw is None:
                    continue
                job = json.loads(raw)
                if status is None or job["status"] == status:
                    found.append(job)
                    if len(found) == limit:
                        return found, position
            if len(entries) < batch:
                return found, None
        return found, None

    async def _entries_after(self, tenant: str, position: ListCursor | None, batch: int) -> list[tuple[str, int]]:
        """Up to `batch` (id, creation ms) of the index, in listing order, after `position`. Redis orders
        equal scores by member, descending under ZREVRANGEBYSCORE: that order is the tie-breaker."""
        if position is None:
            upper = "+inf"
        else:
            created_ms, last_id = position
            upper = str(created_ms) if last_id is not None else f"({created_ms}"
        entries: list[tuple[str, int]] = []
        offset = 0
        while len(entries) < batch:
            page = await self.redis.zrevrangebyscore(
                keys.tenant_jobs(tenant), upper, "-inf", start=offset, num=batch, withscores=True
            )
            offset += len(page)
            for member, score in page:
                entry = (member.decode(), int(score))
                if position is not None and position[1] is not None and entry[1] == position[0]:
                    if entry[0] >= position[1]:
                        continue  # on or before the cursor among jobs of the same millisecond
                entries.append(entry)
            if len(page) < batch:
                break
        return entries[:batch]

    async def active_count(self, tenant: str) -> int:
        return int(await self.redis.scard(keys.tenant_active(tenant)))  # type: ignore[misc]

    async def delete(self, job_id: str, tenant: str) -> None:
        """Remove the job and everything stored for it, and tell the tenant's feed."""
        await self._delete(
            keys=[keys.feed(tenant), keys.feed_seq(tenant), keys.tenant_jobs(tenant), keys.tenant_active(tenant)],
            args=[job_id, tenant, keys.EVENTS_CHANNEL, FEED_HISTORY_EVENTS, self.ttl_s * 24, *keys.job_keys(job_id)],
        )
