"""Page work in a pool of long-lived child processes, one page at a time each.

Why processes and not the worker's own threads:

- PyMuPDF holds the GIL while it renders (tens to hundreds of milliseconds a page) and is not
  thread-safe; in a child it can neither stall the worker's event loop nor corrupt a shared document.
- A page can be bounded in time *including rendering* (a hostile content stream can keep MuPDF busy
  for minutes, and MuPDF cannot be interrupted from Python), and in memory (`RLIMIT_AS` in the child).
  Past either limit the child and its Tesseract, one process group, are killed and replaced.
- Cancelling a job kills the process group: the page stops at once, Tesseract included.
- A crash in MuPDF or Tesseract costs one child, never the worker.

The children are started once and reused, so a page pays for a pipe round trip, not a process start.
Each child keeps the last document it read, so a document's bytes cross to it once per job.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import pickle
import resource
import signal
import struct
import sys
import time
from pathlib import Path
from typing import Any

from service.errors import DocumentError, OcrCancelled, TransientOcrError, error_class
from service.ocr import CancelToken, PageOptions, PageResult, process_page

logger = logging.getLogger(__name__)

_FRAME = struct.Struct("!I")
MEMORY_ENV = "OCR_PAGE_MEMORY_BYTES"
PARENT_ENV = "OCR_PAGE_PARENT_PID"
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


class _Child:
    """One child process and the pipe to it."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, memory_bytes: int) -> _Child:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "service.worker.page_pool",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, MEMORY_ENV: str(memory_bytes), PARENT_ENV: str(os.getpid())},
            # Its own process group: killing the group takes its Tesseract along.
            start_new_session=True,
        )
        return cls(process)

    async def ask(self, request: tuple[Any, ...]) -> tuple[Any, ...]:
        assert self.process.stdin is not None and self.process.stdout is not None
        body = pickle.dumps(request)
        self.process.stdin.write(_FRAME.pack(len(body)) + body)
        await self.process.stdin.drain()
        (length,) = _FRAME.unpack(await self.process.stdout.readexactly(_FRAME.size))
        reply: tuple[Any, ...] = pickle.loads(await self.process.stdout.readexactly(length))
        return reply

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    async def reap(self) -> None:
        self.kill()
        with contextlib.suppress(ProcessLookupError):
            await self.process.wait()


class PagePool:
    """`size` children; `run_page` waits for a free one, so the pool also bounds pages in flight."""

    def __init__(self, size: int, *, memory_bytes: int) -> None:
        self.size = size
        self.memory_bytes = memory_bytes
        self._idle: asyncio.Queue[_Child] = asyncio.Queue()
        self._children: set[_Child] = set()
        self._replacing: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        children = await asyncio.gather(*(_Child.start(self.memory_bytes) for _ in range(self.size)))
        for child in children:
            self._children.add(child)
            self._idle.put_nowait(child)

    async def close(self) -> None:
        for task in self._replacing:
            task.cancel()
        await asyncio.gather(*(child.reap() for child in self._children), return_exceptions=True)
        self._children.clear()

    async def run_page(
        self,
        document: Path,
        media_type: str,
        index: int,
        options: PageOptions,
        cancel: CancelToken,
        *,
        deadline_s: float,
    ) -> tuple[PageResult, float]:
        """The page's result, and the seconds it took once a child was free. Past `deadline_s` the child
        is killed and the page fails with TransientOcrError."""
        cancel.raise_if_cancelled()
        child = await self._idle.get()
        started = time.perf_counter()
        healthy = False
        try:
            # While the page runs, cancelling the job kills the child's process group.
            cancel.register(child)  # type: ignore[arg-type]
            try:
                reply = await asyncio.wait_for(child.ask((str(document), media_type, index, options)), deadline_s)
            except TimeoutError:
                raise TransientOcrError(f"page {index + 1} took longer than {deadline_s:g} s and was stopped") from None
            except (asyncio.IncompleteReadError, BrokenPipeError, ConnectionResetError):
                cancel.raise_if_cancelled()
                raise TransientOcrError(f"the process reading page {index + 1} died") from None
            finally:
                cancel.unregister(child)  # type: ignore[arg-type]
            healthy = True
        finally:
            if healthy:
                self._idle.put_nowait(child)
            else:
                self._replace(child)
        return _unpack(reply), time.perf_counter() - started

    def _replace(self, child: _Child) -> None:
        """Kill a child whose page went wrong (or was cancelled) and start a fresh one in its place."""
        self._children.discard(child)
        child.kill()

        async def replace() -> None:
            await child.reap()
            fresh = await _Child.start(self.memory_bytes)
            self._children.add(fresh)
            self._idle.put_nowait(fresh)

        task = asyncio.create_task(replace())
        self._replacing.add(task)
        task.add_done_callback(self._replacing.discard)


