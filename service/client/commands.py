"""The `ocr-service` commands: each takes the client and the parsed arguments, and returns the exit status."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from service.client.http import TERMINAL, ApiError, Job, OcrClient
from service.client.options import (
    DOCUMENT_ERRORS,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    UsageError,
    output_targets,
)
from service.client.output import (
    ProgressBar,
    feed_lines,
    format_error,
    job_error,
    make_directory,
    print_err,
    write,
)
from service.client.pages import Page, PagesInOrder


def cmd_submit(client: OcrClient, args: argparse.Namespace) -> int:
    files = [Path(name) for name in args.files]
    for path in files:
        if not path.is_file() or not os.access(path, os.R_OK):
            raise UsageError(f"{path}: no such readable file")
    fmt = args.format or "text"
    follow = args.follow or args.wait is not None or args.format is not None or args.output is not None
    targets = output_targets([p.name for p in files], args.output, fmt, stdout_is_tty=sys.stdout.isatty())
    for target in targets:
        if target is not None:
            make_directory(target.parent)
    # With several documents on stdout, each one's text goes under a header, as `head` does.
    headers = follow and len(files) > 1 and fmt == "text" and targets[0] is None

    exit_code = EXIT_OK
    pending: list[tuple[str, Job, Path | None]] = []

    def finish_pending() -> None:
        nonlocal exit_code
        while pending:
            exit_code = max(exit_code, _finish(client, args, pending[0], fmt, headers))
            pending.pop(0)

    try:
        for index, (path, target) in enumerate(zip(files, targets, strict=True)):
            try:
                job = client.submit(
                    path,
                    lang=args.lang,
                    dpi=args.dpi,
                    force_ocr=args.force_ocr,
                    pages=args.pages,
                    priority=args.priority,
                    wait=args.wait,
                )
            except ApiError as exc:
                print_err(format_error(exc, subject=str(path)))
                exit_code = EXIT_FAILED
                if exc.status in DOCUMENT_ERRORS:
                    continue
                # Not about this document (a key, a quota, the service): the next ones would fare no better.
                if index + 1 < len(files):
                    print_err(f"error: not submitted: {' '.join(map(str, files[index + 1 :]))}")
                break
            if not follow:
                print(job["id"], flush=True)
                continue
            pending.append((path.name, job, target))
            if args.wait is not None:
                # Synchronous mode: this upload was answered when its job ended (or the wait ran out).
                finish_pending()
        finish_pending()
    except KeyboardInterrupt:
        ids = " ".join(job["id"] for _, job, _ in pending)
        print_err(f"interrupted; these jobs carry on on the server: {ids}" if ids else "interrupted")
        return EXIT_INTERRUPTED
    return exit_code


def _finish(
    client: OcrClient, args: argparse.Namespace, item: tuple[str, Job, Path | None], fmt: str, headers: bool
) -> int:
    """Follow one job to its end with a progress bar, then output its result; the exit code for it."""
    label, job, target = item
    bar = ProgressBar(None if args.quiet else sys.stderr, label)
    try:
        if fmt == "text" and target is None:
            # Text on stdout: each page as soon as it (and every page before it) is done.
            job = _follow_pages(client, job, bar, header=label if headers else None)
        else:
            job = _follow(client, job, bar)
        if job["status"] != "completed":
            raise job_error(job)
        if fmt == "text" and target is None:
            return EXIT_OK
        content = _result(client, job, fmt)
    except ApiError as exc:
        # This document is lost (failed, cancelled, deleted meanwhile); the others may not be.
        print_err(format_error(exc, subject=label))
        return EXIT_FAILED
    write(content, target, header=label if headers else None)
    return EXIT_OK


def _follow_pages(client: OcrClient, job: Job, bar: ProgressBar, *, header: str | None) -> Job:
    """The job as it ended, its pages' texts written to stdout in page order on the way (separated by
    form feeds, as the result's text is), and its progress drawn."""
    order = PagesInOrder(job.get("options", {}).get("pages"))
    out = PageText(bar, header)
    try:
        bar.update(job)
        if job["status"] not in TERMINAL:
            for name, data in client.job_events(job):
                if name == "page":
                    out.write(order.add(data["page"]))
                    continue
                job = data
                bar.update(job)
                # More pages done than told: the stream resumed past the server's kept history.
                if job["status"] not in TERMINAL and int(job.get("pages_done") or 0) > order.seen:
                    for page in client.pages(job["id"], after=order.last_number) or []:
                        out.write(order.add(page))
        if job["status"] == "completed":
            if order.seen < int(job.get("pages_total") or 0):
                # Pages no event told (a cached result, a resume past the history): from the result.
                result = job.get("result") or client.result(job["id"], "json")
                for page in result["pages"]:
                    out.write(order.add(page))
            out.write(order.rest())
    finally:
        bar.finish()
        out.end()
    return job


