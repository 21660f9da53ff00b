"""What one worker process shares between its jobs (kept in arq's ctx as `ctx["state"]`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from arq.connections import ArqRedis

from service import keys
from service.jobs.cache import ContentCache
from service.jobs.store import JobStore
from service.ocr import CancelToken
from service.worker.page_pool import PagePool
from settings import Settings

# Documents kept as files after their last running page, for the job's next turn: the scheduler
# alternates between jobs, and fetching a large document again for every page would cost more than
# its OCR. A fixed number, so a worker's disk and memory do not grow with the number of jobs waiting.
IDLE_DOCUMENTS_KEPT = 8
# A document comes from Redis to its file in pieces this large: the worker's memory stays the same
# whatever the document's size (a whole 20 MB document read at once cost the worker 34 MB at its peak).
FETCH_CHUNK_BYTES = 1024 * 1024


@dataclass
class LocalDocument:
    path: Path
    users: int = 0  # pages of it running here


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
    # job id -> its document's file, least recently used first
    documents: OrderedDict[str, LocalDocument] = field(default_factory=OrderedDict)
    # The leases of the pages this worker runs (service/worker/lease.py renews them), each with the task
    # running it: one task per OCR slot, a unit's pages (a text-layer job's) sharing theirs.
    held: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    # Set when pages may be waiting (a publish on the scheduler's channel) or a slot freed.
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    background: list[asyncio.Task[None]] = field(default_factory=list)
    _fetching: asyncio.Lock = field(default_factory=asyncio.Lock)

    def cancel_local(self, job_id: str) -> None:
        for token in list(self.tokens.get(job_id, ())):
            token.cancel()

    @contextlib.asynccontextmanager
    async def document_file(self, job_id: str) -> AsyncIterator[Path | None]:
        """The job's document as a local file while pages of it run here; None when it is gone."""
        entry = await self._open_document(job_id)
        if entry is None:
            yield None
            return
        entry.users += 1
        try:
            yield entry.path
        finally:
            entry.users -= 1
            self._evict_idle()

    async def _open_document(self, job_id: str) -> LocalDocument | None:
        async with self._fetching:  # one fetch of a document, however many slots start on it at once
            entry = self.documents.get(job_id)
            if entry is None:
                path = self.scratch / job_id
                if not await self._fetch(keys.document(job_id), path):
                    return None
                entry = self.documents[job_id] = LocalDocument(path)
            self.documents.move_to_end(job_id)
            return entry

    async def _fetch(self, key: str, path: Path) -> bool:
        """The document at `key` written to `path` a piece at a time; False (and no file) when it is gone,
        before or while it was read. A stored document never changes, so its pieces make one whole."""
        size = int(await self.redis.strlen(key))
        if size == 0:
            return False
        try:
            with path.open("wb") as file:
                for start in range(0, size, FETCH_CHUNK_BYTES):
                    piece = await self.redis.getrange(key, start, min(start + FETCH_CHUNK_BYTES, size) - 1)
                    if not piece:  # deleted meanwhile
                        break
                    await asyncio.to_thread(file.write, piece)
        except BaseException:  # Redis went away, the disk is full, the worker stops: no half file is kept
            path.unlink(missing_ok=True)
            raise
        if path.stat().st_size != size:
            path.unlink(missing_ok=True)
            return False
        return True

    def _evict_idle(self) -> None:
        idle = [job_id for job_id, entry in self.documents.items() if entry.users == 0]
        for job_id in idle[: max(0, len(idle) - IDLE_DOCUMENTS_KEPT)]:
            self.documents.pop(job_id).path.unlink(missing_ok=True)


def retry_delay_s(settings: Settings, job_try: int) -> float:
    """Exponential backoff: RETRY_DELAY_SECONDS, then twice that, four times ..."""
    return float(settings.retry_delay_s * 2 ** max(0, job_try - 1))
