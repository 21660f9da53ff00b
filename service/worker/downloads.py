"""URL submissions: the worker (never the web process) downloads the document, then queues its pages."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
from arq import Retry

from service import keys
from service.errors import DownloadFailed, NoPagesSelected, PayloadTooLarge, ServiceError
from service.jobs.cache import content_key
from service.jobs.documents import check_document
from service.jobs.record import QUEUED, RUNNING, TERMINAL
from service.jobs.schedule import NORMAL
from service.jobs.units import job_page_indices, nothing_selected
from service.netguard import open_stream
from service.params import MAX_NUMBER_CHARS, ascii_int
from service.worker.finish import end_failed
from service.worker.guard import ends_its_job
from service.worker.state import WorkerState, retry_delay_s

logger = logging.getLogger(__name__)

DOWNLOAD_TIMEOUT_S = 60.0


async def download(url: str, *, max_bytes: int, allow_private: bool) -> bytes:
    timeout = httpx.Timeout(10.0, read=20.0)
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as client:
        async with asyncio.timeout(DOWNLOAD_TIMEOUT_S):
            async with open_stream(client, url, allow_private=allow_private) as response:
                if response.status_code != 200:
                    raise DownloadFailed(f"The URL answered HTTP {response.status_code}.")
                declared = ascii_int(response.headers.get("content-length", ""), MAX_NUMBER_CHARS)
                if declared is not None and declared > max_bytes:
                    raise PayloadTooLarge("The document is larger than the upload limit.")
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise PayloadTooLarge("The document is larger than the upload limit.")
                    chunks.append(chunk)
                return b"".join(chunks)


@ends_its_job("download")
async def fetch_document(ctx: dict[str, Any], job_id: str) -> str:
    state: WorkerState = ctx["state"]
    ref = await state.store.get(job_id)
    if ref is None or ref.job["status"] in TERMINAL:
        return "gone"
    settings = state.settings
    await state.store.change(
        job_id, ref.tenant, {"status": RUNNING, "message": "Downloading the document"}, allowed_from=[QUEUED, RUNNING]
    )
    try:
        document = await download(
            ref.meta["source_url"], max_bytes=settings.max_upload_bytes, allow_private=settings.allow_private_networks
        )
    except ServiceError as exc:
        # Refused by the tree's own rules (an internal address, too large, an HTTP error answer): final.
        return await end_failed(state, ref, exc)
    except (httpx.HTTPError, TimeoutError, OSError) as exc:
        if ctx["job_try"] >= settings.max_tries:
            return await end_failed(state, ref, DownloadFailed(f"The download kept failing: {exc}"))
        raise Retry(defer=retry_delay_s(settings, ctx["job_try"])) from None
    try:
        checked = await check_document(document, max_pages=settings.max_pages, max_pixels=settings.max_page_pixels)
    except ServiceError as exc:
        return await end_failed(state, ref, exc)
    indices = job_page_indices(ref.meta | {"document_pages": str(checked.pages_total)}, checked.pages_total)
    pages_total = len(indices)
    if pages_total == 0:
        # Only now is the page count known: the selection's 400 becomes the job's failure.
        return await end_failed(state, ref, NoPagesSelected(nothing_selected(ref.meta["pages"], checked.pages_total)))
    meta = {
        "document_pages": str(checked.pages_total),
        "media_type": checked.media_type,
        "content_key": content_key(document, ref.job["options"]),
        "size": str(len(document)),
    }
    fields = [item for pair in meta.items() for item in pair]
    await state.store.write(job_id, ("SET", keys.document(job_id), document), ("HSET", keys.meta(job_id), *fields))
    # Back to queued: its pages now wait for a worker like any uploaded document's.
    await state.store.change(
        job_id,
        ref.tenant,
        {"status": QUEUED, "pages_total": pages_total, "message": "Downloaded; queued for OCR"},
        allowed_from=[RUNNING],
    )
    await state.store.schedule.add(job_id, ref.tenant, ref.meta.get("priority", NORMAL), indices)
    logger.info("job %s tenant=%s downloaded %d bytes, %d pages", job_id, ref.tenant, len(document), pages_total)
    return "downloaded"
