"""`ocr-service`: submit documents to the OCR service and follow them from a terminal.

Everything goes through service/client.py; this module parses arguments, draws progress on stderr
and writes results. The `--help` texts are the user's documentation.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import httpx

from service.client import TERMINAL, ApiError, Job, OcrClient

DEFAULT_SERVER = "http://localhost:8000"
SERVER_ENV = "OCR_SERVICE_URL"
KEY_ENV = "OCR_SERVICE_KEY"
FORMATS = ("text", "json", "pdf")
SUFFIXES = {"text": ".txt", "json": ".json", "pdf": ".searchable.pdf"}
BAR_WIDTH = 24

# Answers about one document (too large, not a document, unreadable): the other files are still sent.
DOCUMENT_ERRORS = frozenset({413, 415, 422})

EXIT_OK = 0
EXIT_FAILED = 1  # a job failed or was cancelled, or the service answered with an error
EXIT_USAGE = 2  # what argparse uses for bad arguments
EXIT_INTERRUPTED = 130

EPILOG = f"""\
environment:
  {SERVER_ENV}   the service's URL when --server is not given (default {DEFAULT_SERVER})
  {KEY_ENV}   the API key when --key is not given; prefer it to --key, which other users can see in `ps`

exit status:
  0    everything asked for succeeded
  1    a job failed or was cancelled, or the service answered with an error (printed as
       "error: <code>: <message>" on stderr)
  2    usage error: bad arguments, a file that cannot be read
  130  interrupted (Ctrl-C); jobs already submitted carry on on the server
"""

SUBMIT_DESCRIPTION = """\
Submit documents (PDF, PNG, JPEG or TIFF) for OCR.

Without --follow, --wait, --format or --output: print each job's id, one per line, and exit at
once; look at the jobs later with `status`, `result` or `watch`.

With --follow (implied by --format and --output): draw a progress bar per file on stderr while
the job runs and, when it ends, print its text on stdout (with several files, each under a
"==> FILE <==" header), or the --format chosen: `json` prints each result object as one line of
JSON; `pdf` (a searchable PDF) must go to --output. All files are submitted first, so the
service works on them together, then followed one after the other.

--output: the file to write, for one document; with several documents, or when it is an existing
directory or ends with "/", a directory (created when missing) that receives FILE's name with
.txt, .json or .searchable.pdf in place of its extension. "-" means stdout.

--wait N: the synchronous mode: each upload is answered when its job ends, if that takes at most
N seconds (the server allows up to 25); otherwise its progress is followed as with --follow.
"""

WATCH_DESCRIPTION = """\
Print every change to your jobs as it happens, one line each:
  <time> <job id, first 8 characters> <status> <progress>% <file>: <message>
Jobs that exist when it starts are listed first. Ctrl-C stops it (exit status 0).
"""


class UsageError(Exception):
    """Arguments that cannot work: reported on one line, exit status 2."""


# -- arguments


def build_parser() -> argparse.ArgumentParser:
    # --server and --key are accepted before and after the command. SUPPRESS keeps the subcommand's
    # (absent) value from overwriting one given before it; main() applies the defaults.
    connection = argparse.ArgumentParser(add_help=False)
    group = connection.add_argument_group("connection")
    group.add_argument(
        "--server",
        metavar="URL",
        default=argparse.SUPPRESS,
        help=f"the service's URL (default: ${SERVER_ENV} or {DEFAULT_SERVER})",
    )
    group.add_argument("--key", metavar="KEY", default=argparse.SUPPRESS, help=f"API key (default: ${KEY_ENV})")

    parser = argparse.ArgumentParser(
        prog="ocr-service",
        description="Command-line client of the OCR service: submit documents, follow their progress, get the text.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[connection],
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str, description: str | None = None) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=help_text,
            description=description or help_text[0].upper() + help_text[1:] + ".",
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            parents=[connection],
        )

    submit = command("submit", "submit documents; optionally follow them and print their text", SUBMIT_DESCRIPTION)
    submit.add_argument("files", nargs="+", metavar="FILE", help="documents to OCR")
    submit.add_argument("--lang", metavar="L", help="Tesseract languages, e.g. eng or eng+deu (default: eng)")
    submit.add_argument("--dpi", type=int, metavar="N", help="resolution pages are rendered at, 72..600 (default 300)")
    submit.add_argument("--force-ocr", action="store_true", help="OCR pages even when they already have a text layer")
    submit.add_argument("--follow", action="store_true", help="show progress, then print the result when done")
    submit.add_argument(
        "--wait", type=_seconds, metavar="N", help="synchronous mode: let the server hold each upload up to N seconds"
    )
    _add_output_arguments(submit, default_help="default: text; implies --follow")
    submit.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")

    status = command("status", "print a job object as JSON")
    status.add_argument("job_id", metavar="ID")

    result = command("result", "print or write a completed job's result")
    result.add_argument("job_id", metavar="ID")
    _add_output_arguments(result, default_help="default: text")

    cancel = command("cancel", "cancel a queued or running job")
    cancel.add_argument("job_id", metavar="ID")

    delete = command("delete", "delete a finished job and its stored data")
    delete.add_argument("job_id", metavar="ID")

    jobs = command("jobs", "list your jobs, newest first: id, status, progress, created, file")
    jobs.add_argument("--status", choices=("queued", "running", "completed", "failed", "cancelled"))
    jobs.add_argument("--limit", type=int, metavar="N", help="at most N jobs (default: the server's, 50)")

    command("watch", "print every change to your jobs, live", WATCH_DESCRIPTION)
    return parser


def _add_output_arguments(parser: argparse.ArgumentParser, *, default_help: str) -> None:
    parser.add_argument("--format", choices=FORMATS, help=f"what to output ({default_help})")
    parser.add_argument("--output", metavar="PATH", help='write there instead of stdout (a PDF must); "-" is stdout')


def _seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {raw!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"not a number of seconds: {raw!r}")
    return value


def connection_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[str, str | None]:
    """(server URL, API key or None): the arguments, else the environment, else the defaults."""
    server = getattr(args, "server", None) or environ.get(SERVER_ENV) or DEFAULT_SERVER
    key = getattr(args, "key", None) or environ.get(KEY_ENV) or None
    try:
        url = httpx.URL(server)
    except httpx.InvalidURL:
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise UsageError(f"the server must be an http:// or https:// URL, not {server!r}")
    return server, key


def output_targets(names: Sequence[str], output: str | None, fmt: str, *, stdout_is_tty: bool) -> list[Path | None]:
    """Where each document's result goes: a path, or None for stdout. See SUBMIT_DESCRIPTION."""
    if output is None or output == "-":
        if fmt == "pdf" and (output is None or stdout_is_tty):
            raise UsageError("a PDF is not for a terminal: give --output FILE (or --output - to pipe it)")
        if fmt == "pdf" and len(names) > 1:
            raise UsageError("several PDFs cannot share stdout: give --output DIRECTORY")
        return [None] * len(names)
    path = Path(output)
    if len(names) == 1 and not (path.is_dir() or output.endswith(("/", os.sep))):
        return [path]
    taken: set[str] = set()
    targets: list[Path | None] = []
    for name in names:
        stem = Path(name).stem or "document"
        candidate, n = stem + SUFFIXES[fmt], 2
        while candidate in taken:  # a/scan.pdf and b/scan.pdf must not overwrite each other
            candidate, n = f"{stem}-{n}{SUFFIXES[fmt]}", n + 1
        taken.add(candidate)
        targets.append(path / candidate)
    return targets


