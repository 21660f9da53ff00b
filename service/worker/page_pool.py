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

from service.childenv import minimal_env
from service.errors import DocumentError, OcrCancelled, TextTooLarge, TransientOcrError, error_class
from service.ocr import CancelToken, PageOptions, PageResult
from service.ocr.record import PackedPage, pack, record_json

logger = logging.getLogger(__name__)

_FRAME = struct.Struct("!I")
MEMORY_ENV = "OCR_PAGE_MEMORY_BYTES"
PARENT_ENV = "OCR_PAGE_PARENT_PID"
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_LIBC = ctypes.CDLL(None, use_errno=True)
# The directory holding the `service` package: the child imports it from there, wherever it was started.
_ROOT = Path(__file__).resolve().parents[2]
# A replacement child that fails to start (out of memory, out of processes) is tried again after
# 0.5 s, then 1, 2 ... at most 30 s apart, for as long as the pool lives.
REPLACE_FIRST_DELAY_S = 0.5
REPLACE_MAX_DELAY_S = 30.0
# How long a page may wait for a free child beyond its own deadline: every page run ends within its
# deadline, so a working pool frees a child sooner; this covers starting the replacement.
WAIT_SLACK_S = 5.0
# How often a page waiting for a child looks at its job's cancel flag.
_CANCEL_POLL_S = 0.2


