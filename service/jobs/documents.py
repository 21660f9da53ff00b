"""The check every document passes before its pages are queued, uploaded or downloaded alike."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from service.errors import TooManyPages, UnsupportedMediaType
from service.ocr import count_pages, sniff_media_type


@dataclass(frozen=True)
class CheckedDocument:
    media_type: str
    pages_total: int


async def check_document(document: bytes, *, max_pages: int) -> CheckedDocument:
    """Its type from its bytes and its page count, or the DocumentError that refuses it."""
    media_type = sniff_media_type(document[:1024])
    if media_type is None:
        raise UnsupportedMediaType("The document is not a PDF, PNG, JPEG or TIFF (judged from its bytes).")
    # Opening a large PDF takes a while: keep the event loop free for other requests.
    pages_total = await asyncio.to_thread(count_pages, document, media_type)
    if pages_total > max_pages:
        raise TooManyPages(f"The document has {pages_total} pages; the limit is {max_pages}.")
    return CheckedDocument(media_type, pages_total)
