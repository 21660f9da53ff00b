"""A job's stored pages, served in pieces: JSON, plain text, hOCR, ALTO, single pages, and what the
searchable PDF is made from.

The result is never one stored value. `ocr:result:<id>` holds only its own small fields; its text and
pages are the per-page records in `ocr:pages:<id>` (service/ocr/record.py), read a batch at a time in
page order and written out as they are read, so neither the worker nor the web holds a whole large
document's text at once. Every output is made from the same records: each page's words.
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
from service.ocr import PageResult, alto, hocr
from service.ocr.record import read_page

logger = logging.getLogger(__name__)

# Pages read from Redis per round trip: with MAX_PAGE_TEXT_KB a page, this bounds what one answer holds.
BATCH_PAGES = 32
# What hOCR and ALTO name as the system that wrote them.
OCR_SYSTEM = "ocr-service (Tesseract)"


async def stored_numbers(redis: Redis, job_id: str) -> list[int]:
    """The numbers of the job's pages stored so far, in page order."""
    return _in_page_order(await redis.hkeys(keys.pages(job_id)))  # type: ignore[misc]


def _in_page_order(fields: list[bytes]) -> list[int]:
    """The page numbers that name the fields of a job's pages hash, in page order."""
    return sorted(int(n) for n in fields)


async def read_pages(redis: Redis, job_id: str, numbers: list[int]) -> AsyncIterator[PageResult]:
    """The pages `numbers`, in that order, a batch at a time. A page that is gone (its job deleted or
    expired while it was read) raises NotReady (`not_found`) after the pages before it: an answer
    must not look whole without it (an answer already begun is then cut, service/api/present.py)."""
    for start in range(0, len(numbers), BATCH_PAGES):
        batch = await _read_batch(redis, job_id, numbers[start : start + BATCH_PAGES])
        for page in batch:
            yield page
        if len(batch) < min(BATCH_PAGES, len(numbers) - start):
            raise NotReady("The result is no longer stored.", code="not_found")


async def _read_batch(redis: Redis, job_id: str, numbers: list[int]) -> list[PageResult]:
    """The pages `numbers` (at most a batch), up to the first that is gone."""
    raw: list[bytes | None] = await redis.hmget(keys.pages(job_id), [str(n) for n in numbers])  # type: ignore[misc]
    pages = []
    for number, record in zip(numbers, raw, strict=True):
        if record is None:
            logger.info("job %s page %s went while its pages were read", job_id, number)
            break
        pages.append(read_page(record))
    return pages


async def read_one_page(redis: Redis, job_id: str, number: int) -> PageResult | None:
    record: bytes | None = await redis.hget(keys.pages(job_id), str(number))  # type: ignore[misc]
    return None if record is None else read_page(record)


async def pages_json(pages: AsyncIterator[PageResult], *, with_words: bool) -> AsyncIterator[bytes]:
    """The page objects as the items of a JSON array, comma-separated, without the brackets."""
    first = True
    async for page in pages:
        yield (b"" if first else b",") + _dumps(page.to_dict(with_words=with_words))
        first = False


@dataclass(frozen=True)
class StoredResult:
    """A result found in Redis. Opened before an answer starts, so a result that is gone is still a
    clean 404 rather than a stream cut short."""

    redis: Redis
    job_id: str
    fields: dict[str, Any]  # id, pages_total, lang, duration_ms
    numbers: list[int]  # the stored page numbers, in page order
    first: list[PageResult]  # the first batch of them, read when the result was opened

    async def pages(self) -> AsyncIterator[PageResult]:
        for page in self.first:
            yield page
        async for page in read_pages(self.redis, self.job_id, self.numbers[len(self.first) :]):
            yield page

    async def text(self) -> AsyncIterator[bytes]:
        """The plain text: the pages' texts separated by form feeds."""
        first = True
        async for page in self.pages():
            yield (b"" if first else b"\f") + page.text.encode()
            first = False

    async def json(self, *, with_words: bool = False) -> AsyncIterator[bytes]:
        """The result object (shared/API.md) as JSON: the fields, "text" and "pages", piece by piece."""
        yield b'{"id":' + json.dumps(self.fields["id"]).encode() + b',"text":"'
        first = True
        async for page in self.pages():
            # The text as a JSON string without its quotes, so the pages' texts join into one string.
            escaped = json.dumps(page.text, ensure_ascii=False)[1:-1]
            yield (b"" if first else b"\\f") + escaped.encode()
            first = False
        yield b'","pages":['
        async for chunk in pages_json(self.pages(), with_words=with_words):
            yield chunk
        rest = {name: self.fields[name] for name in ("pages_total", "lang", "duration_ms")}
        yield b"]," + json.dumps(rest, separators=(",", ":")).encode()[1:]

    async def hocr(self, *, media_type: str, dpi: int) -> AsyncIterator[bytes]:
        """hOCR 1.2 of every page, in page order (service/ocr/hocr.py)."""
        scale, scan_res = hocr.units(media_type, dpi)
        yield hocr.head(pages=len(self.numbers), system=OCR_SYSTEM).encode()
        async for page in self.pages():
            yield hocr.page(page, scale=scale, scan_res=scan_res).encode()
        yield hocr.tail().encode()

    async def alto(self, *, media_type: str, filename: str) -> AsyncIterator[bytes]:
        """ALTO v4 of every page, in page order (service/ocr/alto.py)."""
        unit, scale = alto.units(media_type)
        yield alto.head(unit=unit, filename=filename, system=OCR_SYSTEM).encode()
        async for page in self.pages():
            yield alto.page(page, scale=scale).encode()
        yield alto.tail().encode()

    async def whole(self) -> dict[str, Any]:
        """The result object in memory, for the few callers that need it as one (tests, small results)."""
        return dict(json.loads(b"".join([chunk async for chunk in self.json()])))


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


async def open_result(redis: Redis, job_id: str) -> StoredResult:
    """The result, or NotReady (`not_found`) when it is gone, also when it goes while it is opened.

    A job deleted as its result was asked for (one request's DELETE beside another's GET) deletes every
    key of it in one step, but a reader's steps come between: the result's fields and its page numbers
    are read together (one transaction), and the first batch of pages before the answer starts, so a
    result of up to BATCH_PAGES pages is served whole or not at all (a 404), never as a 200 with pages
    missing (the soak, BENCHMARKS.md section 10, saw one). A larger one deleted while it is being sent
    raises from `read_pages`, and its answer is cut rather than finished short."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.get(keys.result(job_id))
        pipe.hkeys(keys.pages(job_id))
        raw, names = await pipe.execute()
    if raw is None:
        raise NotReady("The result is no longer stored.", code="not_found")
    numbers = _in_page_order(names)
    first = await _read_batch(redis, job_id, numbers[:BATCH_PAGES])
    if len(first) < min(BATCH_PAGES, len(numbers)):
        raise NotReady("The result is no longer stored.", code="not_found")
    return StoredResult(redis, job_id, json.loads(raw), numbers, first)


async def searchable_pdf_input(redis: Redis, result: StoredResult) -> tuple[bytes, list[PageResult]]:
    """The document and its pages with their words: what the searchable PDF is made from."""
    document = await redis.get(keys.document(result.job_id))
    if document is None:
        raise NotReady("The document is no longer stored.", code="not_found")
    return document, [page async for page in result.pages()]
