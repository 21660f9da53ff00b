"""The strict parsers: for anything at all, a valid value or BadRequest, never another exception."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.errors import BadRequest
from service.params import (
    MAX_URL_CHARS,
    header_text,
    load_json,
    parse_bool,
    parse_choice,
    parse_cursor,
    parse_event_id,
    parse_float,
    parse_int,
    parse_media_type,
    parse_seconds,
    parse_url,
)

# The classes of hostile text that reached a 500 before these parsers existed.
unicode_digits = st.text(st.characters(whitelist_categories=("Nd", "No")), min_size=1, max_size=8)
superscripts = st.text(st.sampled_from("²³¹⁰⁴⁵⁶⁷⁸⁹"), min_size=1, max_size=4)
huge_numbers = st.integers(4301, 6000).map(lambda n: "9" * n)
special_floats = st.sampled_from(
    ["nan", "NaN", "-nan", "inf", "-inf", "Infinity", "1e999", "-1e999", "-0", "-0.0", "0x10", "1_0", "٣", "1e-999"]
)
hostile_numbers = st.one_of(
    unicode_digits,
    superscripts,
    huge_numbers,
    special_floats,
    st.from_regex(r"\A[0-9]{1,40}\Z"),
    st.text(max_size=40),
)


def never_crashes(parse: Callable[[Any], Any], raw: Any) -> Any:
    """The parser's value, or None when it refused with BadRequest; any other exception fails the test."""
    try:
        return parse(raw)
    except BadRequest as exc:
        assert exc.status_code == 400 and exc.message
        return None


@given(hostile_numbers)
def test_parse_int_gives_an_int_in_range_or_bad_request(raw: str) -> None:
    value = never_crashes(lambda r: parse_int(r, "limit", 1, 200), raw)
    assert value is None or (type(value) is int and 1 <= value <= 200)
    if value is not None:
        assert raw.strip().isascii() and raw.strip().isdigit()


@pytest.mark.parametrize("raw", ["²", "٣", "9" * 5000, "-1", "+5", "1.0", "", " ", "0x10", "1e2"])
def test_parse_int_refuses_what_int_or_isdigit_would_misread(raw: str) -> None:
    with pytest.raises(BadRequest, match=r"^dpi must be an integer from 72 to 600\.$"):
        parse_int(raw, "dpi", 72, 600)


def test_parse_int_keeps_what_worked_before() -> None:
    assert parse_int("300", "dpi", 72, 600) == 300
    assert parse_int(" 0072 ", "dpi", 72, 600) == 72


@given(hostile_numbers)
def test_parse_float_is_finite_and_in_range_or_bad_request(raw: str) -> None:
    value = never_crashes(lambda r: parse_seconds(r, "wait", 0, 25), raw)
    assert value is None or (math.isfinite(value) and 0 <= value <= 25)


@pytest.mark.parametrize("raw", ["nan", "inf", "-inf", "1e999", "٣", "1_0", "26", "-1", "", "0x1"])
def test_parse_seconds_refuses_non_finite_and_foreign_numbers(raw: str) -> None:
    with pytest.raises(BadRequest, match=r"^wait must be a number of seconds from 0 to 25\.$"):
        parse_seconds(raw, "wait", 0, 25)


def test_parse_float_keeps_what_worked_before() -> None:
    assert parse_seconds("2.5", "wait", 0, 25) == 2.5
    assert parse_seconds(" 25 ", "wait", 0, 25) == 25
    assert parse_seconds("-0", "wait", 0, 25) == 0
    assert parse_seconds("1e1", "wait", 0, 25) == 10
    assert parse_float(".5", "x", 0, 1) == 0.5


@given(st.one_of(st.text(max_size=10), st.sampled_from(["TRUE", " yes ", "No", "0", "1", "tru"])))
def test_parse_bool_or_bad_request(raw: str) -> None:
    value = never_crashes(lambda r: parse_bool(r, "force_ocr"), raw)
    assert value in (None, True, False)
    assert value is not True or raw.strip().lower() in ("true", "1", "yes")


