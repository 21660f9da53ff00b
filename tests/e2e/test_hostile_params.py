"""Hostile parameters against the real service: never a 5xx, and every 4xx in the documented error shape.

Hypothesis sends, to every endpoint, the classes of input that used to answer 500: other scripts'
digits and superscripts (which str.isdigit() accepts and int() refuses), numbers past int()'s
4300-digit limit, nan/inf, non-ASCII tokens, ports out of range and broken IPv6 literals, deeply
nested JSON, and header values that are not UTF-8.

Nothing here makes the service connect anywhere but loopback: it runs with private networks
refused, and every URL sent names 127.0.0.1, ::1, localhost or a name under .invalid, so each is
refused at the address check (or the resolver) before any connection, or is malformed and refused before that.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import RedisServer, Service, run_service
from tests.unit.ocr_samples import text_pdf

KEY = "key-hostile-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
NOT_A_DOCUMENT = b"this is not a document"
# Bounded: every test here is a few dozen requests, the whole file well under a minute.
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)

unicode_digits = st.text(st.characters(whitelist_categories=("Nd", "No")), min_size=1, max_size=6)
superscripts = st.text(st.sampled_from("²³¹⁰⁴⁵⁶⁷⁸⁹"), min_size=1, max_size=3)
huge_numbers = st.integers(4301, 5000).map(lambda n: "9" * n)
special_numbers = st.sampled_from(
    ["nan", "NaN", "inf", "-inf", "Infinity", "1e999", "-0", "-1", "0x10", "1_0", "", " "]
)
hostile_text = st.one_of(
    unicode_digits,
    superscripts,
    huge_numbers,
    special_numbers,
    st.from_regex(r"\A[0-9]{1,25}\Z"),
    st.text(max_size=20),
)

# Only hosts that cannot lead anywhere but loopback or nowhere; the rest of the URL is hostile.
HOSTS = [
    "127.0.0.1",
    "[::1]",
    "localhost",
    "docs.invalid",
    "[::ffff:127.0.0.1]",
    "bücher.invalid",
    "HOST.INVALID",
    "[::1",
    "[zz]",
    "[::1]x",
    "[fe80::1%25eth0]",
    "[]",
    "",
    "a" * 64 + ".invalid",
    "user:pw@127.0.0.1",
    "@docs.invalid",
]
PORTS = st.one_of(
    st.just(""),
    st.integers(-10, 100_000).map(lambda port: f":{port}"),
    st.sampled_from([":", ":+80", ":٣", ":²", ":0x50", ":" + "9" * 5000, ":80:80"]),
)
hostile_urls = st.builds(
    lambda scheme, host, port, path: f"{scheme}://{host}{port}/{path}",
    st.sampled_from(["http", "https", "HTTP"]),
    st.sampled_from(HOSTS),
    PORTS,
    st.text(max_size=20),
)


# Header values as raw bytes: what an HTTP/1.1 client can put on the wire (no CR, LF, NUL or other
# controls), including bytes 0x80-0xff that are not UTF-8.
def on_the_wire(value: bytes) -> bytes:
    return bytes(c for c in value if 0x21 <= c <= 0x7E or c >= 0x80)


header_bytes = st.one_of(
    st.sampled_from([b"\xb2", b"\xe9t\xe9", "²".encode(), "٣".encode(), b"9" * 5000, b"-1", b"nan", b"\xff" * 300]),
    hostile_text.map(str.encode),
    st.binary(max_size=40),
).map(on_the_wire)


@pytest.fixture(scope="module")
def hostile_service(redis_server: RedisServer) -> Iterator[Service]:
    with run_service(
        redis_server, workers=1, ALLOW_PRIVATE_NETWORKS="false", API_KEYS=f"acme:{KEY}", SECRET_KEY="s" * 32
    ) as service:
        yield service


@pytest.fixture(scope="module")
def http(hostile_service: Service) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hostile_service.url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def job(http: httpx.Client) -> dict[str, Any]:
    """One completed job, so the job endpoints get as far as parsing their parameters."""
    response = http.post("/jobs", files={"file": ("a.pdf", text_pdf())}, headers=AUTH)
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    deadline = time.monotonic() + 60
    while job["status"] not in ("completed", "failed", "cancelled"):
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
        job = http.get(f"/jobs/{job['id']}", headers=AUTH).json()
    assert job["status"] == "completed", job
    return job


def assert_contract(response: httpx.Response, what: object) -> None:
    assert response.status_code < 500, (what, response.status_code, response.text[:500])
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body, dict) and isinstance(body.get("error"), dict), (what, body)
        assert set(body["error"]) >= {"code", "message"}, (what, body)


def call(http: httpx.Client, method: str, path: str, **kwargs: Any) -> None:
    """One request; a stream is closed as soon as its status is known (the tenant feed never ends)."""
    with http.stream(method, path, **kwargs) as response:
        if response.status_code >= 400:
            response.read()
        assert_contract(response, (method, path, kwargs))


# Every route of service/app.py, with the query parameters it reads.
ENDPOINTS: list[tuple[str, str, tuple[str, ...]]] = [
    ("GET", "/", ()),
    ("GET", "/dashboard", ()),
    ("GET", "/ops/events", ()),
    ("POST", "/jobs", ("wait", "lang", "dpi", "force_ocr", "webhook_url", "filename")),
    ("GET", "/jobs", ("status", "limit", "cursor")),
    ("GET", "/jobs/{job}", ()),
    ("DELETE", "/jobs/{unknown}", ()),
    ("GET", "/jobs/{job}/events", ("lastEventId", "token")),
    ("GET", "/jobs/{job}/result", ("format", "detail")),
    ("GET", "/jobs/{job}/pages", ("after", "limit", "detail")),
    ("GET", "/jobs/{job}/pages/1", ("detail",)),
    ("GET", "/jobs/{job}/pages/9", ()),
    ("GET", "/events", ("lastEventId", "token")),
    ("GET", "/events/link", ()),
    ("GET", "/cache/stats", ()),
    ("DELETE", "/cache", ()),
    ("GET", "/healthz", ()),
    ("GET", "/readyz", ()),
    ("GET", "/metrics", ()),
    ("GET", "/openapi.json", ()),
    ("GET", "/static/app.js", ()),
]
endpoints = st.sampled_from(ENDPOINTS)
# Half the draws go to the routes that read the parameter or header under test, so a run of a few
# dozen examples reaches each parser several times.
with_params = st.one_of(st.sampled_from([e for e in ENDPOINTS if e[2]]), endpoints)
POST_JOBS = [e for e in ENDPOINTS if e[:2] == ("POST", "/jobs")]
STREAMS = [e for e in ENDPOINTS if e[1].endswith("/events") and e[1] != "/ops/events"]


def fill(path: str, job: dict[str, Any]) -> str:
    return path.replace("{job}", job["id"]).replace("{unknown}", "0" * 32)


def raw_upload(method: str) -> dict[str, Any]:
    """The body a POST /jobs sends when the test is about something else: bytes that are no document,
    so nothing is ever queued."""
    return (
        {"content": NOT_A_DOCUMENT, "headers": AUTH | {"Content-Type": "application/pdf"}} if method == "POST" else {}
    )


def hostile_value(name: str) -> st.SearchStrategy[str]:
    return hostile_urls if name.endswith("url") else hostile_text


@FUZZ
@given(endpoint=with_params, data=st.data())
def test_hostile_query_parameters(http: httpx.Client, job: dict[str, Any], endpoint: Any, data: st.DataObject) -> None:
    method, path, names = endpoint
    # One parameter hostile and the others absent, so each parser is reached (a bad `lang` would
    # otherwise answer 400 before `dpi` is read); sometimes all of them, and one the route ignores.
    params: dict[str, str] = {}
    if names:
        target = data.draw(st.sampled_from(names), label="target")
        params[target] = data.draw(hostile_value(target), label=target)
        if data.draw(st.booleans(), label="all hostile"):
            params |= {name: data.draw(hostile_value(name), label=name) for name in names if name != target}
    if data.draw(st.booleans(), label="with an unknown parameter"):
        params[data.draw(st.text(min_size=1, max_size=8), label="name")] = data.draw(hostile_text, label="value")
    # A stream's ?token= counts only without an Authorization header.
    headers = {} if "token" in params and data.draw(st.booleans(), label="token only") else AUTH
    call(http, method, fill(path, job), params=params, **(raw_upload(method) or {"headers": headers}))


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/jobs", {"limit": "²"}),
        ("/jobs", {"limit": "9" * 5000}),
        ("/jobs", {"cursor": "nan"}),
        ("/jobs/{job}/events", {"lastEventId": "²"}),
        ("/events", {"lastEventId": "9" * 5000}),
        ("/jobs/{job}/events", {"token": f"{int(time.time()) + 3600}.YWNtZQ.é"}),
        ("/events", {"token": "².YWNtZQ.x"}),
        ("/events", {"token": "9" * 5000 + ".YWNtZQ.x"}),
    ],
)
def test_known_hostile_query_values_are_4xx(
    http: httpx.Client, job: dict[str, Any], path: str, params: dict[str, str]
) -> None:
    headers = {} if "token" in params else AUTH
    call(http, "GET", fill(path, job), params=params, headers=headers)


FORM_FIELDS = ("lang", "dpi", "force_ocr", "webhook_url")


@FUZZ
@given(
    target=st.sampled_from(FORM_FIELDS),
    data=st.data(),
    extra=st.dictionaries(st.text(max_size=8), hostile_text, max_size=2),
)
def test_hostile_form_fields(http: httpx.Client, target: str, data: st.DataObject, extra: dict[str, str]) -> None:
    fields = {target: data.draw(hostile_value(target), label=target)}
    if data.draw(st.booleans(), label="all hostile"):
        fields |= {name: data.draw(hostile_value(name), label=name) for name in FORM_FIELDS if name != target}
    files = {"file": ("a.pdf", NOT_A_DOCUMENT)}
    call(http, "POST", "/jobs", files=files, data=extra | fields, headers=AUTH)


json_leaves = st.one_of(hostile_text, st.integers(), st.floats(), st.booleans(), st.none())
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
json_bodies = st.one_of(
    st.fixed_dictionaries(
        {"url": st.one_of(hostile_urls, json_values)},
        optional={
            "lang": json_values,
            "dpi": json_values,
            "force_ocr": json_values,
            "webhook_url": st.one_of(hostile_urls, json_values),
        },
    ).map(lambda body: _dumps(body)),
    st.integers(1, 100_000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(1, 30_000).map(lambda depth: b'{"url":' * depth + b'"http://127.0.0.1/"' + b"}" * depth),
    st.sampled_from(
        [b"NaN", b'{"url": NaN}', b'{"url": "http://[::1/"}', b'{"url": "http://127.0.0.1:99999/"}', b"\xff\xfe{"]
    ),
    st.sampled_from(
        [b'{"url": "http://docs.invalid/\\ud800"}', b'{"url": "http://[zz]/"}', b'{"dpi": ' + b"9" * 5000 + b"}"]
    ),
    st.binary(max_size=60),
)


def _dumps(body: Any) -> bytes:
    # hypothesis' floats include nan and inf, which json.dumps writes as NaN and Infinity (not JSON).
    return json.dumps(body, allow_nan=True).encode()


@FUZZ
@given(body=json_bodies)
def test_hostile_json_bodies(http: httpx.Client, body: bytes) -> None:
    call(http, "POST", "/jobs", content=body, headers=AUTH | {"Content-Type": "application/json"})


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 30_000 + b"]" * 30_000,  # under the 64 KB limit, far past json.loads' recursion limit
        b'{"url": "http://[::1/"}',
        b'{"url": "http://[zz]/"}',
        b'{"url": "http://127.0.0.1:99999/"}',
        b'{"url": "http://docs.invalid/", "webhook_url": "http://localhost:99999/"}',
        b'{"url": "http://' + b"a" * 64 + b'.invalid/"}',
    ],
)
def test_known_hostile_json_is_4xx(http: httpx.Client, body: bytes) -> None:
    call(http, "POST", "/jobs", content=body, headers=AUTH | {"Content-Type": "application/json"})


HEADERS = ("Authorization", "Last-Event-ID", "Content-Type", "Idempotency-Key")
content_types = st.sampled_from(
    [b"application/\xe9", b"multipart/form-data; boundary=\xe9", b"application/json; charset=\xff", b"image/\xb2"]
)


READ_BY = {
    "Authorization": ENDPOINTS,
    "Last-Event-ID": STREAMS,
    "Content-Type": POST_JOBS,
    "Idempotency-Key": POST_JOBS,
}


@FUZZ
@given(target=st.sampled_from(HEADERS), data=st.data())
def test_hostile_headers(http: httpx.Client, job: dict[str, Any], target: str, data: st.DataObject) -> None:
    method, path, _ = data.draw(st.one_of(st.sampled_from(READ_BY[target]), endpoints), label="endpoint")
    headers: dict[str, bytes] = {"Authorization": AUTH["Authorization"].encode()}
    value = data.draw(
        st.one_of(header_bytes, content_types) if target == "Content-Type" else header_bytes, label=target
    )
    if target == "Authorization" and data.draw(st.booleans(), label="as a bearer key"):
        value = b"Bearer " + value
    headers[target] = value
    if data.draw(st.booleans(), label="all hostile"):
        headers |= {name: data.draw(header_bytes, label=name) for name in HEADERS if name != target}
    content = NOT_A_DOCUMENT if method == "POST" else None
    call(http, method, fill(path, job), headers={k: v for k, v in headers.items() if v}, content=content)


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/events", {"Last-Event-ID": b"\xb2"}),
        ("/jobs/{job}/events", {"Last-Event-ID": "٣".encode()}),
        ("/events", {"Last-Event-ID": b"9" * 5000}),
        ("/jobs", {"Content-Type": b"application/\xe9"}),
        ("/jobs", {"Authorization": "Bearer clé-€".encode()}),
        ("/jobs", {"Authorization": b"Bearer \xe9\xff"}),
    ],
)
def test_known_hostile_headers_are_4xx(
    http: httpx.Client, job: dict[str, Any], path: str, headers: dict[str, bytes]
) -> None:
    method = "POST" if path == "/jobs" else "GET"
    call(
        http,
        method,
        fill(path, job),
        headers={"Authorization": AUTH["Authorization"].encode()} | headers,
        content=NOT_A_DOCUMENT if method == "POST" else None,
    )


@FUZZ
@given(
    job_id=st.one_of(hostile_text, st.text(max_size=40)),
    method=st.sampled_from(["GET", "DELETE"]),
    tail=st.sampled_from(["", "/result", "/events"]),
)
def test_hostile_job_ids(http: httpx.Client, job_id: str, method: str, tail: str) -> None:
    if method == "DELETE" and tail:
        method = "GET"
    call(http, method, f"/jobs/{quote(job_id, safe='')}{tail}", headers=AUTH)


def send_raw(port: int, head: bytes, body: bytes = b"") -> tuple[int, bytes, bytes]:
    """One request written byte for byte (httpx would fix the Content-Length); status, head and body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head_out, _, body_out = answer.partition(b"\r\n\r\n")
    return int(head_out.split(b" ", 2)[1]), head_out, body_out


