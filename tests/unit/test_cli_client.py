"""service/client/http.py over httpx's MockTransport: requests it makes, errors it raises, and how its
event streams resume with Last-Event-ID after a drop."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from service.client.http import RECONNECT_ATTEMPTS, ApiError, OcrClient

JOB_ID = "a" * 32
Handler = Callable[[httpx.Request], httpx.Response]


def job(status: str, progress: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "id": JOB_ID,
        "status": status,
        "progress": progress,
        "message": status.title(),
        "filename": "scan.pdf",
        "links": {"events": f"/jobs/{JOB_ID}/events?token=t1"},
    } | extra


def sse(event_id: int, data: dict[str, Any], event: str = "status", retry_ms: int | None = None) -> bytes:
    retry = f"retry: {retry_ms}\n" if retry_ms is not None else ""
    return f"id: {event_id}\nevent: {event}\n{retry}data: {json.dumps(data)}\n\n".encode()


class Stream(httpx.SyncByteStream):
    """A response body sent in parts, optionally breaking the connection after them."""

    def __init__(self, parts: list[bytes], *, then_drop: bool = False) -> None:
        self.parts = parts
        self.then_drop = then_drop

    def __iter__(self) -> Iterator[bytes]:
        yield from self.parts
        if self.then_drop:
            raise httpx.ReadError("connection reset by peer")


def event_stream(*parts: bytes, then_drop: bool = False) -> httpx.Response:
    return httpx.Response(
        200, headers={"content-type": "text/event-stream"}, stream=Stream(list(parts), then_drop=then_drop)
    )


def make_client(handler: Handler, api_key: str | None = None) -> tuple[OcrClient, list[httpx.Request], list[float]]:
    requests: list[httpx.Request] = []
    sleeps: list[float] = []

    def record(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return handler(request)

    client = OcrClient("http://ocr.test", api_key, transport=httpx.MockTransport(record))
    client._sleep = sleeps.append
    return client, requests, sleeps


def responses(*answers: httpx.Response | Callable[[httpx.Request], httpx.Response]) -> Handler:
    """A handler giving `answers` in turn."""
    pending = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        answer = pending.pop(0)
        return answer(request) if callable(answer) else answer

    return handler


def error(status: int, code: str, message: str, **headers: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message}}, headers=headers)


def test_follow_resumes_with_last_event_id_after_a_drop() -> None:
    client, requests, sleeps = make_client(
        responses(
            event_stream(sse(1, job("queued"), retry_ms=500), sse(2, job("running", 10)), then_drop=True),
            event_stream(sse(3, job("running", 60), "progress"), sse(4, job("completed", 100))),
        )
    )
    seen = [(j["status"], j["progress"]) for j in client.follow(job("queued"))]
    assert seen == [("queued", 0), ("running", 10), ("running", 60), ("completed", 100)]
    assert "last-event-id" not in requests[0].headers
    assert requests[1].headers["last-event-id"] == "2"
    assert sleeps == [0.5], "waits as long as the server's retry field says"


def test_follow_uses_the_links_token_without_a_key_and_the_header_with_one() -> None:
    stream = event_stream(sse(1, job("completed", 100)))
    client, requests, _ = make_client(responses(stream))
    list(client.follow(job("queued")))
    assert requests[0].url.params["token"] == "t1" and "authorization" not in requests[0].headers

    client, requests, _ = make_client(responses(event_stream(sse(1, job("completed", 100)))), api_key="k" * 16)
    list(client.follow(job("queued")))
    assert "token" not in requests[0].url.params
    assert requests[0].headers["authorization"] == "Bearer " + "k" * 16


def test_follow_reconnects_when_the_server_closes_before_the_end() -> None:
    client, requests, _ = make_client(
        responses(
            event_stream(sse(5, job("running", 20))),  # closed cleanly: the server restarted
            event_stream(sse(6, job("completed", 100))),
        )
    )
    assert [j["status"] for j in client.follow(JOB_ID)] == ["running", "completed"]
    assert requests[1].headers["last-event-id"] == "5"


def test_follow_fetches_the_job_when_the_resumed_stream_answers_204() -> None:
    client, requests, _ = make_client(
        responses(
            event_stream(sse(2, job("running", 50)), then_drop=True),
            httpx.Response(204),
            httpx.Response(200, json=job("completed", 100)),
        )
    )
    assert [j["status"] for j in client.follow(JOB_ID)] == ["running", "completed"]
    assert [r.url.path for r in requests] == [f"/jobs/{JOB_ID}/events"] * 2 + [f"/jobs/{JOB_ID}"]


def test_an_expired_token_is_replaced_by_a_fresh_link() -> None:
    fresh = job("running") | {"links": {"events": f"/jobs/{JOB_ID}/events?token=t2"}}
    client, requests, _ = make_client(
        responses(
            error(401, "unauthorized", "That token is not valid for this stream, or it has expired."),
            httpx.Response(200, json=fresh),
            event_stream(sse(1, job("completed", 100))),
        )
    )
    assert [j["status"] for j in client.follow(job("queued"))] == ["completed"]
    assert requests[2].url.params["token"] == "t2"


def test_a_deleted_job_ends_follow_with_not_found() -> None:
    client, _, _ = make_client(responses(event_stream(sse(1, job("running")), sse(2, {"id": JOB_ID}, "deleted"))))
    with pytest.raises(ApiError) as raised:
        list(client.follow(JOB_ID))
    assert raised.value.code == "not_found"


def test_follow_gives_up_after_repeated_failures_and_rides_out_a_503() -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    client, requests, sleeps = make_client(responses(*[refused] * (RECONNECT_ATTEMPTS + 1)))
    with pytest.raises(httpx.ConnectError):
        list(client.follow(JOB_ID))
    assert len(requests) == RECONNECT_ATTEMPTS + 1
    assert sleeps == sorted(sleeps) and sleeps[0] == 2.0, "backs off"

    client, _, sleeps = make_client(
        responses(
            error(503, "service_unavailable", "Redis is not reachable.", **{"Retry-After": "5"}),
            event_stream(sse(1, job("completed", 100))),
        )
    )
    assert [j["status"] for j in client.follow(JOB_ID)] == ["completed"]
    assert sleeps == [5.0]


def test_other_errors_of_a_stream_are_raised_at_once() -> None:
    client, requests, _ = make_client(responses(error(404, "not_found", "No such job.")))
    with pytest.raises(ApiError) as raised:
        list(client.follow(JOB_ID))
    assert (raised.value.status, raised.value.code) == (404, "not_found") and len(requests) == 1


def test_watch_yields_feed_events_and_resumes() -> None:
    snapshot = sse(7, {"jobs": [job("running")]}, "snapshot")
    client, requests, _ = make_client(
        responses(
            event_stream(b": connected\n\n", snapshot, b": ping\n\n", then_drop=True),
            event_stream(sse(8, {"id": JOB_ID}, "deleted")),
        )
    )
    events = client.watch()
    assert next(events) == ("snapshot", {"jobs": [job("running")]})
    assert next(events) == ("deleted", {"id": JOB_ID})
    events.close()
    assert requests[1].url.path == "/events" and requests[1].headers["last-event-id"] == "7"


def test_submit_sends_a_multipart_upload_with_the_options(tmp_path: Any) -> None:
    seen: dict[str, Any] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["params"] = dict(request.url.params)
        seen["body"] = request.read()
        seen["type"] = request.headers["content-type"]
        return httpx.Response(202, json=job("queued"))

    client, _, _ = make_client(handler)
    path = tmp_path / "scan.pdf"
    path.write_bytes(b"%PDF-1.7 fake")
    assert client.submit(path, lang="eng+deu", dpi=150, force_ocr=True, priority="low", wait=3)["status"] == "queued"
    assert seen["params"] == {"wait": "3"} and seen["type"].startswith("multipart/form-data")
    body = seen["body"]
    assert b'name="file"; filename="scan.pdf"' in body and b"%PDF-1.7 fake" in body
    for name, value in (b"lang", b"eng+deu"), (b"dpi", b"150"), (b"force_ocr", b"true"), (b"priority", b"low"):
        assert b'name="' + name + b'"\r\n\r\n' + value in body

    client.submit(b"raw bytes", filename="page.png")
    assert b'filename="page.png"' in seen["body"] and seen["params"] == {}
    assert b'name="lang"' not in seen["body"] and b'name="force_ocr"' not in seen["body"]
    assert b'name="priority"' not in seen["body"]


def test_error_answers_become_api_errors() -> None:
    client, _, _ = make_client(
        responses(
            error(415, "unsupported_media_type", "The document is not a PDF, PNG, JPEG or TIFF."),
            error(429, "too_many_jobs", "Too many jobs.", **{"Retry-After": "7"}),
            httpx.Response(502, text="<html>Bad gateway</html>"),
        )
    )
    with pytest.raises(ApiError) as raised:
        client.submit(b"hello", filename="notes.txt")
    assert (raised.value.status, raised.value.code) == (415, "unsupported_media_type")
    assert str(raised.value) == "unsupported_media_type: The document is not a PDF, PNG, JPEG or TIFF."
    with pytest.raises(ApiError) as raised:
        client.jobs()
    assert raised.value.retry_after_s == 7
    with pytest.raises(ApiError) as raised:
        client.job(JOB_ID)
    assert (raised.value.code, raised.value.message) == ("http_502", "Bad Gateway")


def test_result_in_each_format() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        fmt = request.url.params["format"]
        if fmt == "text":
            return httpx.Response(200, text="hello\fworld")
        if fmt == "pdf":
            return httpx.Response(200, content=b"%PDF-1.7", headers={"content-type": "application/pdf"})
        return httpx.Response(200, json={"id": JOB_ID, "text": "hello"})

    client, _, _ = make_client(handler)
    assert client.result(JOB_ID, "text") == "hello\fworld"
    assert client.result(JOB_ID, "pdf") == b"%PDF-1.7"
    assert client.result(JOB_ID) == {"id": JOB_ID, "text": "hello"}


def test_cancel_leaves_a_finished_job_alone() -> None:
    client, requests, _ = make_client(responses(httpx.Response(200, json=job("completed", 100))))
    assert client.cancel(JOB_ID)["status"] == "completed"
    assert [r.method for r in requests] == ["GET"], "DELETE would have deleted it"

    client, requests, _ = make_client(
        responses(httpx.Response(200, json=job("running")), httpx.Response(202, json=job("cancelled")))
    )
    assert client.cancel(JOB_ID)["status"] == "cancelled"
    assert [r.method for r in requests] == ["GET", "DELETE"]


def test_delete_and_list() -> None:
    client, requests, _ = make_client(
        responses(httpx.Response(204), httpx.Response(200, json={"jobs": [job("failed")], "next": None}))
    )
    assert client.delete(JOB_ID) is None
    assert [j["status"] for j in client.jobs(status="failed", limit=5)] == ["failed"]
    assert dict(requests[1].url.params) == {"status": "failed", "limit": "5"}


def test_a_job_id_stays_one_path_segment() -> None:
    client, requests, _ = make_client(
        responses(httpx.Response(404, json={"error": {"code": "not_found", "message": "-"}}))
    )
    with pytest.raises(ApiError):
        client.job("../cache")
    assert requests[0].url.raw_path == b"/jobs/..%2Fcache"