@given(st.text(max_size=10))
def test_parse_choice_or_bad_request(raw: str) -> None:
    value = never_crashes(lambda r: parse_choice(r, "format", ("json", "text", "pdf")), raw)
    assert value in (None, "json", "text", "pdf")


@given(hostile_numbers)
def test_cursor_and_event_id_are_bounded_ascii_integers(raw: str) -> None:
    cursor = never_crashes(parse_cursor, raw)
    assert cursor is None or (cursor[0] >= 0 and cursor[1] is None)
    event_id = never_crashes(parse_event_id, raw)
    assert event_id is None or 0 <= event_id < 2**63


def test_cursor_and_event_id_keep_what_worked_before() -> None:
    assert parse_cursor(None) is None and parse_cursor("") is None
    assert parse_cursor("1764619200123") == (1764619200123, None)
    assert parse_cursor("1764619200123-" + "ab" * 16) == (1764619200123, "ab" * 16)
    assert parse_event_id(None) is None and parse_event_id("") is None
    assert parse_event_id("42") == 42
    for bad in ("nan", "inf", "1e999", "²", "9" * 5000):
        with pytest.raises(BadRequest, match="cursor is not one this server handed out"):
            parse_cursor(bad)
        with pytest.raises(BadRequest, match="Last-Event-ID"):
            parse_event_id(bad)


hosts = st.one_of(
    st.sampled_from(["127.0.0.1", "[::1]", "localhost", "docs.invalid", "[::ffff:127.0.0.1]", "xn--bcher-kva.invalid"]),
    st.sampled_from(
        ["[::1", "[zz]", "[::1]x", "[fe80::1%25eth0]", "[]", "", "a..b", "-a.invalid", "a" * 64 + ".invalid"]
    ),
    st.sampled_from(["bücher.invalid", "user:pw@127.0.0.1", "@127.0.0.1", "127.0.0.1:pw@x.invalid"]),
    st.text(max_size=20),
)
ports = st.one_of(
    st.just(""),
    st.integers(-10, 100_000).map(lambda p: f":{p}"),
    st.sampled_from([":", ":+80", ":٣", ":²", ":0x50", ":" + "9" * 5000, ":80:80"]),
)
paths = st.one_of(st.just(""), st.text(max_size=30).map(lambda t: "/" + t))
urls = st.one_of(
    st.builds(
        lambda s, h, p, q: f"{s}://{h}{p}{q}", st.sampled_from(["http", "https", "HTTP", "ftp"]), hosts, ports, paths
    ),
    st.text(max_size=60),
    st.just("http://x.invalid/" + "a" * MAX_URL_CHARS),
)


@given(urls)
@settings(max_examples=300)
def test_parse_url_gives_a_url_urlsplit_reads_or_bad_request(raw: str) -> None:
    url = never_crashes(lambda r: parse_url(r, "webhook_url"), raw)
    if url is None:
        return
    parts = urlsplit(url)
    assert parts.scheme in ("http", "https") and parts.hostname
    assert parts.port is None or 1 <= parts.port <= 65535  # reading .port must not raise either
    assert not parts.username and not parts.password and len(url) <= MAX_URL_CHARS
    assert url.isascii() and url.isprintable()
    assert parse_url(url, "webhook_url") == url, "normalising twice changes nothing"