# -- what the user sees


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


def _transport_error(server: str, exc: httpx.HTTPError) -> str:
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return f"error: {server} did not answer in time ({detail})"
    return f"error: cannot reach {server}: {detail}"


# -- commands


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
            _make_directory(target.parent)
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
        for index, (path, target) in enumerate(zip(files, targets)):
            try:
                job = client.submit(path, lang=args.lang, dpi=args.dpi, force_ocr=args.force_ocr, wait=args.wait)
            except ApiError as exc:
                _print_err(format_error(exc, subject=str(path)))
                exit_code = EXIT_FAILED
                if exc.status in DOCUMENT_ERRORS:
                    continue
                # Not about this document (a key, a quota, the service): the next ones would fare no better.
                if index + 1 < len(files):
                    _print_err(f"error: not submitted: {' '.join(map(str, files[index + 1 :]))}")
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
        _print_err(f"interrupted; these jobs carry on on the server: {ids}" if ids else "interrupted")
        return EXIT_INTERRUPTED
    return exit_code


def _finish(
    client: OcrClient, args: argparse.Namespace, item: tuple[str, Job, Path | None], fmt: str, headers: bool
) -> int:
    """Follow one job to its end with a progress bar, then output its result; the exit code for it."""
    label, job, target = item
    try:
        job = _follow(client, job, ProgressBar(None if args.quiet else sys.stderr, label))
        if job["status"] != "completed":
            raise job_error(job)
        content = _result(client, job, fmt)
    except ApiError as exc:
        # This document is lost (failed, cancelled, deleted meanwhile); the others may not be.
        _print_err(format_error(exc, subject=label))
        return EXIT_FAILED
    _write(content, target, header=label if headers else None)
    return EXIT_OK


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
    return client.result(job["id"], "pdf")


def _write(content: str | bytes, target: Path | None, *, header: str | None = None) -> None:
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


def _make_directory(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the directory {path}: {exc.strerror or exc}") from None


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
        _make_directory(target.parent)
    content: str | bytes
    if fmt == "json":
        content = json.dumps(client.result(args.job_id, "json"), indent=2, ensure_ascii=False)
    elif fmt == "text":
        content = client.result(args.job_id, "text")
    else:
        content = client.result(args.job_id, "pdf")
    _write(content, target)
    return EXIT_OK


def cmd_cancel(client: OcrClient, args: argparse.Namespace) -> int:
    job = client.cancel(args.job_id)
    if job["status"] in TERMINAL and job["status"] != "cancelled":
        _print_err(f"error: {args.job_id}: the job has already {job['status']}; there is nothing to cancel")
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


def _print_err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """The `ocr-service` command; its exit status."""
    args = build_parser().parse_args(argv)
    server = getattr(args, "server", DEFAULT_SERVER)
    try:
        server, key = connection_settings(args, os.environ)
        with OcrClient(server, key) as client:
            return COMMANDS[args.command](client, args)
    except UsageError as exc:
        _print_err(f"error: {exc}")
        return EXIT_USAGE
    except ApiError as exc:
        _print_err(format_error(exc))
        return EXIT_FAILED
    except httpx.HTTPError as exc:
        _print_err(_transport_error(server, exc))
        return EXIT_FAILED
    except BrokenPipeError:
        # The reader went away (`ocr-service watch | head`): stop quietly, as Unix tools do, and keep
        # Python from complaining about stdout once more at exit.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except OSError as exc:  # writing --output
        _print_err(f"error: {exc.filename}: {exc.strerror or exc}" if exc.filename else f"error: {exc}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        _print_err("interrupted")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
