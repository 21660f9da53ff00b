"""Where job records live in Redis, and how they change.

A job is a JSON object in Redis (`ocr:job:<id>`, see service/jobs/record.py). Every change
goes through one Lua script (service/jobs/scripts.py) that, atomically, checks the transition is
allowed, merges the change, keeps `progress` and `pages_done` from going backwards, appends the event
to the job's history and to its tenant's feed, keeps the tenant's set of active jobs, publishes the
event, and, when the change ends the job, starts the RESULT_TTL of everything the job stored and
queues its webhook. Because the history append and the publish happen together, an SSE reader that
subscribes first and then reads the history can never miss an event (see service/jobs/events.py).
Every other write to a job's keys goes through `write`, which keeps them within the job's lifetime.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable
from typing import Any

from arq.constants import default_queue_name, job_key_prefix
from redis.asyncio import Redis

from service import keys
from service.connections import serialize_job
from service.errors import NotFound, TooManyJobs
from service.jobs import scripts
from service.jobs.record import TERMINAL, Job, JobRef, looks_like_job_id
from service.jobs.schedule import Schedule
from service.jobs.units import DELIVER_WEBHOOK, UNIT_EXPIRES_MS, webhook_arq_id

_TERMINAL_ARG = ",".join(sorted(TERMINAL))
# Where a listing stopped: (creation time in ms, the last job's id, or None for "below that ms").
ListCursor = tuple[int, str | None]
JOB_HISTORY_EVENTS = 500
FEED_HISTORY_EVENTS = 1000
_KWARGS = "<kwargs>"

# One command for the write script: the command's name, its key, then its other arguments.
Command = tuple[str | bytes | int | float, ...]


class AlreadySubmitted(Exception):
    """The job's Idempotency-Key is taken already, by the job `job_id` whose submission had `fingerprint`."""

    def __init__(self, record: bytes) -> None:
        job_id, _, fingerprint = record.decode().partition(" ")
        super().__init__(job_id)
        self.job_id = job_id
        self.fingerprint = fingerprint


def too_many_jobs(max_active: int | None) -> TooManyJobs:
    return TooManyJobs(
        f"This tenant already has {max_active} queued or running jobs; retry when some finish.", retry_after_s=5
    )


class JobStore:
    """Reads and changes job records. Shared by the web process and the workers."""

    def __init__(self, redis: Redis, *, ttl_s: int) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self._apply = redis.register_script(scripts.APPLY_CHANGE)
        self._create = redis.register_script(scripts.CREATE)
        self._write = redis.register_script(scripts.WRITE)
        self._delete = redis.register_script(scripts.DELETE)
        # The fair scheduler of the jobs' pages, whose entries the job-ending change also takes out.
        self.schedule = Schedule(redis)

    async def create(
        self,
        job: Job,
        *,
        tenant: str,
        meta: dict[str, str],
        document: bytes | None,
        max_active: int | None = None,
        ttl_s: int | None = None,
    ) -> Job:
        """Store a new job, its meta and document in one step. With `max_active`, the tenant's quota is
        checked in that same step (TooManyJobs when full). A job created finished (a cache hit) keeps
        its keys `ttl_s` (default RESULT_TTL).

        A meta with `idempotency_key` (the key's Redis name) and `idempotency` (the submission's
        fingerprint) takes that key in the same step, or raises AlreadySubmitted when a living job has it.
        """
        job_id = job["id"]
        fields = [item for pair in ({"tenant": tenant} | meta).items() for item in pair]
        idempotency = meta.get("idempotency_key")
        extra = [
            "" if max_active is None else max_active,
            int(time.time() * 1000),
            "0" if document is None else "1",
            document or b"",
            f"{job_id} {meta['idempotency']}" if idempotency else "",
            *fields,
        ]
        out = await self._create(
            keys=self._change_keys(job_id, tenant) + ([idempotency] if idempotency else []),
            args=self._change_args(job_id, tenant, job, "-", ttl_s) + extra,
        )
        if out == -1:
            raise too_many_jobs(max_active)
        if isinstance(out, list):
            raise AlreadySubmitted(out[0])
        assert out, "a fresh job id cannot exist already"
        created: Job = json.loads(out)
        return created

    async def change(
        self, job_id: str, tenant: str, change: dict[str, Any], *, allowed_from: Iterable[str] | str = ""
    ) -> Job | None:
        """Merge `change` into the job and publish it; None when the job is gone or not in `allowed_from`."""
        allowed = allowed_from if isinstance(allowed_from, str) else ",".join(allowed_from)
        out = await self._apply(
            keys=self._change_keys(job_id, tenant), args=self._change_args(job_id, tenant, change, allowed, None)
        )
        return json.loads(out) if out else None

    async def write(self, job_id: str, *commands: Command) -> Any:
        """Run `commands` on the job's own keys (each: name, key, arguments) and give the keys they write
        the job's lifetime: no expiry while it lives, what is left of its RESULT_TTL once it ended, and
        deleted with it if it is gone. The last command's answer."""
        args: list[str | bytes | int | float] = []
        for command in commands:
            args += [len(command), *command]
        return await self._write(keys=[keys.job(job_id), *{str(c[1]): None for c in commands}], args=args)

    def _change_keys(self, job_id: str, tenant: str) -> list[str]:
        return [
            keys.job(job_id),
            keys.seq(job_id),
            keys.events(job_id),
            keys.feed(tenant),
            keys.feed_seq(tenant),
            keys.tenant_active(tenant),
            keys.tenant_jobs(tenant),
            keys.meta(job_id),
            default_queue_name,
            job_key_prefix + webhook_arq_id(job_id),
            keys.document(job_id),
            *keys.job_keys(job_id),
        ]

    def _change_args(
        self, job_id: str, tenant: str, change: dict[str, Any], allowed: str, ttl_s: int | None
    ) -> list[str | bytes | int]:
        now_ms = int(time.time() * 1000)
        # Only a change that sets a terminal status can end the job and so queue its webhook. The script
        # puts the delivery's keyword arguments (the job as it ended, the URL) between the two halves.
        webhook = ""
        if change.get("status") in TERMINAL:
            envelope = {"t": None, "f": DELIVER_WEBHOOK, "a": [job_id], "k": _KWARGS, "et": now_ms}
            webhook = json.dumps(serialize_job(envelope).decode().split(json.dumps(_KWARGS)))
        return [
            json.dumps(change),
            allowed,
            self.ttl_s if ttl_s is None else ttl_s,
            keys.EVENTS_CHANNEL,
            job_id,
            tenant,
            JOB_HISTORY_EVENTS,
            FEED_HISTORY_EVENTS,
            keys.METRICS,
            _TERMINAL_ARG,
            webhook_arq_id(job_id),
            webhook,
            now_ms,
            self.ttl_s,
            UNIT_EXPIRES_MS,
        ]

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
            args=[job_id, tenant, keys.EVENTS_CHANNEL, FEED_HISTORY_EVENTS, self.ttl_s, *keys.job_keys(job_id)],
        )