@pytest.mark.parametrize(
    "raw",
    [
        "http://host:99999/",
        "http://host:0/",
        "http://host:-1/",
        "http://host:٣/",
        "http://[::1/",
        "http://[zz]/",
        "http://[::1]x/",
        "http://[fe80::1%25eth0]/",
        "http://user:pw@example.invalid/",
        "http:///path",
        "ftp://example.invalid/",
        "http://" + "a" * 64 + ".invalid/",
        "http://exa mple.invalid/",
        "http://example.invalid/\ud800",
        "http://example.invalid/\x00",
        "http://x.invalid/" + "a" * MAX_URL_CHARS,
    ],
)
def test_parse_url_refuses_hostile_urls(raw: str) -> None:
    with pytest.raises(BadRequest, match="^webhook_url "):
        parse_url(raw, "webhook_url")


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("https://hooks.example/x", "https://hooks.example/x"),
        ("HTTPS://Hooks.Example:8443/a?b=c#frag", "https://hooks.example:8443/a?b=c"),
        ("http://[0:0:0:0:0:0:0:1]:8080/", "http://[::1]:8080/"),
        ("http://bücher.example/Résumé.pdf", "http://xn--bcher-kva.example/R%C3%A9sum%C3%A9.pdf"),
        ("http://127.0.0.1:0080/", "http://127.0.0.1:80/"),
        ("http://host.example:/x", "http://host.example/x"),
        ("http://host.example/a%20b", "http://host.example/a%20b"),
    ],
)
def test_parse_url_normalises(raw: str, normalised: str) -> None:
    assert parse_url(raw, "url") == normalised


latin1_values = st.binary(max_size=30).map(lambda b: b.decode("latin-1"))


@given(st.one_of(latin1_values, st.text(max_size=20)))
def test_header_text_never_raises_anything_but_bad_request(value: str) -> None:
    text = never_crashes(lambda v: header_text({"last-event-id": v}, "last-event-id"), value)
    assert text is None or isinstance(text, str)


def test_header_text_recovers_utf8_from_starlettes_latin1() -> None:
    assert header_text({}, "authorization") is None
    assert header_text({"authorization": "Bearer key"}, "authorization") == "Bearer key"
    assert header_text({"x": "clé".encode().decode("latin-1")}, "x") == "clé"
    with pytest.raises(BadRequest, match="The x header is not valid UTF-8"):
        header_text({"x": b"\xe9t\xe9".decode("latin-1")}, "x")
    with pytest.raises(BadRequest, match="The x header"):
        header_text({"x": "\u20ac"}, "x")  # not something Starlette can hand over; still no crash


@given(
    st.one_of(
        latin1_values, st.text(max_size=40), st.sampled_from(["application/PDF; charset=x", "multipart/form-data"])
    )
)
def test_parse_media_type_never_raises(value: str) -> None:
    media_type = parse_media_type(value)
    assert media_type == "" or (media_type.isascii() and media_type == media_type.lower())


def test_parse_media_type_reads_what_parse_options_header_read() -> None:
    assert parse_media_type(None) == ""
    assert parse_media_type("Application/JSON") == "application/json"
    assert parse_media_type("multipart/form-data; boundary=abc") == "multipart/form-data"
    assert parse_media_type(b"application/\xe9".decode("latin-1")) == ""


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)


@given(
    st.one_of(
        st.binary(max_size=100),
        st.integers(1, 100_000).map(lambda n: b"[" * n + b"]" * n),
        st.integers(1, 100_000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
        st.integers(1, 100_000).map(lambda n: b"[" * n),
        st.sampled_from([b"NaN", b"[Infinity]", b'{"dpi": -Infinity}', b"9" * 5000, b"\xff\xfe", b'"\\ud800"']),
    )
)
@settings(max_examples=200)
def test_load_json_parses_or_bad_request(raw: bytes) -> None:
    never_crashes(load_json, raw)


@given(json_values)
def test_load_json_reads_ordinary_json(value: Any) -> None:
    assert load_json(json.dumps(value).encode()) == value


def test_load_json_refuses_deep_nesting_and_non_json_constants() -> None:
    with pytest.raises(BadRequest, match="nested more than 32 levels"):
        load_json(b"[" * 100_000 + b"]" * 100_000)
    assert load_json(b"[" * 32 + b"]" * 32) is not None
    assert load_json(b'{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}') == {"a": "[" * 40}
    for constant in (b"NaN", b"[Infinity]", b"-Infinity"):
        with pytest.raises(BadRequest, match="not valid JSON"):
            load_json(constant)
