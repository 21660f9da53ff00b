"""Reading a submission: the body (multipart, raw, or a JSON pointer to a URL), its size and its options.

The body is read in chunks and refused with 413 as soon as it passes the limit, so an oversized
upload never sits in memory whole. The document's type is decided later from its bytes.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import AsyncGenerator, Mapping
from dataclasses import replace
from typing import Any

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request

from service.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from service.jobs.schedule import NORMAL, PRIORITIES
from service.jobs.submit import Submission
from service.params import (
    MAX_NUMBER_CHARS,
    ascii_int,
    format_pages,
    header_text,
    load_json,
    parse_bool,
    parse_choice,
    parse_idempotency_key,
    parse_int,
    parse_media_type,
    parse_pages,
    parse_url,
)

RAW_MEDIA_TYPES = ("application/pdf", "image/png", "image/jpeg", "image/tiff")
MULTIPART_OVERHEAD_BYTES = 256 * 1024
MAX_FORM_FIELDS = 16
LANG_PATTERN = re.compile(r"^[A-Za-z0-9_]{1,32}(\+[A-Za-z0-9_]{1,32}){0,7}$")
DPI_RANGE = (72, 600)


async def read_submission(request: Request, *, max_bytes: int, installed_langs: frozenset[str]) -> Submission:
    # Checked before the body is read: a bad key is refused without reading megabytes first.
    raw_key = header_text(request.headers, "idempotency-key")
    key = None if raw_key is None else parse_idempotency_key(raw_key)
    return replace(await _read_body_and_options(request, max_bytes, installed_langs), idempotency_key=key)


async def _read_body_and_options(request: Request, max_bytes: int, installed_langs: frozenset[str]) -> Submission:
    media_type = parse_media_type(request.headers.get("content-type"))
    if media_type == "multipart/form-data":
        return await _read_multipart(request, max_bytes, installed_langs)
    if media_type == "application/json":
        return await _read_json(request, installed_langs)
    if media_type in RAW_MEDIA_TYPES or media_type == "application/octet-stream":
        body = await read_body(request, max_bytes)
        options, webhook_url = parse_options(request.query_params, installed_langs)
        filename = clean_filename(request.query_params.get("filename") or "document")
        return Submission(body, filename, options, webhook_url, None)
    raise UnsupportedMediaType(
        "Send the document as multipart/form-data (a 'file' part), as a raw body with Content-Type "
        'application/pdf, image/png, image/jpeg or image/tiff, or as JSON {"url": ...}.'
    )


async def read_body(request: Request, max_bytes: int) -> bytes:
    declared = ascii_int(request.headers.get("content-length", ""), MAX_NUMBER_CHARS)
    if declared is not None and declared > max_bytes:
        raise PayloadTooLarge(f"The document is larger than the {max_bytes // (1024 * 1024)} MB limit.")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise PayloadTooLarge(f"The document is larger than the {max_bytes // (1024 * 1024)} MB limit.")
            chunks.append(chunk)
    except ClientDisconnect:
        raise BadRequest("The client went away before the body was complete.") from None
    return b"".join(chunks)


async def _read_multipart(request: Request, max_bytes: int, installed_langs: frozenset[str]) -> Submission:
    body = await read_body(request, max_bytes + MULTIPART_OVERHEAD_BYTES)

    async def replay() -> AsyncGenerator[bytes, None]:
        yield body

    parser = MultiPartParser(request.headers, replay(), max_files=1, max_fields=MAX_FORM_FIELDS)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise BadRequest(f"The multipart body could not be read: {exc.message}") from None
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise BadRequest("The multipart body has no 'file' part.")
    try:
        document = await upload.read()
    finally:
        await upload.close()
    if len(document) > max_bytes:
        raise PayloadTooLarge(f"The document is larger than the {max_bytes // (1024 * 1024)} MB limit.")
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    options, webhook_url = parse_options(fields, installed_langs)
    return Submission(document, clean_filename(upload.filename or "document"), options, webhook_url, None)


async def _read_json(request: Request, installed_langs: frozenset[str]) -> Submission:
    raw = await read_body(request, 64 * 1024)
    data = load_json(raw)
    if not isinstance(data, dict) or not isinstance(data.get("url"), str):
        raise BadRequest('A JSON submission must be an object with a "url" string.')
    url = parse_url(data["url"], "url")
    fields = {k: v if isinstance(v, str) else json.dumps(v) for k, v in data.items() if k != "url"}
    options, webhook_url = parse_options(fields, installed_langs)
    # The name from the URL as given, before parse_url percent-encoded it.
    name = data["url"].strip().rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
    return Submission(None, clean_filename(name or "document"), options, webhook_url, url)


def parse_options(fields: Mapping[str, str], installed_langs: frozenset[str]) -> tuple[dict[str, Any], str | None]:
    lang = (fields.get("lang") or "eng").strip()
    if not LANG_PATTERN.match(lang):
        raise BadRequest("lang must be Tesseract language codes joined by '+', such as eng or eng+deu.")
    missing = [code for code in lang.split("+") if code not in installed_langs]
    if missing:
        raise BadRequest(
            f"Language {', '.join(missing)} is not installed; installed: {', '.join(sorted(installed_langs))}."
        )
    dpi = parse_int(fields.get("dpi") or "300", "dpi", *DPI_RANGE)
    force_ocr = parse_bool(fields.get("force_ocr") or "false", "force_ocr")
    webhook_raw = (fields.get("webhook_url") or "").strip()
    webhook_url = parse_url(webhook_raw, "webhook_url") if webhook_raw else None
    priority = parse_choice(fields.get("priority") or NORMAL, "priority", PRIORITIES)
    options: dict[str, Any] = {"lang": lang, "dpi": dpi, "force_ocr": force_ocr, "priority": priority}
    pages_raw = fields.get("pages") or ""
    if pages_raw.strip():
        # Shown (and cached) in its one written form: "3,1-2" and "1-3" are the same selection.
        options["pages"] = format_pages(parse_pages(pages_raw))
    return options, webhook_url


def clean_filename(raw: str) -> str:
    """Only the last path component, without control characters: names are shown, never used as paths."""
    name = re.split(r"[/\\]", raw)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip().strip(".")
    return name[:255] or "document"
