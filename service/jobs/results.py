"""A finished job's stored result, served in pieces: JSON, plain text, and the pages for the searchable PDF.

The result is never one stored value. `ocr:result:<id>` holds only its own small fields; its text and
pages are the per-page records in `ocr:pages:<id>`, read a batch at a time in page order and written
out as they are read, so neither the worker nor the web holds a whole large document's text at once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from service import keys
from service.errors import NotReady
from service.ocr import PageResult

logger = logging.getLogger(__name__)

# Pages read from Redis per round trip: with MAX_PAGE_TEXT_KB a page, this bounds what one answer holds.
BATCH_PAGES = 32


@dataclass(frozen=True)
class StoredResult:
    """A result found in Redis. Opened before an answer starts, so a result that is gone is still a
    clean 404 rather than a stream cut short."""

    redis: Redis
    job_id: str
    fields: dict[str, Any]  # id, pages_total, lang, duration_ms
    numbers: list[str]  # the stored page numbers, in page order

    async def records(self) -> AsyncIterator[bytes]:
        """Each page's stored JSON, in page order."""
        for start in range(0, len(self.numbers), BATCH_PAGES):
            batch = self.numbers[start : start + BATCH_PAGES]
            raw: list[bytes | None] = await self.redis.hmget(keys.pages(self.job_id), batch)  # type: ignore[misc]
            for number, record in zip(batch, raw, strict=True):
                if record is None:  # deleted while it was being read: nothing more to serve
                    logger.info("job %s page %s went while its result was read", self.job_id, number)
                    return
                yield record

    async def text(self) -> AsyncIterator[bytes]:
        """The plain text: the pages' texts separated by form feeds."""
        first = True
        async for record in self.records():
            yield (b"" if first else b"\f") + json.loads(record)["text"].encode()
            first = False

    async def json(self) -> AsyncIterator[bytes]:
        """The result object (shared/API.md) as JSON: the fields, "text" and "pages", piece by piece."""
        yield b'{"id":' + json.dumps(self.fields["id"]).encode() + b',"text":"'
        first = True
        async for record in self.records():
            # The text as a JSON string without its quotes, so the pages' texts join into one string.
            escaped = json.dumps(json.loads(record)["text"], ensure_ascii=False)[1:-1]
            yield (b"" if first else b"\\f") + escaped.encode()
            first = False
        yield b'","pages":['
        first = True
        async for record in self.records():
            yield (b"" if first else b",") + record
            first = False
        rest = {name: self.fields[name] for name in ("pages_total", "lang", "duration_ms")}
        yield b"]," + json.dumps(rest, separators=(",", ":")).encode()[1:]

    async def whole(self) -> dict[str, Any]:
        """The result object in memory, for the few callers that need it as one (tests, small results)."""
        return dict(json.loads(b"".join([chunk async for chunk in self.json()])))


async def open_result(redis: Redis, job_id: str) -> StoredResult:
    raw = await redis.get(keys.result(job_id))
    if raw is None:
        raise NotReady("The result is no longer stored.", code="not_found")
    numbers = sorted((n.decode() for n in await redis.hkeys(keys.pages(job_id))), key=int)  # type: ignore[misc]
    return StoredResult(redis, job_id, json.loads(raw), numbers)


async def searchable_pdf_input(redis: Redis, result: StoredResult) -> tuple[bytes, list[PageResult]]:
    """The document and its pages with their text layers: what the searchable PDF is made from."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.get(keys.document(result.job_id))
        pipe.hgetall(keys.layers(result.job_id))
        document, layers = await pipe.execute()
    if document is None:
        raise NotReady("The document is no longer stored.", code="not_found")
    pages = []
    async for record in result.records():
        p = json.loads(record)
        pages.append(
            PageResult(
                number=p["number"],
                text=p["text"],
                source=p["source"],
                confidence=p["confidence"],
                rotation=p["rotation"],
                width=p["width"],
                height=p["height"],
                text_pdf=layers.get(str(p["number"]).encode()),
            )
        )
    return document, pages
