"""`GET /jobs/<id>/pages/<n>` and `GET /jobs/<id>/pages?after=<n>`: a job's pages as they finish,
while it still runs, each as soon as it is stored."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import Response

from service.api.auth import tenant_from_header
from service.api.context import services_of
from service.api.present import NO_STORE, StreamedAnswer, json_response, present
from service.api.results import with_words
from service.errors import NotFound, NotReady
from service.jobs.results import pages_json, read_one_page, read_pages, stored_numbers
from service.jobs.units import job_page_indices
from service.params import parse_int

# Page numbers are at most MAX_PAGES (2000 by default); a bound well above any setting keeps the
# parsing strict without knowing the setting here.
MAX_PAGE_NUMBER = 1_000_000


async def get_page(request: Request) -> Response:
    """One page: 200 once it is done, 409 before, 404 when the job does not process such a page."""
    services = services_of(request)
    tenant = tenant_from_header(request, services.settings)
    raw_number = request.path_params["number"]
    message = f"The page number must be a whole number from 1, not {raw_number[:20]!r}."
    number = parse_int(raw_number, "page", 1, MAX_PAGE_NUMBER, message=message)
    words = with_words(request)
    ref = await services.store.get_for_tenant(request.path_params["job_id"], tenant)
    job = ref.job
    total = job["pages_total"]
    if total is not None and number - 1 not in job_page_indices(ref.meta, total):
        raise NotFound(f"The job has no page {number}: past the document's end, or not among the pages it reads.")
    page = await read_one_page(services.redis, job["id"], number)
    if page is None:
        message = f"Page {number} is not done yet; the job is {job['status']}."
        body = {"error": NotReady(message).to_dict(), "job": present(services, tenant, job)}
        return json_response(body, NotReady.status_code, NO_STORE)
    return json_response(page.to_dict(with_words=words), 200, NO_STORE)


async def list_pages(request: Request) -> Response:
    """The pages done so far numbered above `after`, in page order, streamed a batch at a time."""
    services = services_of(request)
    tenant = tenant_from_header(request, services.settings)
    after = parse_int(request.query_params.get("after", "0"), "after", 0, MAX_PAGE_NUMBER)
    limit_raw = request.query_params.get("limit")
    limit = None if limit_raw is None else parse_int(limit_raw, "limit", 1, MAX_PAGE_NUMBER)
    words = with_words(request)
    ref = await services.store.get_for_tenant(request.path_params["job_id"], tenant)
    stored = await stored_numbers(services.redis, ref.job["id"])
    numbers = [n for n in stored if n > after][:limit]
    # Counted from the pages stored rather than the job's `pages_done`, which is written just after
    # each page, so that the listing never holds more pages than it says are done.
    tail = {"pages_total": ref.job["pages_total"], "pages_done": len(stored)}
    body = _listing(services.redis, ref.job["id"], numbers, words, tail)
    return StreamedAnswer(body, media_type="application/json", headers=NO_STORE)


async def _listing(
    redis: Redis, job_id: str, numbers: list[int], words: bool, tail: dict[str, int | None]
) -> AsyncIterator[bytes]:
    yield b'{"pages":['
    async for chunk in pages_json(read_pages(redis, job_id, numbers), with_words=words):
        yield chunk
    yield b"]," + json.dumps(tail, separators=(",", ":")).encode()[1:]
