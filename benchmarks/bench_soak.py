"""10. Soak: 20,000 jobs over four tenants, a worker SIGKILLed, Redis crashed; nothing lost, nothing left.

The service runs as it would be deployed: two workers and a web process on a redis-server of the soak's
own with its append-only file on (`appendfsync everysec`), four tenants (`API_KEYS`), `RESULT_TTL=30`.
A second web process on the same Redis keeps `ALLOW_PRIVATE_NETWORKS` off: the first needs it on to
reach the loopback receiver (webhooks, URL submissions), the second is where submissions naming internal
addresses go, and must refuse them. All traffic stays on 127.0.0.1.

Each tenant submits in bursts (many requests at once, then a pause), concurrently with the others, until
its share of the jobs is in; the open jobs (submitted, not ended) are held under a window so that the
queue stays inside what two cores drain. The mix: mostly one-page text-layer PDFs, some multi-page ones
(split into ranges), a few small scans that Tesseract really reads, URL submissions, synchronous
`?wait=` submissions and repeats that hit the content cache; hostile submissions are mixed into the
bursts and must get a 4xx. Some jobs ask for a webhook, some are cancelled as soon as they are accepted,
some deleted once their result has been checked. Each page carries a marker of its own
(`Soak <tenant> <n> page <p>`), and every completed job's text is checked against it.

A third of the way in, a worker is SIGKILLed and a new one started; two thirds in, redis-server is
SIGKILLed and started again from its AOF two seconds later. Ends are seen on each tenant's `/events`
feed, and a sweep polls jobs that the feed has not ended, so a missed event is not a lost job.

After the last end, the soak waits `RESULT_TTL` plus the cleanup cron's period and compares Redis with
the baseline taken before the traffic: the key names (job ids folded), the key count, `used_memory`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import signal
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError

from benchmarks import sse
from benchmarks.common import Context
from benchmarks.documents import encrypted_pdf, marker_scan, marker_scanned_pdf, marker_text_pdf, png_bytes
from benchmarks.processes import (
    READY_TIMEOUT_S,
    RedisServer,
    Service,
    free_port,
    redis_server,
    run_service,
    spawn,
    stop,
    tree_rss_kb,
)
from benchmarks.receiver import Receiver
from benchmarks.report import Section, percentile

KEY = "10"
TITLE = "Soak: 20,000 jobs over four tenants, a worker killed, Redis crashed"

TERMINAL = frozenset({"completed", "failed", "cancelled"})
# tenant -> (share of the jobs, burst sizes, pause between bursts in seconds, share of hostile submissions)
TENANTS: dict[str, tuple[float, tuple[int, int], tuple[float, float], float]] = {
    "acme": (0.40, (20, 120), (0.2, 2.0), 0.02),  # a bulk uploader
    "globex": (0.25, (1, 10), (0.0, 0.3), 0.03),  # a steady trickle of small batches
    "initech": (0.20, (5, 40), (0.5, 3.0), 0.03),
    "umbrella": (0.15, (1, 30), (0.0, 1.0), 0.12),  # the one that sends most of the garbage
}
# kind -> weight; "tiny" takes what the others leave.
KINDS = {"multi": 0.07, "scan": 0.010, "scan-pdf": 0.004, "url": 0.03, "sync": 0.03, "cached": 0.01}
WEBHOOK_SHARE, CANCEL_SHARE, DELETE_SHARE = 0.15, 0.03, 0.05
MAX_PAGES, SPLIT_PAGES, MAX_UPLOAD_MB, SCAN_DPI = 40, 10, 2, 150
CLEANUP_PERIOD_S = 30  # worker.py: the cleanup cron runs at seconds 0 and 30
END_BOUND_S = 180  # every job must end within this of its submission
SUBMIT_RETRY_S = 60  # a submission answered 503 (Redis down) is retried, with its Idempotency-Key, this long
MARKER = re.compile(r"Soak ([a-z]+) (\d+) page (\d+)")


@dataclass
class Plan:
    jobs: int
    result_ttl_s: int
    window: int  # most open jobs at once
    traffic_bound_s: float

    @classmethod
    def of(cls, quick: bool) -> Plan:
        return cls(600, 10, 150, 300) if quick else cls(20_000, 30, 300, 1500)


@dataclass
class Job:
    id: str
    tenant: str
    kind: str
    number: int
    pages: int
    ocr: bool
    submitted_wall: float
    webhook: bool
    cancel: bool = False
    delete: bool = False
    expected: set[tuple[str, int, int]] = field(default_factory=set)
    cancel_answer: int | None = None
    checked: bool = False


@dataclass
class End:
    status: str
    finished_wall: float
    source: str
    error_code: str | None
    pages_total: int


@dataclass
class Soak:
    plan: Plan
    service: Service
    guarded_url: str
    receiver: Receiver
    keys: dict[str, str]
    hostile_cases: list[tuple[str, str, dict[str, Any]]]
    rng: random.Random = field(default_factory=lambda: random.Random(14))
    jobs: dict[str, Job] = field(default_factory=dict)
    ends: dict[str, End] = field(default_factory=dict)
    open: set[str] = field(default_factory=set)  # accepted, not ended, not known gone
    conflicting_ends: list[str] = field(default_factory=list)
    submitted: int = 0
    numbers: int = 0
    hostile: Counter[tuple[str, int]] = field(default_factory=Counter)
    answers: Counter[int] = field(default_factory=Counter)
    server_errors: list[tuple[float, str, int]] = field(default_factory=list)
    submit_failures: list[str] = field(default_factory=list)
    results: Counter[str] = field(default_factory=Counter)
    result_faults: list[str] = field(default_factory=list)
    vanished: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)
    delete_answers: Counter[int] = field(default_factory=Counter)
    recent_tiny: dict[str, deque[tuple[bytes, int]]] = field(default_factory=dict)
    feed_reconnects: int = 0
    events_seen: int = 0
    checks: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    in_flight_at_worker_kill: list[str] = field(default_factory=list)
    in_flight_at_redis_kill: list[str] = field(default_factory=list)
    killing: int | None = None  # the pid of the worker the soak SIGKILLs on purpose
    worker_exits: list[str] = field(default_factory=list)  # workers that exited by themselves
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def open_jobs(self) -> int:
        return len(self.open)

    def auth(self, tenant: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[tenant]}"}

    def note_answer(self, method: str, path: str, status: int) -> None:
        self.answers[status] += 1
        if status >= 500:
            self.server_errors.append((time.time(), f"{method} {path}", status))

    def record_end(self, job: dict[str, Any], source: str) -> None:
        status = job.get("status")
        if status not in TERMINAL:
            return
        job_id = str(job["id"])
        earlier = self.ends.get(job_id)
        if earlier is not None:
            if earlier.status != status:
                self.conflicting_ends.append(f"{job_id}: {earlier.status} then {status}")
            return
        finished = job.get("finished_at")
        finished_wall = datetime.fromisoformat(finished).timestamp() if finished else time.time()
        error = job.get("error") or {}
        self.ends[job_id] = End(status, finished_wall, source, error.get("code"), int(job.get("pages_total") or 0))
        self.open.discard(job_id)
        if status == "completed" and job_id in self.jobs and source != "inline":
            self.checks.put_nowait(job_id)

    # --- submitting ------------------------------------------------------------------------------------

    async def post(self, client: httpx.AsyncClient, tenant: str, **request: Any) -> httpx.Response | None:
        """POST /jobs, retried with the same Idempotency-Key while Redis is away (503) for SUBMIT_RETRY_S."""
        headers = self.auth(tenant) | {"Idempotency-Key": f"soak-{tenant}-{self.rng.getrandbits(64):016x}"}
        headers |= request.pop("headers", {})
        deadline = time.monotonic() + SUBMIT_RETRY_S
        response: httpx.Response | None = None
        for _ in range(200):
            try:
                response = await client.post("/jobs", headers=headers, **request)
            except httpx.HTTPError as exc:
                self.submit_failures.append(f"{exc.__class__.__name__}: {exc}")
                response = None
            if response is not None:
                self.note_answer("POST", "/jobs", response.status_code)
                if response.status_code not in (503, 429):
                    return response
            if time.monotonic() > deadline:
                return response
            await asyncio.sleep(0.5)
        return None

    def new_number(self) -> int:
        self.numbers += 1
        return self.numbers

    async def submit_one(self, client: httpx.AsyncClient, tenant: str) -> None:
        rng = self.rng
        roll, kind = rng.random(), "tiny"
        for name, weight in KINDS.items():
            if roll < weight:
                kind = name
                break
            roll -= weight
        number = self.new_number()
        webhook = rng.random() < WEBHOOK_SHARE
        params: dict[str, str] = {}
        if webhook:
            params["webhook_url"] = f"{self.receiver.url}/hook"
        pages, ocr = 1, False
        request: dict[str, Any]
        recent = self.recent_tiny.setdefault(tenant, deque(maxlen=50))
        if kind == "cached" and recent:
            document, number = rng.choice(list(recent))
            request = {"content": document, "headers": {"Content-Type": "application/pdf"}, "params": params}
        elif kind == "multi":
            pages = rng.randint(2, 30)
            document = marker_text_pdf([f"Soak {tenant} {number} page {p}" for p in range(1, pages + 1)])
            request = {"files": {"file": (f"{number}.pdf", document, "application/pdf")}, "data": params}
        elif kind == "scan":
            ocr = True
            document = png_bytes(marker_scan(f"Soak {tenant} {number} page 1", dpi=SCAN_DPI))
            request = {"content": document, "headers": {"Content-Type": "image/png"}, "params": params}
        elif kind == "scan-pdf":
            ocr, pages = True, rng.randint(2, 3)
            document = marker_scanned_pdf(
                [f"Soak {tenant} {number} page {p}" for p in range(1, pages + 1)], dpi=SCAN_DPI
            )
            request = {
                "content": document,
                "headers": {"Content-Type": "application/pdf"},
                "params": params | {"dpi": str(SCAN_DPI)},
            }
        elif kind == "url":
            self.receiver.documents[f"{number}.pdf"] = marker_text_pdf([f"Soak {tenant} {number} page 1"])
            request = {"json": {"url": f"{self.receiver.url}/docs/{number}.pdf", **params}}
        else:
            kind = "sync" if kind == "sync" else "tiny"
            document = marker_text_pdf([f"Soak {tenant} {number} page 1"])
            if kind == "sync":
                params = params | {"wait": "10"}
            else:
                recent.append((document, number))
            request = {"content": document, "headers": {"Content-Type": "application/pdf"}, "params": params}
        submitted_wall = time.time()
        response = await self.post(client, tenant, **request)
        self.submitted += 1
        if response is None or response.status_code not in (200, 202):
            status = "no answer" if response is None else f"{response.status_code} {response.text[:200]}"
            self.submit_failures.append(f"{kind} job of {tenant}: {status}")
            return
        body = response.json()
        job = Job(
            body["id"],
            tenant,
            kind,
            number,
            pages,
            ocr,
            submitted_wall,
            webhook,
            expected={(tenant, number, p) for p in range(1, pages + 1)},
        )
        self.jobs[job.id] = job
        if "result" in body:  # ?wait= answered with the result inline
            self.record_end(body, "inline")
            self.check_text(job, body["result"].get("text", ""))
            job.checked = True
        elif body.get("status") in TERMINAL:  # a cache hit
            self.record_end(body, "inline")
        if job.id in self.ends:  # ended in the answer, or on the feed before the answer came
            job.delete = rng.random() < DELETE_SHARE
            if job.delete or not job.checked:
                self.checks.put_nowait(job.id)
            return
        self.open.add(job.id)
        if rng.random() < CANCEL_SHARE:
            job.cancel = True
            answer = await self.request_retrying(client, "DELETE", f"/jobs/{job.id}", tenant)
            job.cancel_answer = answer.status_code if answer is not None else None
            if job.cancel_answer == 204:  # it had ended already: the DELETE deleted it
                self.deleted.add(job.id)
        else:
            job.delete = rng.random() < DELETE_SHARE

    async def request(
        self, client: httpx.AsyncClient, method: str, path: str, tenant: str, **kwargs: Any
    ) -> httpx.Response | None:
        try:
            response = await client.request(method, path, headers=self.auth(tenant), **kwargs)
        except httpx.HTTPError:
            return None
        self.note_answer(method, path, response.status_code)
        return response

    async def request_retrying(
        self, client: httpx.AsyncClient, method: str, path: str, tenant: str, **kwargs: Any
    ) -> httpx.Response | None:
        """The request, again every 0.5 s while Redis is away (503 or no answer), for SUBMIT_RETRY_S at most."""
        deadline = time.monotonic() + SUBMIT_RETRY_S
        while True:
            response = await self.request(client, method, path, tenant, **kwargs)
            if (response is not None and response.status_code != 503) or time.monotonic() > deadline:
                return response
            await asyncio.sleep(0.5)

    def check_text(self, job: Job, text: str) -> None:
        found = {(t, int(n), int(p)) for t, n, p in MARKER.findall(text)}
        if found == job.expected:
            self.results["its own text"] += 1
            return
        foreign = found - job.expected
        if foreign:
            self.results["another document's text"] += 1
            self.result_faults.append(
                f"{job.kind} job {job.id}: expected {sorted(job.expected)}, found {sorted(found)}"
            )
        elif job.ocr:
            self.results["OCR misread its marker"] += 1
            self.result_faults.append(f"{job.kind} job {job.id} (OCR) read {text[:120]!r}")
        else:
            self.results["pages missing from its text"] += 1
            self.result_faults.append(
                f"{job.kind} job {job.id}: expected {sorted(job.expected)}, found {sorted(found)}"
            )

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

    async def hostile_one(self, client: httpx.AsyncClient, guarded: httpx.AsyncClient, tenant: str) -> None:
        name, target, case = self.rng.choice(self.hostile_cases)
        request = dict(case)
        if name == ANOTHER_TENANTS_JOB:
            other = next((j for j in reversed(self.jobs.values()) if j.tenant != tenant), None)
            if other is None:
                return
            request["url"] = f"/jobs/{other.id}"
        http = guarded if target == "guarded" else client
        auth = request.pop("auth", None)
        request["headers"] = (self.auth(tenant) if auth is None else auth) | request.get("headers", {})
        response, error = None, ""
        for _ in range(2):  # once more if a kept-alive connection was closed under the request
            try:
                response = await http.request(**request)
                break
            except httpx.HTTPError as exc:
                error = exc.__class__.__name__
        if response is None:
            self.hostile[(f"{name}: no answer, {error}", 0)] += 1
            return
        self.note_answer(request["method"], name, response.status_code)
        self.hostile[(name, response.status_code)] += 1

    # --- following --------------------------------------------------------------------------------------

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

    # --- the tenants -----------------------------------------------------------------------------------

    async def tenant_traffic(
        self, client: httpx.AsyncClient, guarded: httpx.AsyncClient, tenant: str, quota: int, deadline: float
    ) -> None:
        _, (burst_low, burst_high), (pause_low, pause_high), hostile_share = TENANTS[tenant]
        done = 0
        while done < quota and time.monotonic() < deadline:
            waited_until = time.monotonic() + 60
            while self.open_jobs() >= self.plan.window and time.monotonic() < min(waited_until, deadline):
                await asyncio.sleep(0.1)
            burst = min(self.rng.randint(burst_low, burst_high), quota - done)
            tasks = []
            for _ in range(burst):
                if self.rng.random() < hostile_share:
                    tasks.append(self.hostile_one(client, guarded, tenant))
                tasks.append(self.submit_one(client, tenant))
            await asyncio.gather(*tasks)
            done += burst
            await asyncio.sleep(self.rng.uniform(pause_low, pause_high))


ANOTHER_TENANTS_JOB = "GET /jobs/<another tenant's job>"


def hostile_cases(receiver_url: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(name, which web, the request): each must be answered 4xx."""
    pdf = {"Content-Type": "application/pdf"}
    valid = marker_text_pdf(["Soak hostile 0 page 1"])
    post = {"method": "POST", "url": "/jobs"}
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("empty body", "main", post | {"content": b"", "headers": pdf}),
        ("random bytes", "main", post | {"content": random.Random(1).randbytes(4096), "headers": pdf}),
        ("truncated PDF", "main", post | {"content": valid[: len(valid) // 3], "headers": pdf}),
        ("encrypted PDF", "main", post | {"content": encrypted_pdf(), "headers": pdf}),
        (
            "too many pages",
            "main",
            post | {"content": marker_text_pdf([f"p {n}" for n in range(MAX_PAGES + 1)]), "headers": pdf},
        ),
        ("multipart without its file", "main", post | {"data": {"lang": "eng"}, "files": {"x": ("a", b"")}}),
        (
            "deeply nested JSON",
            "main",
            post
            | {
                "content": b'{"url":' + b"[" * 5000 + b"]" * 5000 + b"}",
                "headers": {"Content-Type": "application/json"},
            },
        ),
        ("no API key", "main", post | {"content": valid, "headers": pdf, "auth": {}}),
        (
            "non-UTF-8 API key",
            "main",
            post | {"content": valid, "headers": pdf, "auth": {"Authorization": b"Bearer \xff\xfe\xe9"}},
        ),
        (
            "non-ASCII API key",
            "main",
            post | {"content": valid, "headers": pdf, "auth": {"Authorization": "Bearer \u00e9t\u00e9".encode()}},
        ),
        (ANOTHER_TENANTS_JOB, "main", {"method": "GET", "url": "/jobs/x"}),
        ("GET /jobs?limit=nan", "main", {"method": "GET", "url": "/jobs", "params": {"limit": "nan"}}),
        (
            "Idempotency-Key of 300 characters",
            "main",
            post | {"content": valid, "headers": pdf | {"Idempotency-Key": "k" * 300}},
        ),
    ]
    bad_params = {
        "dpi=abc": {"dpi": "abc"},
        "dpi=5000": {"dpi": "5000"},
        "dpi in Arabic-Indic digits": {"dpi": "\u0663\u0660\u0660"},
        "dpi in superscripts": {"dpi": "\u00b3\u2070\u2070"},
        "dpi of 5000 digits": {"dpi": "9" * 5000},
        "wait=nan": {"wait": "nan"},
        "wait=inf": {"wait": "inf"},
        "webhook_url=ftp://": {"webhook_url": "ftp://x/y"},
        "webhook_url port 99999": {"webhook_url": "http://127.0.0.1:99999/hook"},
        "webhook_url broken IPv6": {"webhook_url": "http://[::1/hook"},
    }
    cases += [
        (name, "main", post | {"content": valid, "headers": pdf, "params": params})
        for name, params in bad_params.items()
    ]
    # Internal addresses, to the web that does not allow them. Literals and names that stay on this machine
    # only: nothing would leave loopback even if one were accepted.
    internal = [
        "http://127.0.0.1:9/x.pdf",
        "http://localhost:9/x.pdf",
        "http://[::1]:9/x.pdf",
        "http://[::ffff:127.0.0.1]:9/x.pdf",
        "http://0.0.0.0:9/x.pdf",
        "http://2130706433:9/x.pdf",
        f"{receiver_url}/docs/1.pdf",
    ]
    cases += [(f"document URL {url.split('/')[2]}", "guarded", post | {"json": {"url": url}}) for url in internal]
    cases.append(
        (
            "webhook_url to loopback",
            "guarded",
            post | {"content": valid, "headers": pdf, "params": {"webhook_url": f"{receiver_url}/hook"}},
        )
    )
    return cases


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


async def sample(soak: Soak, redis: Redis, pids: dict[str, list[int]], peaks: dict[str, float]) -> None:
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


# --- the run ------------------------------------------------------------------------------------------------


async def run(ctx: Context) -> Section:
    plan = Plan.of(ctx.quick)
    keys = {tenant: f"soak-key-{tenant}" for tenant in TENANTS}
    env = {
        "API_KEYS": ",".join(f"{t}:{k}" for t, k in keys.items()),
        "SECRET_KEY": "soak-secret-of-the-benchmark",
        "WEBHOOK_SECRET": "soak-webhook-secret",
        "RESULT_TTL": str(plan.result_ttl_s),
        "ALLOW_PRIVATE_NETWORKS": "true",
        "MAX_PAGES": str(MAX_PAGES),
        "SPLIT_PAGES": str(SPLIT_PAGES),
        "MAX_UPLOAD_MB": str(MAX_UPLOAD_MB),
        "MAX_ACTIVE_JOBS": "100000",
        "OMP_THREAD_LIMIT": "1",
    }
    receiver = Receiver()
    await receiver.start()
    try:
        with (
            redis_server(ctx.logdir, name="soak-redis", appendfsync="everysec") as server,
            run_service(server, ctx.logdir, name="soak", workers=2, **env) as service,
        ):
            return await _soak(ctx, plan, server, service, receiver, keys)
    finally:
        await receiver.stop()


async def _wait_http(url: str, path: str, timeout_s: float) -> float | None:
    """Seconds until GET url+path answers 200, or None within the bound."""
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=url, timeout=2) as client:
        while time.monotonic() - started < timeout_s:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(path)).status_code == 200:
                    return time.monotonic() - started
            await asyncio.sleep(0.1)
    return None


