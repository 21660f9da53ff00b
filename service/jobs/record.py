"""The job object: its statuses, its fields and how a new one looks.

This is the API's job object without `links` (the web adds those when it presents a job). It is
stored as JSON and changed only through `JobStore.change` (service/jobs/store.py).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

Job = dict[str, Any]

QUEUED = "queued"
RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
STATUSES = (QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED)
TERMINAL = frozenset({COMPLETED, FAILED, CANCELLED})
ACTIVE = frozenset({QUEUED, RUNNING})


# The order clients see the fields in (Lua's cjson does not keep an object's key order).
FIELD_ORDER = (
    "id",
    "status",
    "progress",
    "message",
    "pages_total",
    "pages_done",
    "filename",
    "options",
    "cached",
    "attempt",
    "error",
    "created_at",
    "started_at",
    "finished_at",
)


def ordered(job: Job) -> Job:
    return {k: job[k] for k in FIELD_ORDER if k in job} | {k: v for k, v in job.items() if k not in FIELD_ORDER}


def new_job_id() -> str:
    # 128 bits from the OS's CSPRNG: ids double as capabilities for the events link, so they must be unguessable.
    return secrets.token_hex(16)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_job(job_id: str, *, filename: str, options: dict[str, Any], pages_total: int | None) -> Job:
    return {
        "id": job_id,
        "status": QUEUED,
        "progress": 0,
        "message": "Queued",
        "pages_total": pages_total,
        "pages_done": 0,
        "filename": filename,
        "options": options,
        "cached": False,
        "attempt": 1,
        "error": None,
        "created_at": utc_now(),
        "started_at": None,
        "finished_at": None,
    }


@dataclass(frozen=True)
class JobRef:
    """What the web and the worker need to know about a job beyond its public object."""

    job: Job
    tenant: str
    meta: dict[str, str]


def looks_like_job_id(job_id: str) -> bool:
    return len(job_id) == 32 and all(c in "0123456789abcdef" for c in job_id)
