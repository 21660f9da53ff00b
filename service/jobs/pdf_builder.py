"""Building searchable PDFs in a child process of the web, one at a time.

PyMuPDF holds the GIL while it writes a PDF (seconds for a large document), so a build on one of the
web's threads would stall its event loop and every other request with it. In a child process it
stalls nothing; one child, and one build at a time, bound the CPU and memory `?format=pdf` can take
from the web (later requests wait their turn before they read anything from Redis).
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager

from service.ocr import searchable_pdf
from service.ocr.page import PageResult


class PdfBuilder:
    def __init__(self) -> None:
        self._slot = asyncio.Semaphore(1)
        self._executor: ProcessPoolExecutor | None = None

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Hold the one build slot: taken before the document is read, so waiting requests hold nothing."""
        async with self._slot:
            yield

    async def build(self, document: bytes, media_type: str, pages: list[PageResult]) -> bytes:
        if self._executor is None:
            # forkserver: a child forked from a clean server process, not from this threaded, running loop.
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["service.ocr.searchable"])
            self._executor = ProcessPoolExecutor(max_workers=1, mp_context=context)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, searchable_pdf, document, media_type, pages)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
