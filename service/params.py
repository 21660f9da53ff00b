"""Strict parsers for what a client sends: query parameters, form fields, header values, JSON bodies.

Every parser is a pure function that returns a valid value or raises BadRequest naming the parameter,
never anything else, so no client input can reach a 500. Python's own parsers are too lenient and
too fragile for that: `str.isdigit()` accepts '²' and other scripts' digits that `int()` then
refuses, `int()` refuses more than 4300 digits, `float()` accepts 'nan', 'inf' and '٣',
`urlsplit().port` raises on a port out of range, `json.loads` raises RecursionError on deep nesting
and `hmac.compare_digest` raises TypeError on non-ASCII text. So numbers are ASCII digits of bounded
length before any conversion, floats must be finite, URLs are taken apart and rebuilt, and JSON's
nesting is measured before it is parsed.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from service.errors import BadRequest

MAX_URL_CHARS = 2048
MAX_JSON_DEPTH = 32
# Longer than any number a parameter here takes, far below int()'s 4300-digit limit.
MAX_NUMBER_CHARS = 32
# Event ids are Redis integers: at most 19 digits fit in a signed 64-bit integer.
MAX_EVENT_ID_DIGITS = 18
# A list cursor is a creation time in ms (13 digits until the year 2286), then the last job's id.
MAX_CURSOR_DIGITS = 16
_CURSOR = re.compile(r"([0-9]{1,16})(?:-([0-9a-f]{32}))?")

_ASCII_DIGITS = re.compile(r"[0-9]+")
# What float() accepts of ASCII decimal notation; no 'nan', 'inf', '_' or other scripts' digits.
_ASCII_DECIMAL = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_DNS_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})
# A page selection (`pages=1-3,7,10-`): its length, and the digits of one page number.
MAX_PAGES_CHARS = 1000
MAX_PAGE_DIGITS = 9
# A span of pages: 1-based, inclusive; None as its end means "to the last page".
PageSpan = tuple[int, int | None]
# Characters that may stand in a URL's path and query as they are; anything else is percent-encoded.
_URL_SAFE = "/?#[]@!$&'()*+,;=:%-._~"


def ascii_int(raw: str, max_digits: int) -> int | None:
    """The integer `raw` spells in 1 to `max_digits` ASCII digits, or None: never an exception."""
    if not 0 < len(raw) <= max_digits or not raw.isascii() or not _ASCII_DIGITS.fullmatch(raw):
        return None
    return int(raw)


def parse_int(raw: str, name: str, low: int, high: int, *, message: str | None = None) -> int:
    """A whole number from `low` to `high`, written in ASCII digits (surrounding blanks allowed)."""
    value = ascii_int(raw.strip(), MAX_NUMBER_CHARS)
    if value is None or not low <= value <= high:
        raise BadRequest(message or f"{name} must be an integer from {low} to {high}.")
    return value


def parse_float(raw: str, name: str, low: float, high: float, *, message: str | None = None) -> float:
    """A finite number from `low` to `high` in ASCII decimal notation (surrounding blanks allowed)."""
    text = raw.strip()
    value = math.nan
    if len(text) <= MAX_NUMBER_CHARS and text.isascii() and _ASCII_DECIMAL.fullmatch(text):
        value = float(text)  # cannot raise: the pattern is a subset of what float() reads
    # `not low <= value` is also true for nan; 1e999 reads as inf and fails the bound.
    if not math.isfinite(value) or not low <= value <= high:
        raise BadRequest(message or f"{name} must be a number from {low:g} to {high:g}.")
    return value


def parse_seconds(raw: str, name: str, low_s: float, high_s: float) -> float:
    return parse_float(
        raw, name, low_s, high_s, message=f"{name} must be a number of seconds from {low_s:g} to {high_s:g}."
    )


def parse_bool(raw: str, name: str) -> bool:
    text = raw.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise BadRequest(f"{name} must be true or false.")


def parse_choice(raw: str, name: str, choices: tuple[str, ...], *, message: str | None = None) -> str:
    if raw not in choices:
        raise BadRequest(message or f"{name} must be one of {', '.join(choices)}.")
    return raw


def parse_pages(raw: str, name: str = "pages") -> list[PageSpan]:
    """A page selection such as `1-3,7,10-`: 1-based page numbers and ranges (`a-b` inclusive, `a-` to
    the end) separated by commas, blanks around them allowed. Returned sorted and merged, so that two
    ways of writing one selection are one selection. Refused: an empty item, page 0, a range that runs
    backwards, anything but ASCII digits, more than MAX_PAGES_CHARS characters."""
    usage = f"{name} must be page numbers and ranges such as 1-3,7,10- (pages count from 1; 10- means to the end)."
    if not raw.strip() or len(raw) > MAX_PAGES_CHARS:
        raise BadRequest(usage)
    spans: list[PageSpan] = []
    for item in raw.split(","):
        first_raw, dash, last_raw = item.partition("-")
        first = ascii_int(first_raw.strip(), MAX_PAGE_DIGITS)
        last = first if not dash else None if not last_raw.strip() else ascii_int(last_raw.strip(), MAX_PAGE_DIGITS)
        if first is None or (dash and last_raw.strip() and last is None):
            raise BadRequest(f"{name}: {item.strip()!r} is not a page or a range. {usage}")
        if first == 0:
            raise BadRequest(f"{name}: pages count from 1; there is no page 0.")
        if last is not None and last < first:
            raise BadRequest(f"{name}: the range {item.strip()!r} runs backwards.")
        spans.append((first, last))
    return _merge_spans(spans)


def _merge_spans(spans: list[PageSpan]) -> list[PageSpan]:
    merged: list[PageSpan] = []
    for first, last in sorted(spans, key=lambda span: span[0]):
        if merged:
            prev_first, prev_last = merged[-1]
            if prev_last is None or first <= prev_last + 1:
                merged[-1] = (prev_first, None if prev_last is None or last is None else max(prev_last, last))
                continue
        merged.append((first, last))
    return merged


def format_pages(spans: list[PageSpan]) -> str:
    """A selection written back the way `parse_pages` reads it: `1-3,7,10-`."""
    return ",".join(
        f"{first}-" if last is None else str(first) if last == first else f"{first}-{last}" for first, last in spans
    )


def select_pages(spans: list[PageSpan], page_count: int) -> list[int]:
    """The 0-based indices, ascending, of a document's `page_count` pages that `spans` selects."""
    return [index for first, last in spans for index in range(first - 1, min(last or page_count, page_count))]


