"""The Celery app and its one task: OCR a stored document, page after page, with progress.

`python -m celery -A benchmarks.celery_baseline.tasks worker --concurrency N` runs it; REDIS_URL names the
broker and the result backend.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

import redis
from celery import Celery

from service.ocr import CancelToken, PageOptions, count_pages, process_page, sniff_media_type

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
DOCUMENT_TTL_S = 3600

app = Celery("ocr_baseline", broker=REDIS_URL, backend=REDIS_URL)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_track_started=True,
    # One document at a time per process, acknowledged when done: the usual settings for long tasks.
    worker_prefetch_multiplier=1,
    task_acks_late=True,
    result_expires=DOCUMENT_TTL_S,
    broker_connection_retry_on_startup=True,
)


@cache
def _redis() -> redis.Redis:
    return redis.Redis.from_url(REDIS_URL)


def document_key(upload_id: str) -> str:
    return f"baseline:doc:{upload_id}"


@app.task(bind=True, name="ocr_document")
def ocr_document(self: Any, upload_id: str, options: dict[str, Any]) -> dict[str, Any]:
    data = _redis().get(document_key(upload_id))
    if data is None:
        raise ValueError("the stored document has expired")
    media_type = sniff_media_type(data[:1024])
    if media_type is None:
        raise ValueError("not a PDF, PNG, JPEG or TIFF")
    total = count_pages(data, media_type)
    page_options = PageOptions(lang=options.get("lang", "eng"), dpi=int(options.get("dpi", 300)))
    pages = []
    for index in range(total):
        self.update_state(state="PROGRESS", meta={"pages_done": index, "pages_total": total})
        pages.append(process_page(data, media_type, index, page_options, CancelToken()).to_dict())
    return {"text": "\f".join(p["text"] for p in pages), "pages": pages, "pages_total": total}
