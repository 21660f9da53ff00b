"""`event: page` on a job's stream: one finished page, as soon as it is stored.

The worker's page-store script (service/worker/page_store.py) writes the page, appends a page event to
the job's history and publishes it, in one step and only for a page stored for the first time, so a
page stored again by a retried range is announced once. The live event carries the page itself. The
history holds only a reference (`{"seq": n, "event": "page", "page": <number>}`), since the page is in
`ocr:pages:<id>` anyway: a 2,000-page job's history stays a few kilobytes rather than a second copy of
its text (up to MAX_PAGE_TEXT_KB a page). A stream resuming from the history reads those pages back.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from service import keys
from service.ocr.record import read_page

PAGE = "page"
# The page object's public fields: an event never carries anything else a page stores (its words).
PAGE_FIELDS = ("number", "text", "source", "confidence", "rotation", "width", "height", "preprocessed")


def page_event_data(job_id: str, page: dict[str, Any]) -> dict[str, Any]:
    """The data of a page event: `{"id": <job id>, "page": <page object without words>}`."""
    return {"id": job_id, "page": {name: page[name] for name in PAGE_FIELDS if name in page}}


async def with_page_events(
    redis: Redis, job_id: str, entries: list[tuple[int, str, Any]]
) -> list[tuple[int, str, Any]]:
    """A backlog's page references (seq, "page", <number>) replaced by the pages' event data, read in
    one round trip (none when the backlog names no page); a page no longer stored is left out."""
    pages = await read_page_events(redis, job_id, [int(p) for _, name, p in entries if name == PAGE])
    return [
        (seq, name, pages[int(payload)] if name == PAGE else payload)
        for seq, name, payload in entries
        if name != PAGE or int(payload) in pages
    ]


async def read_page_events(redis: Redis, job_id: str, numbers: list[int]) -> dict[int, dict[str, Any]]:
    """The data of the page events for these page numbers, read from the stored pages (a page no longer
    stored, its job deleted meanwhile, is left out)."""
    if not numbers:
        return {}
    raw: list[bytes | None] = await redis.hmget(keys.pages(job_id), [str(n) for n in numbers])  # type: ignore[misc]
    return {
        number: page_event_data(job_id, read_page(record).to_dict())
        for number, record in zip(numbers, raw, strict=True)
        if record is not None
    }
