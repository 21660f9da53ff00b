"""The check every document passes before its pages are queued, uploaded or downloaded alike."""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass

from service.errors import TooManyPages, UnsupportedMediaType
from service.ocr import count_pages, sniff_media_type
from service.ocr.document import MAX_IMAGE_PIXELS


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
    # Opening a large PDF takes a while: keep the event loop free for other requests.
    pages_total = await asyncio.to_thread(
        functools.partial(count_pages, document, media_type, max_pixels=max_pixels, max_pages=max_pages)
    )
    if pages_total > max_pages:
        raise TooManyPages(f"The document has {pages_total} pages; the limit is {max_pages}.")
    return CheckedDocument(media_type, pages_total)
