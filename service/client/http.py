"""A small synchronous Python client of the service's HTTP API (the contract is ../shared/API.md).

    ApiError              an error answer: `status`, `code`, `message` from `{"error": {"code", "message"}}`

Anything that is not an answer (connection refused, a timeout, a name that does not resolve) is
raised as httpx raises it: an `httpx.TransportError`. Event streams that drop are resumed with
`Last-Event-ID` before either of those reaches the caller.

    with OcrClient("http://localhost:8000", api_key=key) as ocr:
        job = ocr.submit("scan.pdf")
        for job in ocr.follow(job):
            print(job["progress"], job["message"])
        text = ocr.result(job["id"], "text")
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any, Literal, Self, overload
from urllib.parse import quote

import httpx
from httpx_sse import connect_sse

Job = dict[str, Any]
# The job statuses of the contract (../shared/API.md); the client imports nothing of the server.
STATUSES = ("queued", "running", "completed", "failed", "cancelled")
TERMINAL = frozenset(STATUSES[2:])

DEFAULT_TIMEOUT_S = 30.0
# The server sends a `: ping` comment at least every 15 s: a stream silent for longer than this is dead.
STREAM_READ_TIMEOUT_S = 60.0
# How many times in a row a stream may drop (or fail to reopen) without delivering an event before
# the error reaches the caller; the delay doubles each time from the server's `retry:` field.
RECONNECT_ATTEMPTS = 6
RECONNECT_DELAY_S = 2.0
RECONNECT_DELAY_MAX_S = 30.0


class ApiError(Exception):
    """An error answer of the service."""

    def __init__(
        self, status: int, code: str, message: str, *, retry_after_s: float | None = None, body: Any = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s
        self.body = body

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        """Built from the error body; an answer without one (a proxy's HTML page) gets `http_<status>`."""
        retry_after = response.headers.get("retry-after", "")
        retry_after_s = float(retry_after) if retry_after.replace(".", "", 1).isdigit() else None
        body: Any = None
        try:
            body = response.json()
            error = body["error"]
            code, message = str(error["code"]), str(error["message"])
        except (ValueError, KeyError, TypeError):
            code = f"http_{response.status_code}"
            message = response.reason_phrase or "The server answered with an error."
        return cls(response.status_code, code, message, retry_after_s=retry_after_s, body=body)


class OcrClient:
    """The service's API. `api_key` is sent as `Authorization: Bearer <key>`; without it, the
    client relies on open mode, or on the tokens the server puts in `links.events`."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"User-Agent": "ocr-service-client"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.timeout_s = timeout
        self._has_key = bool(api_key)
        self._http = httpx.Client(base_url=base_url, headers=headers, timeout=timeout, transport=transport)
        self._sleep: Callable[[float], None] = time.sleep

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- jobs

    def submit(
        self,
        document: str | os.PathLike[str] | bytes,
        *,
        filename: str | None = None,
        lang: str | None = None,
        dpi: int | None = None,
        force_ocr: bool = False,
        pages: str | None = None,
        priority: str | None = None,
        wait: float | None = None,
    ) -> Job:
        """Upload a document (a path or its bytes); the job object.

        With `wait` (seconds) the server holds the answer until the job ends or the time is up: a
        completed job then carries its result object under `"result"`. A cached result answers at
        once with a completed job whose `cached` is true."""
        fields: dict[str, str] = {}
        if lang:
            fields["lang"] = lang
        if dpi is not None:
            fields["dpi"] = str(dpi)
        if force_ocr:
            fields["force_ocr"] = "true"
        if pages:
            fields["pages"] = pages
        if priority:
            fields["priority"] = priority
        params = {"wait": f"{wait:g}"} if wait is not None else None
        timeout = httpx.Timeout(self.timeout_s, read=self.timeout_s + (wait or 0))
        if isinstance(document, bytes):
            files = {"file": (filename or "document", document)}
            return self._json("POST", "/jobs", files=files, data=fields, params=params, timeout=timeout)
        path = Path(document)
        with path.open("rb") as body:
            files_ = {"file": (filename or path.name, body)}
            return self._json("POST", "/jobs", files=files_, data=fields, params=params, timeout=timeout)

    def job(self, job_id: str) -> Job:
        return self._json("GET", _job_path(job_id))

    def jobs(self, status: str | None = None, limit: int | None = None) -> list[Job]:
        """The newest jobs of the tenant (the server's page size unless `limit`), newest first."""
        params: dict[str, str] = {}
        if status is not None:
            params["status"] = status
        if limit is not None:
            params["limit"] = str(limit)
        jobs: list[Job] = self._json("GET", "/jobs", params=params)["jobs"]
        return jobs

    @overload
    def result(self, job_id: str, format: Literal["json"] = "json") -> dict[str, Any]: ...
    @overload
    def result(self, job_id: str, format: Literal["text"]) -> str: ...
    @overload
    def result(self, job_id: str, format: Literal["pdf"]) -> bytes: ...
    @overload
    def result(self, job_id: str, format: Literal["hocr", "alto"]) -> str: ...

    def result(self, job_id: str, format: str = "json") -> dict[str, Any] | str | bytes:
        """The result object (`json`), its text (`text`), hOCR (`hocr`), ALTO XML (`alto`) or a
        searchable PDF (`pdf`). A job that has not completed raises ApiError: `not_ready` (409),
        `cancelled`, or the job's own error."""
        response = self._request("GET", _job_path(job_id, "result"), params={"format": format})
        if format in ("text", "hocr", "alto"):
            return response.text
        if format == "pdf":
            return response.content
        result: dict[str, Any] = response.json()
        return result

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued or running job; the job object (`cancelled` soon after, as its stream says).

        A job that has already ended is left alone and returned as it is: the API's DELETE would
        delete a finished job, which is not what cancelling means."""
        job = self.job(job_id)
        if job["status"] in TERMINAL:
            return job
        response = self._request("DELETE", _job_path(job_id))
        if response.status_code == 204:
            # It ended between the two requests, and DELETE removed it.
            raise ApiError(409, "already_ended", "The job ended before it could be cancelled; it is deleted now.")
        cancelled: Job = response.json()
        return cancelled

    def delete(self, job_id: str) -> Job | None:
        """Delete a finished job and its stored data (None). A queued or running job is cancelled
        instead, as the API does: its job object is returned."""
        response = self._request("DELETE", _job_path(job_id))
        if response.status_code == 204:
            return None
        job: Job = response.json()
        return job

    def pages(self, job_id: str, after: int = 0) -> list[dict[str, Any]] | None:
        """The job's finished pages numbered above `after`, in page order, even while it runs; None
        from a server without `/pages`."""
        try:
            answer = self._json("GET", _job_path(job_id, "pages"), params={"after": str(after)})
        except ApiError as exc:
            if exc.status in (404, 405):
                return None
            raise
        pages: list[dict[str, Any]] = answer["pages"]
        return pages

    # -- events

    def follow(self, job: Job | str, *, last_event_id: str | None = None) -> Generator[Job, None, None]:
        """The job object at every change, from its current state to its terminal one (`completed`,
        `failed` or `cancelled`), over `GET /jobs/<id>/events`.

        A stream that drops before the end is reopened with `Last-Event-ID`, so nothing is missed
        and nothing repeated. A deleted job raises ApiError `not_found`."""
        for name, data in self.job_events(job, last_event_id=last_event_id):
            if name != "page":
                yield data

    def job_events(
        self, job: Job | str, *, last_event_id: str | None = None
    ) -> Generator[tuple[str, dict[str, Any]], None, None]:
        """What `follow` gives, as ("status" or "progress", the job), with each finished page in
        between as ("page", {"id": <job id>, "page": <page object>}) in the order pages finish."""
        job_id = job if isinstance(job, str) else str(job["id"])
        refresh: Callable[[], str] | None = None
        if self._has_key or isinstance(job, str) or "links" not in job:
            path = _job_path(job_id, "events")
        else:
            # No key to send: the link's token (scoped to this job, expiring) is the credential. An
            # expired one is replaced by the one in a freshly fetched job object.
            path = job["links"]["events"]

            def refresh() -> str:
                link: str = self.job(job_id)["links"]["events"]
                return link

        with contextlib.closing(self._events(path, last_event_id=last_event_id, refresh=refresh)) as events:
            for name, data in events:
                if name == "deleted":
                    raise ApiError(404, "not_found", "The job was deleted while it was followed.")
                yield name, data
                if name != "page" and data.get("status") in TERMINAL:
                    return
        # 204: the job had already ended and every event of it has been seen; its state now is final.
        yield "status", self.job(job_id)

    def watch(self, *, last_event_id: str | None = None) -> Generator[tuple[str, Any], None, None]:
        """The tenant's live feed (`GET /events`) as (event, data), reconnecting when it drops:
        `snapshot` {"jobs": [...]} first, then `status` and `progress` (a job object) and `deleted` {"id"}.
        It never ends by itself; stop iterating to leave."""
        yield from self._events("/events", last_event_id=last_event_id, refresh=None)

    def _events(
        self, path: str, *, last_event_id: str | None, refresh: Callable[[], str] | None
    ) -> Generator[tuple[str, Any], None, None]:
        """The events of one SSE endpoint as (event, parsed data), reopened with `Last-Event-ID` after
        every drop, until the server answers 204 (nothing more will come)."""
        failures = 0
        delay_s = RECONNECT_DELAY_S
        refreshed = False
        timeout = httpx.Timeout(self.timeout_s, read=max(self.timeout_s, STREAM_READ_TIMEOUT_S))
        while True:
            headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
            error: Exception | None = None
            try:
                with connect_sse(self._http, "GET", path, headers=headers, timeout=timeout) as source:
                    response = source.response
                    if response.status_code == 204:
                        return
                    if response.status_code == 401 and refresh is not None and not refreshed:
                        path, refreshed = refresh(), True
                        continue
                    if response.is_error:
                        response.read()
                        raise ApiError.from_response(response)
                    for sse in source.iter_sse():
                        if sse.retry is not None:
                            delay_s = sse.retry / 1000
                        if not sse.data:
                            continue  # a `: ping` comment
                        if sse.id:
                            last_event_id = sse.id
                        failures, refreshed = 0, False
                        yield sse.event, json.loads(sse.data)
            except httpx.TransportError as exc:
                error = exc
            except ApiError as exc:
                if exc.status != 503:
                    raise
                error = exc
                delay_s = exc.retry_after_s or delay_s
            # The stream ended (or broke) before the caller was done with it: reopen it.
            failures += 1
            if failures > RECONNECT_ATTEMPTS:
                if error is not None:
                    raise error
                raise ApiError(0, "stream_closed", "The event stream kept closing without sending anything.")
            self._sleep(min(delay_s * 2 ** (failures - 1), RECONNECT_DELAY_MAX_S))

    # -- plumbing

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self._http.request(method, path, **kwargs)
        if response.is_error:
            raise ApiError.from_response(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        payload: dict[str, Any] = self._request(method, path, **kwargs).json()
        return payload


def _job_path(job_id: str, *rest: str) -> str:
    # An id typed by a user must stay one path segment ("../cache" is not a job).
    return "/".join(["/jobs", quote(job_id, safe=""), *rest])
