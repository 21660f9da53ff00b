"""The check every document passes before its pages are queued, uploaded or downloaded alike."""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass

from service.errors import TooManyPages, UnsupportedMediaType
from service.ocr.media import MAX_IMAGE_PIXELS, sniff_media_type


@dataclass(frozen=True)
class CheckedDocument:
    media_type: str
    pages_total: int


async def check_document(document: bytes, *, max_pages: int, max_pixels: int = MAX_IMAGE_PIXELS) -> CheckedDocument:
    """Its type from its bytes and its page count, or the DocumentError that refuses it. Headers only:
    the web never decodes an image (a page's pixels are the worker's business)."""
    media_type = sniff_media_type(document[:1024])
    if media_type is None:
        raise UnsupportedMediaType("The document is not a PDF, PNG, JPEG or TIFF (judged from its bytes).")
    # Imported here, not at the top: counting pages is the only thing the web and the worker need PyMuPDF
    # for, and the worker's process would otherwise hold it (some 40 MB) for nothing between documents
    # fetched by URL (BENCHMARKS.md section 13).
    from service.ocr.document import count_pages

    # Opening a large PDF takes a while: keep the event loop free for other requests.
    pages_total = await asyncio.to_thread(
        functools.partial(count_pages, document, media_type, max_pixels=max_pixels, max_pages=max_pages)
    )
    if pages_total > max_pages:
        raise TooManyPages(f"The document has {pages_total} pages; the limit is {max_pages}.")
    return CheckedDocument(media_type, pages_total)