def _unpack(reply: tuple[Any, ...]) -> PageResult:
    kind = reply[0]
    if kind == "ok":
        result: PageResult = reply[1]
        return result
    if kind == "document":
        _, code, message = reply
        cls = error_class(code)
        raise (cls if cls is not None and issubclass(cls, DocumentError) else DocumentError)(message, code=code)
    if kind == "cancelled":
        raise OcrCancelled(reply[2])
    raise TransientOcrError(reply[2])


def _serve(stdin: Any, stdout: Any) -> None:
    """The child's loop: read a request, do the page, answer; until the parent closes the pipe."""
    loaded_path: str | None = None
    data = b""
    while True:
        header = stdin.read(_FRAME.size)
        if len(header) < _FRAME.size:
            return
        (length,) = _FRAME.unpack(header)
        path, media_type, index, options = pickle.loads(stdin.read(length))
        reply: tuple[Any, ...]
        try:
            if path != loaded_path:
                data, loaded_path = b"", None
                data, loaded_path = Path(path).read_bytes(), path
            reply = ("ok", process_page(data, media_type, index, options, CancelToken()))
        except DocumentError as exc:
            reply = ("document", exc.code, exc.message)
        except OcrCancelled as exc:
            reply = ("cancelled", "", str(exc))
        except MemoryError:
            reply = ("transient", "", f"page {index + 1} needed more memory than a page may use")
        except Exception as exc:  # noqa: BLE001 - whatever it was, the worker decides about retrying
            reply = ("transient", "", f"page {index + 1} failed: {exc.__class__.__name__}: {exc}")
        body = pickle.dumps(reply)
        stdout.write(_FRAME.pack(len(body)) + body)
        stdout.flush()


def _die_with_the_worker() -> None:
    """A worker killed with SIGKILL cannot stop its page processes, and each would read its page to the
    end, Tesseract included, for nobody. The kernel tells the child instead (SIGTERM as its parent dies),
    and the child takes its process group, Tesseract with it, down at once."""

    def end_group(signum: int, frame: object) -> None:
        os.killpg(os.getpgid(0), signal.SIGKILL)

    signal.signal(signal.SIGTERM, end_group)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != int(os.environ.get(PARENT_ENV, os.getppid())):
        end_group(signal.SIGTERM, None)  # the worker died before the kernel was asked to tell


def child_main() -> None:
    _die_with_the_worker()
    memory_bytes = int(os.environ.get(MEMORY_ENV, "0"))
    if memory_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    # The parent's SIGINT (Ctrl-C in a terminal) is for the parent: it stops the children itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    protocol_out = sys.stdout.buffer
    # stdout carries the protocol: anything a library prints goes to stderr instead.
    sys.stdout = sys.stderr
    try:
        _serve(sys.stdin.buffer, protocol_out)
    except BrokenPipeError:
        # The worker died (SIGKILL) while this page ran: nobody is left to answer, nothing to report.
        os._exit(0)


if __name__ == "__main__":
    child_main()