@pytest.mark.parametrize(
    "declared", [b"\xb2", "٣".encode(), b"9" * 5000, b"99999999999999999999", b"999999999999", b"-1", b"0x10", b"1e3"]
)
def test_hostile_content_length(hostile_service: Service, declared: bytes) -> None:
    head = (
        b"POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/pdf\r\n"
        b"Authorization: Bearer " + KEY.encode() + b"\r\nContent-Length: " + declared + b"\r\n\r\n"
    )
    status, head_out, body = send_raw(hostile_service.port, head)
    assert status < 500, (declared[:20], head_out, body[:300])
    if b"application/json" in head_out.lower():
        assert_contract(httpx.Response(status, content=body), declared[:20])
    else:
        # uvicorn's HTTP parser refuses a malformed Content-Length itself, before the app sees the request.
        assert (status, body) == (400, b"Invalid HTTP request received."), (head_out, body)


def test_no_hostile_request_queued_a_job(http: httpx.Client, job: dict[str, Any]) -> None:
    """Runs last (pytest keeps file order): the tenant still has only the fixture's job, so no fuzzed
    URL was accepted and no worker was ever sent to fetch or post anything."""
    listed = http.get("/jobs", params={"limit": "200"}, headers=AUTH).json()
    assert [j["id"] for j in listed["jobs"]] == [job["id"]]