async def _soak(
    ctx: Context, plan: Plan, server: RedisServer, service: Service, receiver: Receiver, keys: dict[str, str]
) -> Section:
    section = Section(KEY, TITLE)
    tenants = list(TENANTS)
    guarded_port = free_port()
    guarded = spawn(
        [sys.executable, "-m", "service.web"],
        log=ctx.logdir / "soak-guarded-web.log",
        env=service.env | {"PORT": str(guarded_port), "ALLOW_PRIVATE_NETWORKS": "false"},
    )
    redis = Redis.from_url(service.redis_url, socket_timeout=5, socket_connect_timeout=2)
    try:
        if await _wait_http(f"http://127.0.0.1:{guarded_port}", "/healthz", READY_TIMEOUT_S) is None:
            raise RuntimeError("the guarded web process did not start")
        soak = Soak(plan, service, f"http://127.0.0.1:{guarded_port}", receiver, keys, hostile_cases(receiver.url))
        await asyncio.sleep(3)  # the cleanup cron's run at start-up, and the first heartbeats
        base_memory, base_dataset, base_keys = await redis_figures(redis)
        pids = {
            "web": [service.web.pid] if service.web else [],
            "guarded web": [guarded.pid],
            "worker 1 (never killed)": [service.workers[1].pid],
        }
        rss_start = {role: tree_rss_kb(p) for role, p in pids.items()}
        peaks: dict[str, float] = {}
        started_wall, started = time.time(), time.monotonic()
        deadline = started + plan.traffic_bound_s
        chaos: dict[str, float] = {}
        rss_warm: dict[str, int] = {}
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with (
            httpx.AsyncClient(base_url=service.url, timeout=60, limits=limits) as client,
            httpx.AsyncClient(base_url=soak.guarded_url, timeout=60) as guarded_client,
        ):
            feeds = [asyncio.create_task(soak.follow_feed(t)) for t in tenants]
            background = [
                asyncio.create_task(soak.sweep(client)),
                asyncio.create_task(sample(soak, redis, pids, peaks)),
                asyncio.create_task(watch_workers(soak, service)),
            ]
            background += [asyncio.create_task(soak.check_results(client)) for _ in range(32)]
            chaos_task = asyncio.create_task(_chaos(soak, server, service, chaos, rss_warm, pids, deadline))
            quotas = _quotas(plan.jobs)
            await asyncio.gather(
                *(soak.tenant_traffic(client, guarded_client, t, quotas[t], deadline) for t in tenants)
            )
            last_submit = time.time()
            await chaos_task
            # Every job ends within END_BOUND_S of its submission, or it is reported as not ended.
            drain_deadline = time.monotonic() + END_BOUND_S
            while time.monotonic() < drain_deadline and soak.open:
                await asyncio.sleep(0.5)
            while time.monotonic() < drain_deadline and not soak.checks.empty():
                await asyncio.sleep(0.5)
            traffic_end = max([e.finished_wall for e in soak.ends.values()] or [time.time()])
            # Webhooks: until every job that asked has one and none came for 5 s, at most 90 s.
            asked = [j for j in soak.jobs.values() if j.webhook]
            hook_deadline = time.monotonic() + 90
            while time.monotonic() < hook_deadline:
                quiet = time.monotonic() - receiver.last_hook_at > 5
                if quiet and all(receiver.hooks[j.id] for j in asked if j.id in soak.ends):
                    break
                await asyncio.sleep(0.5)
            soak.stopping.set()
            for feed in feeds:  # a stream waits for its next event, or ping, at any moment
                feed.cancel()
            await asyncio.gather(*feeds, *background, return_exceptions=True)
            rss_end_traffic = {role: tree_rss_kb(p) for role, p in pids.items()}
        # Everything a job wrote expires RESULT_TTL after its end; the cron prunes the indexes every 30 s.
        settle_started = time.monotonic()
        last_activity = max(time.time(), traffic_end)
        await asyncio.sleep(max(0.0, last_activity + plan.result_ttl_s + CLEANUP_PERIOD_S + 5 - time.time()))
        allowed = set(fold(k, tenants) for k in base_keys) | set(OUTLIVING) | set(PROCESS_WIDE)
        for _ in range(30):
            after_memory, after_dataset, after_keys = await redis_figures(redis)
            if all(fold(k, tenants) in allowed for k in after_keys):
                break
            await asyncio.sleep(2)
        settled_s = time.monotonic() - settle_started
        leftover = Counter(fold(k, tenants) for k in after_keys if fold(k, tenants) not in allowed)
        leftover_ttls = {}
        for key in list(after_keys)[:2000]:
            if fold(key, tenants) in leftover and fold(key, tenants) not in leftover_ttls:
                leftover_ttls[fold(key, tenants)] = int(await redis.ttl(key))
        outliving_bytes = 0
        for key in after_keys:
            if fold(key, tenants) in OUTLIVING or fold(key, tenants) in PROCESS_WIDE:
                outliving_bytes += int(await redis.memory_usage(key) or 0)
        rss_after = {role: tree_rss_kb(p) for role, p in pids.items()}
        final_hooks = Counter(receiver.hooks)
    finally:
        await redis.aclose()
        stop(guarded)

    logs = sorted(ctx.logdir.glob("soak-*.log"))
    outage = (chaos.get("redis killed", 0.0), chaos.get("redis web ready", chaos.get("redis killed", 0.0) + 60))
    outside_tb, inside_tb, log_5xx = log_faults([p for p in logs if "redis" not in p.name], outage)
    _report(
        section,
        soak,
        plan,
        started_wall,
        traffic_end,
        last_submit,
        chaos,
        final_hooks,
        (base_memory, base_dataset, base_keys),
        (after_memory, after_dataset, after_keys),
        peaks,
        leftover,
        leftover_ttls,
        outliving_bytes,
        settled_s,
        rss_start,
        rss_warm,
        rss_end_traffic,
        rss_after,
        outside_tb,
        inside_tb,
        log_5xx,
        tenants,
        server,
    )
    return section


