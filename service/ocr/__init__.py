"""The synchronous OCR core: pure page work (PyMuPDF rendering, orientation, deskew, Tesseract).

No Redis and no asyncio here. The worker runs process_page() in its page processes
(service/worker/page_pool.py), one call per page, each in a child process it can bound and kill.
"""

from __future__ import annotations

from service.ocr import alto, hocr
from service.ocr.cancel import CancelToken
from service.ocr.document import count_pages, sniff_media_type
from service.ocr.page import PageOptions, PageResult, process_page
from service.ocr.searchable import searchable_pdf
from service.ocr.tesseract import installed_languages

__all__ = [
    "CancelToken",
    "PageOptions",
    "PageResult",
    "alto",
    "count_pages",
    "hocr",
    "installed_languages",
    "process_page",
    "searchable_pdf",
    "sniff_media_type",
]
