"""`ocr-service`: submit documents to the OCR service and follow them from a terminal.

Everything goes through the client (service/client/http.py); this module parses the arguments and
runs a command (service/client/commands.py), which draws progress on stderr and writes results
(service/client/output.py). The `--help` texts are the user's documentation.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence

import httpx

from service.client.commands import COMMANDS
from service.client.http import STATUSES, ApiError, OcrClient
from service.client.options import (
    DEFAULT_SERVER,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    FORMATS,
    KEY_ENV,
    SERVER_ENV,
    UsageError,
    connection_settings,
    seconds_arg,
)
from service.client.output import format_error, print_err, transport_error

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
the job runs and print its text on stdout, each page as soon as it and every page before it are
done, pages separated by form feeds (with several files, each under a "==> FILE <==" header). Or
the --format chosen, written when the job ends: `json` prints each result object as one line of
JSON; `hocr` (hOCR 1.2 XHTML) and `alto` (ALTO v4 XML) give the words with their boxes; `pdf` (a
searchable PDF) must go to --output. All files are submitted first, so the service works on them
together, then followed one after the other.

--pages SPEC: only these pages are read and returned, with their own page numbers.
--priority low: for backfills; its pages run only while no normal-priority page is waiting.

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
    submit.add_argument(
        "--pages",
        metavar="SPEC",
        help="read only these pages, e.g. 1-3,7,10- (pages count from 1; 10- runs to the end)",
    )
    submit.add_argument(
        "--priority",
        choices=["normal", "low"],
        help="low: a bulk job whose pages run only when no normal page waits (default normal)",
    )
    submit.add_argument(
        "--follow", action="store_true", help="show progress and print each page's text as it is done, in page order"
    )
    submit.add_argument(
        "--wait",
        type=seconds_arg,
        metavar="N",
        help="synchronous mode: let the server hold each upload up to N seconds",
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
    jobs.add_argument("--status", choices=STATUSES)
    jobs.add_argument("--limit", type=int, metavar="N", help="at most N jobs (default: the server's, 50)")

    command("watch", "print every change to your jobs, live", WATCH_DESCRIPTION)
    return parser


def _add_output_arguments(parser: argparse.ArgumentParser, *, default_help: str) -> None:
    parser.add_argument("--format", choices=FORMATS, help=f"what to output ({default_help})")
    parser.add_argument("--output", metavar="PATH", help='write there instead of stdout (a PDF must); "-" is stdout')


def main(argv: Sequence[str] | None = None) -> int:
    """The `ocr-service` command; its exit status."""
    args = build_parser().parse_args(argv)
    server = getattr(args, "server", DEFAULT_SERVER)
    try:
        server, key = connection_settings(args, os.environ)
        with OcrClient(server, key) as client:
            return COMMANDS[args.command](client, args)
    except UsageError as exc:
        print_err(f"error: {exc}")
        return EXIT_USAGE
    except ApiError as exc:
        print_err(format_error(exc))
        return EXIT_FAILED
    except httpx.HTTPError as exc:
        print_err(transport_error(server, exc))
        return EXIT_FAILED
    except BrokenPipeError:
        # The reader went away (`ocr-service watch | head`): stop quietly, as Unix tools do, and keep
        # Python from complaining about stdout once more at exit.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except OSError as exc:  # writing --output
        print_err(f"error: {exc.filename}: {exc.strerror or exc}" if exc.filename else f"error: {exc}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        print_err("interrupted")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
