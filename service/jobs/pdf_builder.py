"""Building searchable PDFs in child processes of the web, one at a time, bounded in time and memory.

PyMuPDF holds the GIL while it writes a PDF (seconds for a large document), so a build on one of the
web's threads would stall its event loop and every other request with it (for seconds, with a
large document). In a child process it stalls nothing. Each build has a child of its own, forked from a
forkserver that has PyMuPDF loaded already, so a build that runs too long, or a document that crashes
MuPDF, costs that child and never the web; one build at a time bounds what `?format=pdf` can take from
the web (later requests wait their turn before they read anything from Redis).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from multiprocessing.connection import Connection
from typing import Any

from service.errors import DocumentError, UnprocessableDocument, error_class
from service.ocr.result import PageResult

_context = multiprocessing.get_context("forkserver")
_context.set_forkserver_preload(["service.ocr.searchable"])


class PdfBuilder:
    def __init__(self, *, timeout_s: float, memory_bytes: int) -> None:
        self.timeout_s = timeout_s
        self.memory_bytes = memory_bytes
        self._slot = asyncio.Semaphore(1)

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Hold the one build slot: taken before the document is read, so waiting requests hold nothing."""
        async with self._slot:
            yield

    async def build(self, document: bytes, media_type: str, pages: list[PageResult]) -> bytes:
        """The searchable PDF; a DocumentError when the document cannot be made into one in time."""
        receiver, sender = _context.Pipe(duplex=False)
        process = _context.Process(
            target=_build, args=(sender, document, media_type, pages, self.memory_bytes), daemon=True
        )
        try:
            # Starting hands the arguments (the document) to the child: not on the event loop.
            await asyncio.to_thread(process.start)
            sender.close()
            try:
                reply = await asyncio.wait_for(asyncio.to_thread(receiver.recv), self.timeout_s)
            except TimeoutError:
                raise UnprocessableDocument(
                    f"the searchable PDF took longer than {self.timeout_s:g} s to build and was stopped"
                ) from None
            except EOFError:
                raise UnprocessableDocument("the searchable PDF could not be built: its builder died") from None
        finally:
            if process.pid is not None:  # it started
                process.kill()
                await asyncio.to_thread(process.join)
            receiver.close()
        return _unpack(reply)


def _unpack(reply: tuple[Any, ...]) -> bytes:
    if reply[0] == "ok":
        pdf: bytes = reply[1]
        return pdf
    _, code, message = reply
    cls = error_class(code)
    raise (cls if cls is not None and issubclass(cls, DocumentError) else UnprocessableDocument)(message, code=code)


def _build(sender: Connection, document: bytes, media_type: str, pages: list[PageResult], memory_bytes: int) -> None:
    """The child: build, send the PDF or what went wrong, exit."""
    # Imported in the child only (the forkserver preloads it): the web's own process stays without PyMuPDF.
    from service.ocr.searchable import searchable_pdf

    if memory_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    reply: tuple[Any, ...]
    try:
        reply = ("ok", searchable_pdf(document, media_type, pages))
    except DocumentError as exc:
        reply = ("error", exc.code, exc.message)
    except MemoryError:
        reply = ("error", UnprocessableDocument.code, "the searchable PDF needed more memory than a build may use")
    except Exception as exc:  # noqa: BLE001 - whatever MuPDF raised, the answer is a clean error
        reply = ("error", UnprocessableDocument.code, f"the searchable PDF could not be built: {exc}")
    sender.send(reply)
    sender.close()
