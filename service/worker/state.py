"""What one worker process shares between its jobs (kept in arq's ctx as `ctx["state"]`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from arq.connections import ArqRedis

from service.jobs.cache import ContentCache
from service.jobs.store import JobStore
from service.ocr import CancelToken
from service.worker.page_pool import PagePool
from settings import Settings


@dataclass
class WorkerState:
    """What one worker process shares between its jobs (kept in arq's ctx)."""

    settings: Settings
    redis: ArqRedis
    store: JobStore
    cache: ContentCache
    pages: PagePool
    worker_id: str
    scratch: Path  # documents as files, for the page processes to read
    tokens: dict[str, set[CancelToken]] = field(default_factory=dict)
    documents: dict[str, tuple[Path, int]] = field(default_factory=dict)  # job id -> (file, ranges using it)
    background: list[asyncio.Task[None]] = field(default_factory=list)

    def cancel_local(self, job_id: str) -> None:
        for token in list(self.tokens.get(job_id, ())):
            token.cancel()

    @contextlib.contextmanager
    def document_file(self, job_id: str, document: bytes) -> Iterator[Path]:
        """The document as a local file while any of this worker's ranges of it run."""
        path, users = self.documents.get(job_id, (self.scratch / job_id, 0))
        if users == 0:
            path.write_bytes(document)
        self.documents[job_id] = (path, users + 1)
        try:
            yield path
        finally:
            path, users = self.documents[job_id]
            if users == 1:
                del self.documents[job_id]
                path.unlink(missing_ok=True)
            else:
                self.documents[job_id] = (path, users - 1)


def retry_delay_s(settings: Settings, job_try: int) -> float:
    """Exponential backoff: RETRY_DELAY_SECONDS, then twice that, four times ..."""
    return float(settings.retry_delay_s * 2 ** max(0, job_try - 1))
