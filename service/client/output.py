"""What the user sees: progress bars on stderr, error lines, the feed's lines, results written out."""

from __future__ import annotations

import shutil
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import httpx

from service.client.http import ApiError, Job
from service.client.options import KEY_ENV, UsageError

BAR_WIDTH = 24


def render_progress(label: str, job: Job, *, width: int = BAR_WIDTH) -> str:
    """`scan.pdf [######------------------]  25% running   OCR page 1 of 4`"""
    progress = max(0, min(100, int(job.get("progress") or 0)))
    filled = progress * width // 100
    status = str(job.get("status", "?"))
    message = str(job.get("message") or "")
    # Most steps say more than the status ("OCR page 1 of 4"); "Completed" says the same again.
    detail = "" if message.lower() == status.lower() else message
    return f"{label} [{'#' * filled}{'-' * (width - filled)}] {progress:3d}% {status:<9} {detail}".rstrip()


class ProgressBar:
    """One document's progress: redrawn in place (\\r) on a terminal, one line per change otherwise;
    nothing without a stream."""

    def __init__(
        self, stream: TextIO | None, label: str, *, tty: bool | None = None, columns: int | None = None
    ) -> None:
        self.stream = stream
        self.label = label
        self.tty = (stream is not None and stream.isatty()) if tty is None else tty
        self.columns = columns or shutil.get_terminal_size().columns
        self._last = ""
        self._drawn = 0

    def update(self, job: Job) -> None:
        line = render_progress(self.label, job)
        if self.stream is None or line == self._last:
            return
        self._last = line
        if self.tty:
            # A line longer than the terminal wraps, and \r would then redraw only its last part.
            line = line[: max(self.columns - 1, 10)]
            self.stream.write("\r" + line.ljust(self._drawn))
            self._drawn = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.stream is not None and self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = 0


def format_error(exc: ApiError, subject: str | None = None) -> str:
    """`error: [subject: ]<code>: <message>` on one line, with a hint where one helps."""
    message = " ".join(exc.message.split())
    line = ": ".join(["error", *([subject] if subject else []), exc.code, message])
    if exc.status == 401:
        line += f" (give --key or set {KEY_ENV})"
    elif exc.retry_after_s is not None:
        line += f" (retry in {exc.retry_after_s:g} s)"
    return line


def job_error(job: Job) -> ApiError:
    """Why a job that ended did not complete, as the error the CLI reports."""
    error = job.get("error") or {}
    if job.get("status") == "cancelled":
        return ApiError(409, "cancelled", "The job was cancelled.")
    return ApiError(422, str(error.get("code") or "failed"), str(error.get("message") or "The job failed."))


def feed_lines(name: str, data: Any, now: datetime) -> list[str]:
    """The lines `watch` prints for one event of the tenant feed."""
    clock = now.strftime("%H:%M:%S")
    if name == "snapshot":
        # Newest first from the server; oldest first reads like the log that follows.
        return [_feed_line(clock, job) for job in reversed(data.get("jobs", []))]
    if name == "deleted":
        return [f"{clock} {str(data.get('id', ''))[:8]} deleted"]
    return [_feed_line(clock, data)]


def _feed_line(clock: str, job: Job) -> str:
    progress = int(job.get("progress") or 0)
    message = job.get("message") or ""
    return (
        f"{clock} {str(job['id'])[:8]} {job['status']:<9} {progress:3d}% {job.get('filename', '')}: {message}".rstrip()
    )


def transport_error(server: str, exc: httpx.HTTPError) -> str:
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return f"error: {server} did not answer in time ({detail})"
    return f"error: cannot reach {server}: {detail}"


def write(content: str | bytes, target: Path | None, *, header: str | None = None) -> None:
    if target is not None:
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content if content.endswith("\n") else content + "\n", encoding="utf-8")
        return
    if isinstance(content, bytes):
        sys.stdout.flush()
        sys.stdout.buffer.write(content)
        sys.stdout.buffer.flush()
        return
    if header is not None:
        sys.stdout.write(f"==> {header} <==\n")
    sys.stdout.write(content if content.endswith("\n") else content + "\n")
    sys.stdout.flush()


def make_directory(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the directory {path}: {exc.strerror or exc}") from None


def print_err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
