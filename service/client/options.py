"""What the `ocr-service` command's words mean: connection, formats, where results go, exit codes."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

DEFAULT_SERVER = "http://localhost:8000"
SERVER_ENV = "OCR_SERVICE_URL"
KEY_ENV = "OCR_SERVICE_KEY"
FORMATS = ("text", "json", "hocr", "alto", "pdf")
SUFFIXES = {"text": ".txt", "json": ".json", "hocr": ".hocr", "alto": ".alto.xml", "pdf": ".searchable.pdf"}

# Answers about one document (too large, not a document, unreadable): the other files are still sent.
DOCUMENT_ERRORS = frozenset({413, 415, 422})

EXIT_OK = 0
EXIT_FAILED = 1  # a job failed or was cancelled, or the service answered with an error
EXIT_USAGE = 2  # what argparse uses for bad arguments
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Arguments that cannot work: reported on one line, exit status 2."""


def seconds_arg(raw: str) -> float:
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
