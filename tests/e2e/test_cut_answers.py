"""A result whose job goes while its answer is being sent is cut, never finished short.

The answer's status and first pages go out before the rest is read from Redis (a batch at a time), so
a DELETE beside a download, or the result's time to live running out, can take the pages still to be
read. Ending the body as usual would hand the client a complete-looking 200 missing pages; the
connection is closed without the body's end instead, and the log says why without calling it an error.

The job is made by the real service (web and worker); its answer is served by the same app in a
uvicorn of this test's own, which sends the real DELETE at the one moment that makes the race certain:
once the answer's first bytes are out, before another page is read.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.app import create_app
from service.jobs.results import BATCH_PAGES
from settings import Settings
from tests.conftest import Service, free_port
from tests.e2e.test_api import submit
from tests.unit.ocr_samples import text_pdf

PAGES = BATCH_PAGES + 8  # more than the first batch, which is read before the answer starts


class DeletedOnceSending:
    """The app, with the job behind the answer DELETEd through the real service once the answer's first
    body bytes are sent (synchronously: nothing more is read from Redis before the DELETE is done)."""

    def __init__(self, app: ASGIApp, service_url: str) -> None:
        self.app = app
        self.service_url = service_url
        self.deleted: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        job_id = scope["path"].split("/")[2]

        async def send_then_delete(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.body" and message.get("body") and job_id not in self.deleted:
                assert httpx.delete(f"{self.service_url}/jobs/{job_id}").status_code == 204
                self.deleted.append(job_id)

        await self.app(scope, receive, send_then_delete)


@contextmanager
def own_web(live_service: Service) -> Iterator[tuple[str, DeletedOnceSending]]:
    """The service's app in a uvicorn of this test's own, on the live service's Redis."""
    app = DeletedOnceSending(create_app(Settings.from_env(live_service.env)), live_service.url)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, http="httptools"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "the test's own web did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(15)


async def completed_job(client: httpx.AsyncClient, name: str) -> str:
    # Each job its own text (the content cache must not answer one job with another's pages), and
    # enough of it that the pages are read from their text layer rather than OCRed.
    lines = [f"An answer cut short while it is being sent, asked for as {name}"]
    job = (await submit(client, text_pdf(pages=PAGES, lines=lines))).json()
    async with asyncio.timeout(60):
        while (status := (await client.get(f"/jobs/{job['id']}")).json()["status"]) != "completed":
            assert status in ("queued", "running"), status
            await asyncio.sleep(0.1)
    return str(job["id"])


@pytest.mark.parametrize("path", ["result?format=text", "result", "result?format=hocr", "result?format=alto", "pages"])
async def test_an_answer_whose_job_is_deleted_as_it_is_sent_is_cut_not_finished_short(
    client: httpx.AsyncClient, live_service: Service, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    job_id = await completed_job(client, path)
    # Whole, before anything is deleted: every page, and the body's end.
    whole = await client.get(f"/jobs/{job_id}/{path}")
    assert whole.status_code == 200 and len(whole.content) > 0
    caplog.set_level(logging.INFO)
    with own_web(live_service) as (url, app):
        caplog.clear()  # from here on: what the answer logs (not the open-mode warning at start)
        async with httpx.AsyncClient(base_url=url, timeout=30) as own:
            async with own.stream("GET", f"/jobs/{job_id}/{path}") as answer:
                assert answer.status_code == 200
                received = b""
                with pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"):
                    async for chunk in answer.aiter_bytes():
                        received += chunk
        assert app.deleted == [job_id]
    # What arrived is a prefix of the whole answer, and short of it: the client can tell.
    assert 0 < len(received) < len(whole.content) and whole.content.startswith(received)
    assert (await client.get(f"/jobs/{job_id}")).status_code == 404
    cut = [r for r in caplog.records if r.name == "service.api.app" and r.getMessage().startswith("cut the answer")]
    assert len(cut) == 1 and job_id in cut[0].getMessage(), [r.getMessage() for r in caplog.records]
    # Said once, at info, with its reason: no error line and no traceback, from the app or from uvicorn.
    assert [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info] == []