def _quotas(total: int) -> dict[str, int]:
    quotas = {t: int(total * share) for t, (share, *_) in TENANTS.items()}
    quotas["acme"] += total - sum(quotas.values())
    return quotas


async def _chaos(
    soak: Soak,
    server: RedisServer,
    service: Service,
    chaos: dict[str, float],
    rss_warm: dict[str, int],
    pids: dict[str, list[int]],
    deadline: float,
) -> None:
    """A worker SIGKILLed a third of the way in and replaced; redis-server SIGKILLed two thirds in."""
    total = soak.plan.jobs

    async def reach(count: int) -> bool:
        while soak.submitted < count and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        return soak.submitted >= count

    if await reach(max(50, total // 20)):
        rss_warm.update({role: tree_rss_kb(p) for role, p in pids.items()})
    if not await reach(total // 3):
        return
    victim = service.workers[0]
    redis = Redis.from_url(service.redis_url, socket_timeout=5)
    try:
        before = {m for m, _ in await redis.zrange("ocr:workers", 0, -1, withscores=True)}
        chaos["worker in flight"] = soak.open_jobs()
        soak.in_flight_at_worker_kill = list(soak.open)
        chaos["worker killed"] = time.time()
        # The worker alone, as the OOM killer would: its page processes must die with it by themselves.
        soak.killing = victim.pid
        os.kill(victim.pid, signal.SIGKILL)
        await asyncio.to_thread(victim.wait, 10)
        service.workers.remove(victim)
        await asyncio.sleep(1)
        chaos["worker's processes alive 1 s after its SIGKILL"] = len(_group_members(victim.pid))
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(victim.pid, signal.SIGKILL)
        service.start_worker()
        for _ in range(600):
            members = {m for m, _ in await redis.zrange("ocr:workers", 0, -1, withscores=True)}
            if members - before:
                chaos["worker replaced after"] = time.time() - chaos["worker killed"]
                break
            await asyncio.sleep(0.1)
    finally:
        await redis.aclose()
    if not await reach(2 * total // 3):
        return
    chaos["redis in flight"] = soak.open_jobs()
    soak.in_flight_at_redis_kill = list(soak.open)
    chaos["redis killed"] = time.time()
    ready = asyncio.create_task(_wait_ready_after(soak.service.url, 2.5))
    chaos["redis serving after"] = await asyncio.to_thread(server.crash_and_restart, down_s=2)
    ready_s = await ready
    chaos["redis web ready after"] = ready_s if ready_s is not None else float("nan")
    chaos["redis web ready"] = chaos["redis killed"] + (ready_s or 60)


async def watch_workers(soak: Soak, service: Service) -> None:
    """A worker that exits by itself is a finding; it is started again, as a process manager would."""
    while not soak.stopping.is_set():
        for worker in list(service.workers):
            if worker.poll() is None or worker.pid == soak.killing:
                continue
            service.workers.remove(worker)
            soak.worker_exits.append(
                f"a worker (pid {worker.pid}) exited with code {worker.returncode} at {time.strftime('%H:%M:%S')}"
            )
            service.start_worker()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(soak.stopping.wait(), timeout=0.5)


def _group_members(pgid: int) -> list[int]:
    """Live processes of the process group (the killed worker's page processes and their Tesseract)."""
    import psutil

    members = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                members.append(process.pid)
    return members


async def _wait_ready_after(url: str, delay_s: float) -> float | None:
    """Seconds from now until /readyz answers 200 again, looked at from `delay_s` on (Redis is down by then)."""
    started = time.monotonic()
    await asyncio.sleep(delay_s)
    waited = await _wait_http(url, "/readyz", 90)
    return None if waited is None else time.monotonic() - started


def _report(
    section: Section,
    soak: Soak,
    plan: Plan,
    started_wall: float,
    traffic_end: float,
    last_submit: float,
    chaos: dict[str, float],
    hooks: Counter[str],
    base: tuple[int, int, dict[str, int]],
    after: tuple[int, int, dict[str, int]],
    peaks: dict[str, float],
    leftover: Counter[str],
    leftover_ttls: dict[str, int],
    outliving_bytes: int,
    settled_s: float,
    rss_start: dict[str, int],
    rss_warm: dict[str, int],
    rss_end_traffic: dict[str, int],
    rss_after: dict[str, int],
    outside_tb: list[str],
    inside_tb: list[str],
    log_5xx: list[str],
    tenants: list[str],
    server: RedisServer,
) -> None:
    jobs = list(soak.jobs.values())
    ended = [j for j in jobs if j.id in soak.ends]
    not_ended = [j for j in jobs if j.id not in soak.ends]
    by_state = Counter(soak.ends[j.id].status for j in ended)
    wall_s = traffic_end - started_wall
    pages = sum(soak.ends[j.id].pages_total for j in ended if soak.ends[j.id].status == "completed")
    latencies = [soak.ends[j.id].finished_wall - j.submitted_wall for j in ended]
    late = [s for s in latencies if s > END_BOUND_S]
    section.add("jobs submitted and accepted", len(jobs), "jobs", target=f">= {plan.jobs}", bound=plan.jobs, kind="min")
    section.add("jobs that did not end (vanished or stuck)", len(not_ended), "jobs", target="= 0", bound=0)
    section.add(
        f"jobs that ended later than {END_BOUND_S} s after submission", len(late), "jobs", target="= 0", bound=0
    )
    for state in ("completed", "failed", "cancelled"):
        section.add(f"jobs {state}", by_state.get(state, 0), "jobs")
    section.add("wall time, first submission to last end", wall_s, "s")
    section.add("jobs per second", len(ended) / wall_s if wall_s else float("nan"), "jobs/s")
    section.add("pages per second (completed jobs)", pages / wall_s if wall_s else float("nan"), "pages/s")
    section.add("submit to end, p50", percentile(latencies, 50), "s")
    section.add("submit to end, p99", percentile(latencies, 99), "s")
    section.add("submit to end, max", max(latencies, default=float("nan")), "s")
    own = soak.results["its own text"]
    wrong = soak.results["another document's text"] + soak.results["pages missing from its text"]
    section.add("completed jobs whose text was checked and is their own", own, "jobs")
    section.add("completed jobs with another's text or missing pages", wrong, "jobs", target="= 0", bound=0)
    asked = [j for j in jobs if j.webhook]
    asked_ended = [j for j in asked if j.id in soak.ends]
    missing = [j for j in asked_ended if hooks[j.id] == 0]
    duplicated = [j for j in asked_ended if hooks[j.id] > 1]
    unasked = [job_id for job_id in hooks if job_id in soak.jobs and not soak.jobs[job_id].webhook]
    section.add("jobs that asked for a webhook", len(asked), "jobs")
    section.add("webhook POSTs received", sum(hooks[j.id] for j in asked), "POSTs")
    section.add("jobs that asked and got none", len(missing), "jobs", target="= 0", bound=0)
    section.add("jobs that got more than one", len(duplicated), "jobs", target="= 0", bound=0)
    client_5xx = [
        e
        for e in soak.server_errors
        if not (e[2] == 503 and chaos.get("redis killed", 0) - 1 <= e[0] <= chaos.get("redis web ready", 0) + 2)
    ]
    hostile_total = sum(soak.hostile.values())
    hostile_not_4xx = {k: v for k, v in soak.hostile.items() if not 400 <= k[1] < 500}
    section.add("hostile submissions sent", hostile_total, "requests")
    section.add(
        "hostile submissions not answered 4xx", sum(hostile_not_4xx.values()), "requests", target="= 0", bound=0
    )
    section.add(
        "5xx answers seen by clients, Redis outage's 503s aside", len(client_5xx), "answers", target="= 0", bound=0
    )
    section.add(
        "5xx lines in the services' access logs, outage's 503s aside", len(log_5xx), "lines", target="= 0", bound=0
    )
    section.add(
        "tracebacks in the services' logs outside the Redis outage",
        len(outside_tb),
        "tracebacks",
        target="= 0",
        bound=0,
    )
    section.add(
        "tracebacks in the services' logs during the Redis outage (+10 s)",
        len(inside_tb),
        "tracebacks",
        target="= 0",
        bound=0,
    )
    section.add(
        "workers that exited by themselves (started again)", len(soak.worker_exits), "workers", target="= 0", bound=0
    )
    if "worker's processes alive 1 s after its SIGKILL" in chaos:
        section.add(
            "the killed worker's page processes still alive 1 s after its SIGKILL",
            chaos["worker's processes alive 1 s after its SIGKILL"],
            "processes",
            target="= 0",
            bound=0,
        )
    worker_flight, redis_flight = soak.in_flight_at_worker_kill, soak.in_flight_at_redis_kill

    def last_end_after(ids: list[str], at: float) -> float:
        ends = [soak.ends[i].finished_wall for i in ids if i in soak.ends]
        return max(ends, default=at) - at if len(ends) == len(ids) else float("nan")

    if "worker killed" in chaos:
        section.add(
            "worker kill: replacement worker's first heartbeat after",
            chaos.get("worker replaced after", float("nan")),
            "s",
            note="from the SIGKILL, with 1 s before the replacement was started",
        )
        section.add(
            "worker kill: the jobs open at the kill all ended within",
            last_end_after(worker_flight, chaos["worker killed"]),
            "s",
            target="<= LEASE_SECONDS (20) + 20",
            bound=40,
            note=f"{len(worker_flight)} jobs were open; NaN means some of them never ended",
        )
    if "redis killed" in chaos:
        section.add(
            "Redis crash: serving again (AOF loaded) after",
            chaos.get("redis serving after", float("nan")),
            "s",
            note="from the SIGKILL; it was started again 2 s after it",
        )
        section.add("Redis crash: web /readyz 200 again after", chaos.get("redis web ready after", float("nan")), "s")
        section.add(
            "Redis crash: the jobs open at the crash all ended within",
            last_end_after(redis_flight, chaos["redis killed"]),
            "s",
            note=f"{len(redis_flight)} jobs were open; NaN means some of them never ended",
        )
    base_memory, base_dataset, base_keys = base
    after_memory, after_dataset, after_keys = after
    section.add("Redis used_memory before the traffic", base_memory / 1e6, "MB")
    section.add("Redis used_memory at its peak", peaks.get("used_memory", float("nan")) / 1e6, "MB")
    section.add(
        "Redis used_memory after RESULT_TTL",
        after_memory / 1e6,
        "MB",
        baseline=base_memory / 1e6,
        baseline_label="before",
    )
    section.add("Redis keys before the traffic", len(base_keys), "keys")
    section.add("Redis keys at their peak", peaks.get("keys", float("nan")), "keys")
    section.add(
        "Redis keys after RESULT_TTL", len(after_keys), "keys", baseline=len(base_keys), baseline_label="before"
    )
    section.add(
        "keys left after RESULT_TTL that are neither baseline nor named below",
        sum(leftover.values()),
        "keys",
        target="= 0",
        bound=0,
    )
    for role in rss_start:
        warm = rss_warm.get(role, rss_start[role])
        section.add(
            f"RSS of the {role} after RESULT_TTL",
            # 0: the process is gone (a worker that exited by itself); no figure rather than a flattering one
            rss_after[role] / 1024 if rss_after[role] else float("nan"),
            "MB",
            baseline=warm / 1024,
            baseline_label="warm",
            target="<= warm x 1.25 + 20 MB",
            bound=(warm * 1.25 + 20_000) / 1024,
            note=f"{rss_start[role] / 1024:.0f} MB at start, {warm / 1024:.0f} MB warm (5% of the jobs in), "
            f"{rss_end_traffic[role] / 1024:.0f} MB at the traffic's end, {rss_after[role] / 1024:.0f} MB "
            f"after RESULT_TTL; peak {peaks.get('rss ' + role, 0) / 1024:.0f} MB (page processes included)",
        )

    # --- the notes: what ran, and every finding in words ---
    kinds = Counter(j.kind for j in jobs)
    per_tenant = Counter(j.tenant for j in jobs)
    end_by_kind = {k: Counter(soak.ends[j.id].status for j in ended if j.kind == k) for k in kinds}
    failed_codes = Counter(soak.ends[j.id].error_code for j in ended if soak.ends[j.id].status == "failed")
    cancelled = [j for j in jobs if j.cancel]
    cancel_outcomes = Counter(
        (j.cancel_answer, soak.ends[j.id].status if j.id in soak.ends else "not ended") for j in cancelled
    )
    notes = section.notes
    notes.append(
        f"{len(jobs):,} jobs over {len(tenants)} tenants ({', '.join(f'{t} {n:,}' for t, n in per_tenant.items())}), "
        f"in bursts, at most {plan.window} open at once; by kind: "
        + ", ".join(f"{k} {n:,} ({dict(end_by_kind[k])})" for k, n in kinds.most_common())
        + f". Multi-page: 2-30 text pages, SPLIT_PAGES={SPLIT_PAGES}; scans: 360 x 90 pt at {SCAN_DPI} dpi "
        f"({sum(j.pages for j in jobs if j.ocr):,} OCRed pages); RESULT_TTL={plan.result_ttl_s}, "
        f"MAX_PAGES={MAX_PAGES}, "
        f"two workers with default OCR_CONCURRENCY, redis-server with appendonly yes, appendfsync everysec."
    )
    notes.append(
        f"Failed jobs by code: {dict(failed_codes) or 'none'}. Ends seen on the feeds vs. by polling vs. in "
        f"the POST's answer: {dict(Counter(e.source for e in soak.ends.values()))}; feed reconnects "
        f"{soak.feed_reconnects} (the Redis restart ends every stream), feed events read {soak.events_seen:,}."
    )
    notes.append(
        f"Cancelled at once after the 202 ({len(cancelled)}): (DELETE answer, end) "
        f"{ {f'{a} -> {s}': n for (a, s), n in cancel_outcomes.items()} }; deleted after their result was "
        f"checked: DELETE answers {dict(soak.delete_answers)}."
    )
    notes.append(f"Result checks: {dict(soak.results)}.")
    if soak.result_faults:
        notes.append("Results that were not their own (first 5): " + "; ".join(soak.result_faults[:5]))
    if not_ended:
        sample_ids = ", ".join(
            f"{j.kind} {j.id} ({'404' if j.id in soak.vanished else 'no end'})" for j in not_ended[:5]
        )
        notes.append(
            f"**Finding: {len(not_ended)} jobs never ended** ({len([j for j in not_ended if j.id in soak.vanished])} "
            f"answered 404 before any end, by kind {dict(Counter(j.kind for j in not_ended))}); e.g. {sample_ids}."
        )
    if soak.conflicting_ends:
        notes.append(
            f"**Finding: {len(soak.conflicting_ends)} jobs reported two different ends**: "
            + "; ".join(soak.conflicting_ends[:5])
        )
    if missing or duplicated:

        def describe(group: list[Job]) -> str:
            return str(
                dict(
                    Counter(
                        f"{j.kind}{' cancelled' if j.cancel else ''}{' deleted' if j.delete else ''}"
                        f" -> {soak.ends[j.id].status}"
                        for j in group
                    )
                )
            )

        notes.append(
            f"**Finding: webhooks.** Missing for {len(missing)} jobs: {describe(missing)}; more than one for "
            f"{len(duplicated)}: {describe(duplicated)} (max {max((hooks[j.id] for j in duplicated), default=0)})."
        )
    mismatched = [
        j for j in asked_ended if hooks[j.id] and soak.receiver.hook_statuses[j.id][-1] != soak.ends[j.id].status
    ]
    if mismatched or unasked:
        notes.append(
            f"Webhooks whose status differs from the job's end: {len(mismatched)}; webhooks for jobs that "
            f"did not ask: {len(unasked)}."
        )
    notes.append(
        "Hostile submissions by answer: "
        + ", ".join(f"{name} {status} x{n}" for (name, status), n in sorted(soak.hostile.items()))
    )
    if hostile_not_4xx:
        notes.append(f"**Finding: hostile submissions answered other than 4xx**: {hostile_not_4xx}")
    notes.append(
        f"Answers seen by clients: {dict(sorted(soak.answers.items()))}; submissions that failed for good: "
        f"{len(soak.submit_failures)}" + (f" (e.g. {soak.submit_failures[:3]})" if soak.submit_failures else "")
    )
    if client_5xx or log_5xx:
        notes.append(f"**Finding: 5xx answers** outside the outage: clients {client_5xx[:5]}; logs {log_5xx[:5]}")
    for label, found in (("outside the Redis outage", outside_tb), ("during the Redis outage", inside_tb)):
        if found:
            kinds_tb = Counter(entry.split(" ... ")[-1] for entry in found)
            notes.append(
                f"**Finding: {len(found)} tracebacks {label}**, by last line: {dict(kinds_tb.most_common(6))}; "
                f"first: {found[0][:300]}"
            )
    if soak.worker_exits:
        notes.append(
            f"**Finding: workers exited by themselves**: {'; '.join(soak.worker_exits)} (their last "
            "traceback is among those above)."
        )
    if chaos:
        notes.append(
            "Chaos: worker 0 SIGKILLed at {:.0f} s with {:.0f} jobs open, replaced 1 s later; redis-server "
            "SIGKILLed at "
            "{:.0f} s with {:.0f} jobs open, started again from its AOF after 2 s. With appendfsync everysec a crashed "
            "redis-server loses nothing it had acknowledged (it writes the AOF before it replies; only the fsync is "
            "deferred), but a crashed machine loses up to the last second of writes (two when an fsync is slow): jobs "
            "accepted, transitions and webhook deliveries of that second. appendfsync always closes that gap at a "
            "cost in throughput.".format(
                chaos.get("worker killed", started_wall) - started_wall,
                chaos.get("worker in flight", 0),
                chaos.get("redis killed", started_wall) - started_wall,
                chaos.get("redis in flight", 0),
            )
        )
    keys_before = Counter(fold(k, tenants) for k in base_keys)
    keys_after = Counter(fold(k, tenants) for k in after_keys)
    notes.append(
        f"Keys before the traffic: {dict(keys_before)}. After RESULT_TTL + the cron's period "
        f"({settled_s:.0f} s after the last end): {dict(keys_after)}."
    )
    notes.append(
        "Keys that outlive every job on purpose: "
        + "; ".join(f"`{k}`: {why}" for k, why in (OUTLIVING | PROCESS_WIDE).items())
        + f". Together they take {outliving_bytes / 1e3:.1f} KB (MEMORY USAGE); used_memory after minus before is "
        f"{(after_memory - base_memory) / 1e3:.0f} KB, used_memory_dataset {base_dataset / 1e3:.0f} KB before and "
        f"{after_dataset / 1e3:.0f} KB after (the restarted redis-server rebuilt its memory from the AOF)."
    )
    if leftover:
        notes.append(f"**Finding: keys that did not return to the baseline**: {dict(leftover)}, TTLs {leftover_ttls}.")
    notes.append(
        f"Last submission {last_submit - started_wall:.0f} s in; load average {os.getloadavg()[0]:.1f} after; "
        f"the soak's redis-server: {server.log}."
    )
