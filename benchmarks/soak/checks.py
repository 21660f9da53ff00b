"""Checks: every job's end seen (feeds and a sweep), each result's text its own, Redis and the logs."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import Counter
from pathlib import Path

import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError

from benchmarks import sse
from benchmarks.processes import (
    tree_rss_kb,
)
from benchmarks.soak.load import Load
from benchmarks.soak.state import Job, SoakState


class Checks(Load):
    """Following the jobs to their ends (feeds, a sweep) and checking each result's text."""

    async def check_results(self, client: httpx.AsyncClient) -> None:
        """Each completed job's text against its markers; then the deletions."""
        while not (self.stopping.is_set() and self.checks.empty()):
            try:
                job_id = await asyncio.wait_for(self.checks.get(), timeout=1)
            except TimeoutError:
                continue
            job, end = self.jobs.get(job_id), self.ends.get(job_id)
            if job is None or end is None:
                continue
            if not job.checked and end.status == "completed":
                job.checked = True
                answer = await self.request_retrying(
                    client, "GET", f"/jobs/{job_id}/result", job.tenant, params={"format": "text"}
                )
                if answer is None:
                    self.results["result request failed"] += 1
                elif answer.status_code == 200:
                    self.check_text(job, answer.text)
                else:
                    self.results[f"result answered {answer.status_code}"] += 1
            if job.delete and job_id not in self.deleted:
                answer = await self.request_retrying(client, "DELETE", f"/jobs/{job_id}", job.tenant)
                self.delete_answers[answer.status_code if answer is not None else 0] += 1
                self.deleted.add(job_id)

    async def follow_feed(self, tenant: str) -> None:
        """The tenant's /events, reconnecting with Last-Event-ID whenever it ends (a Redis restart ends it)."""
        last_id: int | None = None
        host, port = "127.0.0.1", self.service.port
        for _ in range(10_000):
            if self.stopping.is_set():
                return
            stream = None
            try:
                headers = self.auth(tenant) | ({"Last-Event-ID": str(last_id)} if last_id is not None else {})
                stream = await sse.open_stream(host, port, "/events", headers=headers)
                if stream.status == 200:
                    while not self.stopping.is_set():
                        event = await stream.next_event()
                        if event is None:
                            break
                        stream.events.clear()
                        self.events_seen += 1
                        if event.id is not None:
                            last_id = event.id
                        if event.name == "snapshot":
                            for job in event.data.get("jobs", []):
                                self.record_end(job, "feed")
                        elif event.name != "deleted":
                            self.record_end(event.data, "feed")
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
                pass
            finally:
                if stream is not None:
                    stream.close()
            self.feed_reconnects += 1
            await asyncio.sleep(0.5)

    async def sweep(self, client: httpx.AsyncClient) -> None:
        """Poll the jobs the feed has not ended for a while: a missed event must not count as a lost job."""
        while not self.stopping.is_set():
            now = time.time()
            late = [
                job
                for job_id in list(self.open)
                if now - (job := self.jobs[job_id]).submitted_wall > 15 and job_id not in self.deleted
            ][:200]
            semaphore = asyncio.Semaphore(8)

            async def poll(job: Job, semaphore: asyncio.Semaphore = semaphore) -> None:
                async with semaphore:
                    answer = await self.request(client, "GET", f"/jobs/{job.id}", job.tenant)
                if answer is None:
                    return
                if answer.status_code == 200:
                    self.record_end(answer.json(), "poll")
                elif answer.status_code == 404 and job.id not in self.ends:
                    self.vanished.add(job.id)
                    self.open.discard(job.id)

            await asyncio.gather(*(poll(j) for j in late))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), timeout=3)


# --- Redis figures ---------------------------------------------------------------------------------------

_ID = re.compile(r"[0-9a-f]{32,}")


def fold(key: str, tenants: list[str]) -> str:
    """A key's name with its job id and tenant folded: `ocr:job:<id>`, `ocr:feed:<tenant>`."""
    key = _ID.sub("<id>", key)
    key = re.sub(r"cron:cleanup:\d+", "cron:cleanup:<time>", key)
    for tenant in tenants:
        key = re.sub(rf"(?<=:){tenant}(?=$|:)", "<tenant>", key)
    return key


# Per-tenant keys that outlive every job on purpose, each with why.
OUTLIVING = {
    "ocr:feed-seq:<tenant>": "the tenant feed's event counter: ids must keep increasing for a client that "
    "reconnects with Last-Event-ID after the feed's history expired; it expires "
    "24 x RESULT_TTL after the tenant's last event",
    "ocr:cache-stats:<tenant>": "the tenant's cache hit and miss counters (/cache/stats): two integers",
}
PROCESS_WIDE = {
    "ocr:metrics": "the counters behind /metrics, shared by web and workers (Prometheus counters never reset)",
}


async def redis_figures(redis: Redis) -> tuple[int, int, dict[str, int]]:
    """used_memory, used_memory_dataset, and the key names (folded) with their counts."""
    info = await redis.info("memory")
    names: Counter[str] = Counter()
    async for key in redis.scan_iter(count=1000):
        names[key.decode()] += 1
    return int(info["used_memory"]), int(info["used_memory_dataset"]), dict(names)


async def sample(soak: SoakState, redis: Redis, pids: dict[str, list[int]], peaks: dict[str, float]) -> None:
    while not soak.stopping.is_set():
        with contextlib.suppress(RedisError, OSError):  # Redis is away during its restart
            info = await redis.info("memory")
            peaks["used_memory"] = max(peaks.get("used_memory", 0), int(info["used_memory"]))
            peaks["keys"] = max(peaks.get("keys", 0), int(await redis.dbsize()))
        for role, role_pids in pids.items():
            peaks[f"rss {role}"] = max(peaks.get(f"rss {role}", 0), tree_rss_kb(role_pids))
        peaks["open jobs"] = max(peaks.get("open jobs", 0), soak.open_jobs())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(soak.stopping.wait(), timeout=1)


# --- logs --------------------------------------------------------------------------------------------------

RECORD_START = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", re.M)
ACCESS_5XX = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+ .*service\.access: (\S+ \S+) (5\d\d) ", re.M)


def log_faults(logs: list[Path], outage: tuple[float, float]) -> tuple[list[str], list[str], list[str]]:
    """Tracebacks outside and inside the Redis outage (plus 10 s), and 5xx access lines outside it."""
    outside: list[str] = []
    inside: list[str] = []
    errors: list[str] = []
    for log in logs:
        text = log.read_text(errors="replace")
        starts = [m.start() for m in RECORD_START.finditer(text)]
        for start, end in zip([0, *starts], [*starts, len(text)], strict=True):
            record = text[start:end]
            if "Traceback (most recent call last)" not in record:
                continue
            stamp = RECORD_START.match(record)
            when = time.mktime(time.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S")) if stamp else 0.0
            last = [line for line in record.strip().splitlines() if line and not line.startswith(" ")][-1]
            entry = f"{log.name}: {record.splitlines()[0][:160]} ... {last[:200]}"
            (inside if outage[0] - 1 <= when <= outage[1] + 10 else outside).append(entry)
        for stamp, request, status in ACCESS_5XX.findall(text):
            when = time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S"))
            if request.endswith(" /readyz") or (status == "503" and outage[0] - 1 <= when <= outage[1] + 2):
                continue
            errors.append(f"{log.name}: {request} {status} at {stamp}")
    return outside, inside, errors