def child_env(memory_bytes: int) -> dict[str, str]:
    """A page process's environment: the minimal one (no secrets), its memory cap, and where `service` is.

    numpy's OpenBLAS would start a thread per core at import, each with its own stack and malloc arena:
    180 MB of address space that a page process (one per core already) never uses, and that would count
    against its `PAGE_MEMORY_MB`."""
    python_path = os.pathsep.join(p for p in (str(_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return minimal_env({MEMORY_ENV: str(memory_bytes), "PYTHONPATH": python_path, "OPENBLAS_NUM_THREADS": "1"})


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
            env=child_env(memory_bytes) | {PARENT_ENV: str(os.getpid())},
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

    def __init__(self, size: int, *, memory_bytes: int, max_page_bytes: int = 0) -> None:
        self.size = size
        self.memory_bytes = memory_bytes
        # What one page may store (its record before compression, service/ocr/record.py); 0: no cap.
        self.max_page_bytes = max_page_bytes
        self._idle: asyncio.Queue[_Child] = asyncio.Queue()
        self._children: set[_Child] = set()
        self._replacing: set[asyncio.Task[None]] = set()
        self._freed_at = time.monotonic()

    async def start(self) -> None:
        children = await asyncio.gather(*(_Child.start(self.memory_bytes) for _ in range(self.size)))
        for child in children:
            self._free(child)

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
        reply, seconds = await self._ask((str(document), media_type, index, options, self.max_page_bytes),
                                         index, cancel, deadline_s)  # fmt: skip
        return _unpack(reply), seconds

    async def run_text_pages(
        self, document: Path, media_type: str, indices: list[int], cancel: CancelToken, *, deadline_s: float
    ) -> tuple[list[PackedPage], float]:
        """The pages at `indices` read from their text layers, in one child's turn, packed to store
        (service/ocr/record.py); and the seconds they took once a child was free. The reading stops at
        the first page without a text layer or that cannot be read so: the pages from there on are
        left out of the answer, to be run one at a time. Past `deadline_s` for all of them, the child
        is killed and TransientOcrError raised."""
        reply, seconds = await self._ask((str(document), media_type, indices, None, self.max_page_bytes),
                                         indices[0], cancel, deadline_s)  # fmt: skip
        if reply[0] != "ok":
            _unpack(reply)  # raises the failure it reports
        packed: list[PackedPage] = reply[1]
        return packed, seconds

    async def _ask(
        self, request: tuple[Any, ...], index: int, cancel: CancelToken, deadline_s: float
    ) -> tuple[tuple[Any, ...], float]:
        child = await self._take(index, cancel, deadline_s)
        started = time.perf_counter()
        healthy = False
        try:
            # While the page runs, cancelling the job kills the child's process group.
            cancel.register(child)  # type: ignore[arg-type]
            try:
                reply = await asyncio.wait_for(child.ask(request), deadline_s)
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
                self._free(child)
            else:
                self._replace(child)
        return reply, time.perf_counter() - started

    async def _take(self, index: int, cancel: CancelToken, deadline_s: float) -> _Child:
        """A free child. The wait ends with OcrCancelled when the job is cancelled, and with
        TransientOcrError when no child has come free for longer than a page may run (the pool is
        short of children it cannot start), so a page never waits for ever."""
        waited_from = time.monotonic()
        while True:
            cancel.raise_if_cancelled()
            left_s = deadline_s + WAIT_SLACK_S - (time.monotonic() - max(waited_from, self._freed_at))
            if left_s <= 0:
                raise TransientOcrError(f"no page process came free for page {index + 1} in {deadline_s:g} s")
            try:
                # Queue.get leaves the item in the queue when it is cancelled: no child is lost here.
                async with asyncio.timeout(min(left_s, _CANCEL_POLL_S)):
                    child = await self._idle.get()
            except TimeoutError:
                continue
            if cancel.cancelled:
                self._free(child)
                raise OcrCancelled("the job was cancelled")
            return child

    def _free(self, child: _Child) -> None:
        self._children.add(child)
        self._freed_at = time.monotonic()
        self._idle.put_nowait(child)

    def _replace(self, child: _Child) -> None:
        """Kill a child whose page went wrong (or was cancelled) and start a fresh one in its place."""
        self._children.discard(child)
        child.kill()
        task = asyncio.create_task(self._start_replacement(child))
        self._replacing.add(task)
        task.add_done_callback(self._replacing.discard)

    async def _start_replacement(self, dead: _Child) -> None:
        """Start the replacement, trying again with backoff while it cannot start: the pool never
        shrinks for good."""
        await dead.reap()
        delay_s = REPLACE_FIRST_DELAY_S
        while True:
            try:
                fresh = await _Child.start(self.memory_bytes)
            except OSError as exc:
                logger.warning("a page process could not be started (%s); trying again in %g s", exc, delay_s)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, REPLACE_MAX_DELAY_S)
                continue
            self._free(fresh)
            return


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
    # Imported in the child only (it is started afresh with `-m`, not forked): the worker's own process
    # stays without PyMuPDF, OpenCV and numpy (BENCHMARKS.md section 13).
    from service.ocr.page import process_page

    loaded_path: str | None = None
    data = b""
    while True:
        header = stdin.read(_FRAME.size)
        if len(header) < _FRAME.size:
            return
        (length,) = _FRAME.unpack(header)
        # `index` is a list for text-layer pages read in one turn (PagePool.run_text_pages).
        path, media_type, index, options, max_page_bytes = pickle.loads(stdin.read(length))
        number = (index[0] if isinstance(index, list) else index) + 1
        reply: tuple[Any, ...]
        try:
            if path != loaded_path:
                data, loaded_path = b"", None
                data, loaded_path = Path(path).read_bytes(), path
            if isinstance(index, list):
                _write_reply(stdout, ("ok", _text_pages(data, media_type, index, max_page_bytes)))
                continue
            page = process_page(data, media_type, index, options, CancelToken())
            # Checked here, before it crosses the pipe: one content stream shared by every page of a
            # small PDF can carry megabytes of text into each of them.
            if max_page_bytes and (size := len(record_json(page))) > max_page_bytes:
                raise TextTooLarge(
                    f"page {index + 1} has {size // 1024} KB of text; at most {max_page_bytes // 1024} KB a page "
                    "are kept"
                )
            reply = ("ok", page)
        except DocumentError as exc:
            reply = ("document", exc.code, exc.message)
        except OcrCancelled as exc:
            reply = ("cancelled", "", str(exc))
        except MemoryError:
            reply = ("transient", "", f"page {number} needed more memory than a page may use")
        except Exception as exc:  # noqa: BLE001 - whatever it was, the worker decides about retrying
            reply = ("transient", "", f"page {number} failed: {exc.__class__.__name__}: {exc}")
        _write_reply(stdout, reply)


def _write_reply(stdout: Any, reply: tuple[Any, ...]) -> None:
    body = pickle.dumps(reply)
    stdout.write(_FRAME.pack(len(body)) + body)
    stdout.flush()
    _give_back_memory()


def _text_pages(data: bytes, media_type: str, indices: list[int], max_page_bytes: int) -> list[PackedPage]:
    """The pages read from their text layers, up to the first that has none, is over `max_page_bytes`,
    or fails in any way: that one and those after it are for the worker to run one at a time, where
    OCR, the caps and failures are dealt with as for any page."""
    from service.ocr.page import text_layer_page

    packed: list[PackedPage] = []
    for index in indices:
        try:
            page = text_layer_page(data, media_type, index)
        except Exception:  # noqa: BLE001 - run again alone, the page's failure is reported as usual
            break
        if page is None:
            break
        ready = pack(page)
        if max_page_bytes and ready.size > max_page_bytes:
            break
        packed.append(ready)
    return packed


def _give_back_memory() -> None:
    """Hand the memory a page freed back to the system. A huge page's arrays come and go as separate
    mappings, but the smaller pieces of its work stay in the C heap, which glibc keeps for reuse: a
    page process that once read a 40-megapixel page would hold tens of MB more for the rest of its life."""
    with contextlib.suppress(OSError, AttributeError):
        _LIBC.malloc_trim(0)


def _die_with_the_worker() -> None:
    """A worker killed with SIGKILL cannot stop its page processes, and each would read its page to the
    end, Tesseract included, for nobody. The kernel tells the child instead (SIGTERM as its parent dies),
    and the child takes its process group, Tesseract with it, down at once."""

    def end_group(signum: int, frame: object) -> None:
        os.killpg(os.getpgid(0), signal.SIGKILL)

    signal.signal(signal.SIGTERM, end_group)
    with contextlib.suppress(OSError, AttributeError):
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
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