class PageText:
    """Pages' texts on stdout as one text: the header first, form feeds between pages, a final newline."""

    def __init__(self, bar: ProgressBar, header: str | None) -> None:
        self.bar = bar
        self.header = header
        self.started = False
        self.tail = ""  # the last character written

    def write(self, pages: list[Page]) -> None:
        for page in pages:
            self.bar.finish()  # a bar being redrawn on the terminal ends its line first
            if not self.started and self.header is not None:
                sys.stdout.write(f"==> {self.header} <==\n")
            chunk = ("\f" if self.started else "") + page["text"]
            sys.stdout.write(chunk)
            sys.stdout.flush()
            self.started, self.tail = True, chunk[-1:] or self.tail

    def end(self) -> None:
        if self.started:
            sys.stdout.write("" if self.tail == "\n" else "\n")
            sys.stdout.flush()


def _follow(client: OcrClient, job: Job, bar: ProgressBar) -> Job:
    """The job as it ended, drawing its progress on the way."""
    try:
        bar.update(job)
        if job["status"] not in TERMINAL:
            for change in client.follow(job):
                bar.update(change)
                job = change
        return job
    finally:
        bar.finish()


def _result(client: OcrClient, job: Job, fmt: str) -> str | bytes:
    """The result in `fmt`, as it will be written: from the job (synchronous mode) when it carries it."""
    inline = job.get("result")
    if fmt == "json":
        return json.dumps(inline if inline is not None else client.result(job["id"], "json"), ensure_ascii=False)
    if fmt == "text":
        return str(inline["text"]) if inline is not None else client.result(job["id"], "text")
    if fmt in ("hocr", "alto"):
        return client.result(job["id"], "hocr" if fmt == "hocr" else "alto")
    return client.result(job["id"], "pdf")


def cmd_status(client: OcrClient, args: argparse.Namespace) -> int:
    print(json.dumps(client.job(args.job_id), indent=2, ensure_ascii=False))
    return EXIT_OK


def cmd_result(client: OcrClient, args: argparse.Namespace) -> int:
    fmt = args.format or "text"
    output = args.output
    writes_to_directory = output not in (None, "-") and (Path(output).is_dir() or output.endswith(("/", os.sep)))
    name = client.job(args.job_id)["filename"] if writes_to_directory else args.job_id
    [target] = output_targets([name], output, fmt, stdout_is_tty=sys.stdout.isatty())
    if target is not None:
        make_directory(target.parent)
    content: str | bytes
    if fmt == "json":
        content = json.dumps(client.result(args.job_id, "json"), indent=2, ensure_ascii=False)
    elif fmt == "text":
        content = client.result(args.job_id, "text")
    elif fmt in ("hocr", "alto"):
        content = client.result(args.job_id, "hocr" if fmt == "hocr" else "alto")
    else:
        content = client.result(args.job_id, "pdf")
    write(content, target)
    return EXIT_OK


def cmd_cancel(client: OcrClient, args: argparse.Namespace) -> int:
    job = client.cancel(args.job_id)
    if job["status"] in TERMINAL and job["status"] != "cancelled":
        print_err(f"error: {args.job_id}: the job has already {job['status']}; there is nothing to cancel")
        return EXIT_FAILED
    # A job in work ends `cancelled` once its worker stops; `status` or `watch` show when.
    print(f"{job['id']}: {'cancelled' if job['status'] == 'cancelled' else 'cancelling'}")
    return EXIT_OK


def cmd_delete(client: OcrClient, args: argparse.Namespace) -> int:
    job = client.delete(args.job_id)
    if job is None:
        print(f"{args.job_id}: deleted")
    else:
        print(f"{args.job_id}: was {job['status']}, so it is being cancelled instead; delete it once it has ended")
    return EXIT_OK


def cmd_jobs(client: OcrClient, args: argparse.Namespace) -> int:
    for job in client.jobs(status=args.status, limit=args.limit):
        progress = int(job.get("progress") or 0)
        print(f"{job['id']} {job['status']:<9} {progress:3d}% {job.get('created_at', '')} {job.get('filename', '')}")
    return EXIT_OK


def cmd_watch(client: OcrClient, args: argparse.Namespace) -> int:
    try:
        for name, data in client.watch():
            for line in feed_lines(name, data, datetime.now()):
                print(line, flush=True)
    except KeyboardInterrupt:
        pass  # the way to stop watching
    return EXIT_OK


COMMANDS: dict[str, Callable[[OcrClient, argparse.Namespace], int]] = {
    "submit": cmd_submit,
    "status": cmd_status,
    "result": cmd_result,
    "cancel": cmd_cancel,
    "delete": cmd_delete,
    "jobs": cmd_jobs,
    "watch": cmd_watch,
}
