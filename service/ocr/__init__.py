"""The synchronous OCR core: pure page work (PyMuPDF rendering, orientation, deskew, Tesseract).

No Redis and no asyncio here. The worker runs process_page() in its page processes
(service/worker/page_pool.py), one call per page, each in a child process it can bound and kill.

Importing the package loads no PyMuPDF, OpenCV or numpy: the worker and the web hold pages, options
and cancel tokens but render nothing, and those libraries would cost each of them some 70 MB of
memory (BENCHMARKS.md section 13). The names that need them (count_pages, process_page,
searchable_pdf) are imported on first use by __getattr__ below; tests/unit/test_layout.py checks it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from service.ocr import alto, hocr
from service.ocr.cancel import CancelToken
from service.ocr.media import sniff_media_type
from service.ocr.result import PageOptions, PageResult
from service.ocr.tesseract import installed_languages

if TYPE_CHECKING:
    from service.ocr.document import count_pages
    from service.ocr.page import process_page
    from service.ocr.searchable import searchable_pdf

# The heavy names, by the module that holds each.
_HEAVY = {
    "count_pages": "service.ocr.document",
    "process_page": "service.ocr.page",
    "searchable_pdf": "service.ocr.searchable",
}

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


def __getattr__(name: str) -> Any:
    if name not in _HEAVY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HEAVY[name]), name)