MAX_IDEMPOTENCY_KEY_CHARS = 200


def parse_idempotency_key(raw: str) -> str:
    """An `Idempotency-Key` header: 1 to 200 printable ASCII characters (blanks inside allowed)."""
    if not 0 < len(raw) <= MAX_IDEMPOTENCY_KEY_CHARS or not all(" " <= c <= "~" for c in raw):
        raise BadRequest(
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} printable ASCII characters, such as a UUID."
        )
    return raw


def parse_cursor(raw: str | None) -> tuple[int, str | None] | None:
    """A `GET /jobs` cursor, `<creation ms>-<job id>` as the previous page's `next` handed it out (a bare
    time, as older servers gave, still works): (ms, id or None); None for the first page."""
    if not raw:
        return None
    match = _CURSOR.fullmatch(raw)
    if match is None:
        raise BadRequest("cursor is not one this server handed out.")
    return int(match[1]), match[2]


def parse_event_id(raw: str | None) -> int | None:
    """A `Last-Event-ID`: an id this server sent (a non-negative integer); None when absent or empty."""
    if raw is None or raw == "":
        return None
    value = ascii_int(raw, MAX_EVENT_ID_DIGITS)
    if value is None:
        raise BadRequest("Last-Event-ID must be an event id this server sent.")
    return value


