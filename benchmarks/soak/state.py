"""The soak's plan (tenants, kinds of job, shares) and what it records as it runs."""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from benchmarks.processes import (
    Service,
)
from benchmarks.receiver import Receiver

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
MAX_PAGES, MAX_UPLOAD_MB, SCAN_DPI = 40, 2, 150
CLEANUP_PERIOD_S = 30  # worker.py: the cleanup cron runs at seconds 0 and 30
END_BOUND_S = 180  # every job must end within this of its submission
SUBMIT_RETRY_S = 60  # a submission answered 503 (Redis down) is retried, with its Idempotency-Key, this long
MARKER = re.compile(r"Soak ([a-z]+) (\d+) page (\d+)")


@dataclass
class Plan:
    jobs: int
    result_ttl_s: int
    window: int  # most open jobs at once
    traffic_bound_s: float  # submissions stop after this (40 min: 20,000 jobs on a shared, loaded 2-core machine)

    @classmethod
    def of(cls, quick: bool) -> Plan:
        return cls(600, 10, 150, 300) if quick else cls(20_000, 30, 300, 2400)


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
class SoakState:
    """What the soak knows: the jobs, their ends, every answer and finding (the behaviour is in the mixins)."""

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

    def new_number(self) -> int:
        self.numbers += 1
        return self.numbers


def tenant_quotas(total: int) -> dict[str, int]:
    quotas = {t: int(total * share) for t, (share, *_) in TENANTS.items()}
    quotas["acme"] += total - sum(quotas.values())
    return quotas
