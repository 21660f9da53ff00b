"""The content cache: the same bytes with the same options, from the same tenant, are OCRed once.

Entries are per tenant (`ocr:cache:<tenant>:<hash>`), so one tenant can never learn, even by timing
a hit, that another sent a document. An entry points at the job that produced the result and
expires with it; deleting that job removes the entry, so a deleted result is never served.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from redis.asyncio import Redis

from service import keys
from service.jobs.record import COMPLETED, Job, new_job, new_job_id, utc_now
from service.jobs.store import JobStore

COPIED_ON_HIT = (keys.result, keys.pages, keys.document)


def content_key(document: bytes, options: dict[str, Any]) -> str:
    """The same bytes read the same way; how soon they are read (`priority`) does not change the result."""
    digest = hashlib.sha256(document)
    digest.update(json.dumps({k: v for k, v in options.items() if k != "priority"}, sort_keys=True).encode())
    return digest.hexdigest()


class ContentCache:
    def __init__(self, redis: Redis, store: JobStore) -> None:
        self.redis = redis
        self.store = store

    async def lookup(self, tenant: str, key: str) -> str | None:
        """The id of a completed job whose result is still stored, counting the hit or the miss."""
        source_id = await self.redis.get(keys.cache_entry(tenant, key))
        found = None
        if source_id is not None:
            source_id = source_id.decode()
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.get(keys.job(source_id))
                pipe.exists(keys.result(source_id))
                job_raw, has_result = await pipe.execute()
            if job_raw and has_result and json.loads(job_raw)["status"] == COMPLETED:
                found = source_id
        await self.redis.hincrby(keys.cache_stats(tenant), "hits" if found else "misses", 1)  # type: ignore[misc]
        await self.redis.expire(keys.cache_stats(tenant), self.store.ttl_s * 24)
        return found

    async def remember(self, tenant: str, key: str, job_id: str) -> None:
        await self.redis.set(keys.cache_entry(tenant, key), job_id, ex=self.store.ttl_s)

    async def serve_hit(self, source_id: str, *, tenant: str, filename: str, meta: dict[str, str]) -> Job | None:
        """A new completed job (`cached: true`) carrying a copy of the source job's result; no OCR runs.

        The copy lives no longer than the source's result would: the cache never outlives RESULT_TTL.
        All of the copy's keys, its record included, expire together (the create that ends it sets
        them at once), so a copy that reads completed always has its result.
        """
        source = await self.store.get(source_id)
        remaining_s = await self.redis.ttl(keys.result(source_id))
        if source is None or remaining_s is None or remaining_s <= 0:
            return None
        job_id = new_job_id()
        job = new_job(job_id, filename=filename, options=source.job["options"], pages_total=None)
        now = utc_now()
        job |= {
            "status": COMPLETED,
            "progress": 100,
            "message": "Completed (cached result)",
            "pages_total": source.job["pages_total"],
            "pages_done": source.job["pages_total"],
            "cached": True,
            "started_at": now,
            "finished_at": now,
        }
        # The copies expire on their own should this process stop before the job is created.
        async with self.redis.pipeline(transaction=True) as pipe:
            for key in COPIED_ON_HIT:
                pipe.copy(key(source_id), key(job_id))
                pipe.expire(key(job_id), remaining_s)
            await pipe.execute()
        # The result object names its job.
        raw = await self.redis.get(keys.result(job_id))
        if raw is None:
            return None
        result = json.loads(raw)
        result["id"] = job_id
        await self.redis.set(keys.result(job_id), json.dumps(result), ex=remaining_s)
        return await self.store.create(job, tenant=tenant, meta=meta, document=None, ttl_s=remaining_s)

    async def forget_job(self, tenant: str, key: str, job_id: str) -> None:
        """Drop the entry if it points at `job_id` (the job is being deleted)."""
        entry = keys.cache_entry(tenant, key)
        if (await self.redis.get(entry)) == job_id.encode():
            await self.redis.delete(entry)

    async def stats(self, tenant: str) -> dict[str, Any]:
        entries = 0
        size = 0
        async for entry in self.redis.scan_iter(match=keys.cache_pattern(tenant), count=500):
            job_id = await self.redis.get(entry)
            if job_id is None:
                continue
            # The result's text lives in its pages; their stored bytes are counted as they are stored.
            if await self.redis.exists(keys.result(job_id.decode())):
                entries += 1
                size += int(await self.redis.hget(keys.text_bytes(job_id.decode()), "total") or 0)  # type: ignore[misc]
        counts = await self.redis.hgetall(keys.cache_stats(tenant))  # type: ignore[misc]
        hits = int(counts.get(b"hits", 0))
        misses = int(counts.get(b"misses", 0))
        lookups = hits + misses
        return {
            "entries": entries,
            "bytes": size,
            "hits": hits,
            "misses": misses,
            "hit_ratio": round(hits / lookups, 4) if lookups else 0.0,
        }

    async def clear(self, tenant: str) -> None:
        async for entry in self.redis.scan_iter(match=keys.cache_pattern(tenant), count=500):
            await self.redis.delete(entry)