def header_text(headers: Mapping[str, str], name: str) -> str | None:
    """A request header's value as the text the client meant, None when absent.

    Starlette decodes header bytes as latin-1, which maps every byte to one character and never
    fails; so the bytes are recovered exactly and decoded as UTF-8. Bytes that are not UTF-8, and
    control characters, are a BadRequest naming the header.
    """
    value = headers.get(name)
    if value is None:
        return None
    try:
        text = value.encode("latin-1").decode("utf-8")
    except UnicodeError:  # a character above U+00FF (a caller's own mapping) or bytes that are not UTF-8
        raise BadRequest(f"The {name} header is not valid UTF-8 text.") from None
    if any((ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F for c in text):
        raise BadRequest(f"The {name} header has control characters in it.")
    return text


def parse_media_type(raw: str | None) -> str:
    """The lowercased media type of a Content-Type value (`type/subtype`, no parameters); "" if absent or not ASCII."""
    media_type = (raw or "").split(";", 1)[0].strip(" \t").lower()
    return media_type if media_type.isascii() and media_type.isprintable() else ""


def parse_url(raw: str, name: str) -> str:
    """An http(s) URL that can be fetched, normalised: scheme and host lowercased, an international
    host name in its ASCII (IDNA) form, an IPv6 host compressed, the port checked (1-65535) and kept
    only when given, non-ASCII path characters percent-encoded, no fragment.

    Refused: other schemes, no host, credentials, broken IPv6 literals and zone ids, host names that
    are not DNS names, control characters and blanks, and more than MAX_URL_CHARS characters.
    """
    general = f"{name} must be an http:// or https:// address of at most {MAX_URL_CHARS} characters."
    url = raw.strip()
    if len(url) > MAX_URL_CHARS or not url.lower().startswith(("http://", "https://")):
        raise BadRequest(general)
    if any(not c.isprintable() or c.isspace() for c in url):
        raise BadRequest(f"{name} has blanks or control characters in it.")
    try:
        parts = urlsplit(url)
    except ValueError:  # an unclosed '[' or a bracketed host that is not an address
        raise BadRequest(f"{name} has a malformed host.") from None
    _, at, hostport = parts.netloc.rpartition("@")
    if at:
        raise BadRequest(f"{name} has credentials in it; URLs with credentials are refused.")
    host, port_raw = _split_hostport(hostport, name)
    if port_raw:
        port = ascii_int(port_raw, 5)
        if port is None or not 1 <= port <= 65535:
            raise BadRequest(f"{name} has a port out of range: ports are 1 to 65535.")
        host = f"{host}:{port}"
    path = quote(parts.path, safe=_URL_SAFE)
    query = quote(parts.query, safe=_URL_SAFE)
    normalised = urlunsplit((parts.scheme.lower(), host, path, query, ""))
    if len(normalised) > MAX_URL_CHARS:
        raise BadRequest(general)
    return normalised


def _split_hostport(hostport: str, name: str) -> tuple[str, str]:
    """The host (normalised) and the port text of a URL's netloc without credentials."""
    if hostport.startswith("["):
        literal, bracket, port_part = hostport[1:].partition("]")
        if not bracket or (port_part and not port_part.startswith(":")):
            raise BadRequest(f"{name} has a malformed IPv6 address.")
        try:
            address = ipaddress.IPv6Address(literal)
        except ValueError:
            raise BadRequest(f"{name} has a malformed IPv6 address.") from None
        if address.scope_id is not None:
            raise BadRequest(f"{name} has an IPv6 zone id, which means nothing to another machine.")
        return f"[{address.compressed}]", port_part[1:]
    host, _, port_raw = hostport.partition(":")
    if not host:
        raise BadRequest(f"{name} has no host.")
    return _dns_host(host, name), port_raw


def _dns_host(host: str, name: str) -> str:
    try:
        ascii_host = host.lower().rstrip(".").encode("idna").decode("ascii")
    except UnicodeError:  # an empty or too long label, or characters IDNA does not allow
        raise BadRequest(f"{name} has a host name that is not a valid DNS name.") from None
    labels = ascii_host.split(".")
    if len(ascii_host) > 253 or not all(_DNS_LABEL.fullmatch(label) for label in labels):
        raise BadRequest(f"{name} has a host name that is not a valid DNS name.")
    return ascii_host


def load_json(raw: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """A JSON document of at most `max_depth` nested arrays and objects; BadRequest for anything else.

    The nesting is measured before parsing: json.loads recurses once per level and would raise
    RecursionError (or exhaust the stack) long before the body's size limit stops a `[[[[...`.
    NaN and Infinity, which json.loads accepts, are refused: they are not JSON.
    """
    if _nesting_depth(raw) > max_depth:
        raise BadRequest(f"The JSON body is nested more than {max_depth} levels deep.")
    try:
        return json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise BadRequest("The body is not valid JSON.") from None


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_JSON_BRACKET = re.compile(rb"[\[\]{}]")


def _nesting_depth(raw: bytes) -> int:
    """The deepest nesting of brackets outside strings (an upper bound when the JSON is malformed)."""
    depth = deepest = 0
    for match in _JSON_BRACKET.finditer(_JSON_STRING.sub(b'""', raw)):
        depth = depth + 1 if match.group() in (b"[", b"{") else max(depth - 1, 0)
        deepest = max(deepest, depth)
    return deepest


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
