"""Bounded work, end to end: text caps, results served in pieces, what the web never does (decode
images, build PDFs on its event loop), bounded webhook answers, and what page processes may see."""

from __future__ import annotations

import asyncio
import threading
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pymupdf
import pytest
import uvicorn
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from tests.conftest import RedisServer, Service, free_port, run_service
from tests.e2e.test_api import submit, wait_for_status
from tests.unit.ocr_samples import LINES, image_bytes, scan, scanned_pdf, text_pdf

KEY = "bounds-key-1234"
SECRETS = {
    "API_KEYS": f"acme:{KEY}",
    "SECRET_KEY": "a-secret-key-nobody-may-see",
    "WEBHOOK_SECRET": "a-webhook-secret-nobody-may-see",
}


def shared_stream_pdf(pages: int, text_kb: int) -> bytes:
    """A small PDF whose pages all draw one compressed content stream of `text_kb` KB of text."""
    line = b"BT /F1 8 Tf 10 10 Td (" + b"ABCDEFGHIJ" * 10 + b") Tj ET\n"
    stream = zlib.compress(line * (text_kb * 1024 // 100), 9)
    kids = " ".join(f"{4 + i} 0 R" for i in range(pages)).encode()
    font = b"/Resources<</Font<</F1<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>>>>>"
    objects = [
        b"<</Type/Catalog/Pages 2 0 R>>",
        b"<</Type/Pages/Kids[" + kids + b"]/Count %d>>" % pages,
        b"<</Length %d/Filter/FlateDecode>>stream\n" % len(stream) + stream + b"\nendstream",
        *[b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]/Contents 3 0 R" + font + b">>"] * pages,
    ]
    out, offsets = bytearray(b"%PDF-1.7\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj" % number + body + b"endobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer<</Size %d/Root 1 0 R>>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


@pytest.fixture(scope="module")
def bounded_service(redis_server: RedisServer) -> Iterator[Service]:
    """Secrets set, and a document may keep 1 MB of text."""
    with run_service(redis_server, MAX_DOCUMENT_TEXT_MB="1", **SECRETS) as service:
        yield service


@pytest.fixture
async def keyed(bounded_service: Service) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=bounded_service.url, timeout=30, headers=headers) as http:
        yield http


async def stored_text_bytes(service: Service, job_id: str) -> int:
    redis = Redis.from_url(service.redis_url)
    try:
        total = 0
        for key in (f"ocr:pages:{job_id}",):
            for field in await redis.hkeys(key):
                total += await redis.hstrlen(key, field)
        return total
    finally:
        await redis.aclose()


async def test_a_small_pdf_whose_pages_share_megabytes_of_text_fails_with_text_too_large(
    client: httpx.AsyncClient, live_service: Service
) -> None:
    document = shared_stream_pdf(pages=20, text_kb=2048)
    assert len(document) < 50_000
    job = (await submit(client, document)).json()
    ended = await wait_for_status(client, job, {"completed", "failed"}, timeout_s=90)
    assert ended["status"] == "failed" and ended["error"]["code"] == "text_too_large", ended
    result = await client.get(f"/jobs/{job['id']}/result")
    assert result.status_code == 422 and result.json()["error"]["code"] == "text_too_large"
    assert await stored_text_bytes(live_service, job["id"]) == 0, "a page over its cap is never stored"


async def test_a_document_over_its_text_cap_fails_and_keeps_no_more_than_the_cap(
    keyed: httpx.AsyncClient, bounded_service: Service
) -> None:
    job = (await submit(keyed, shared_stream_pdf(pages=10, text_kb=200))).json()  # 2 MB against a 1 MB cap
    ended = await wait_for_status(keyed, job, {"completed", "failed"}, timeout_s=90)
    assert ended["status"] == "failed" and ended["error"]["code"] == "text_too_large", ended
    assert 0 < await stored_text_bytes(bounded_service, job["id"]) <= 1024 * 1024


async def test_the_result_is_served_from_its_pages_in_pieces(client: httpx.AsyncClient, live_service: Service) -> None:
    lines = ['A "quoted" back\\slash and a tab\tin the text layer', *LINES[:3]]
    job = (await submit(client, text_pdf(pages=3, lines=lines))).json()
    assert (await wait_for_status(client, job, {"completed", "failed"}))["status"] == "completed"
    response = await client.get(f"/jobs/{job['id']}/result")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert "content-length" not in response.headers, "streamed, not built in one piece"
    result = response.json()
    assert [p["number"] for p in result["pages"]] == [1, 2, 3]
    assert result["text"] == "\f".join(p["text"] for p in result["pages"])
    assert '"quoted" back\\slash' in result["pages"][0]["text"]
    assert (result["id"], result["pages_total"], result["lang"]) == (job["id"], 3, "eng")
    assert isinstance(result["duration_ms"], int)
    text = await client.get(f"/jobs/{job['id']}/result", params={"format": "text"})
    assert text.text == result["text"] and "content-length" not in text.headers
    redis = Redis.from_url(live_service.redis_url)
    try:
        assert await redis.strlen(f"ocr:result:{job['id']}") < 200, "no copy of the text in one value"
    finally:
        await redis.aclose()


async def test_a_truncated_image_is_accepted_from_its_header_and_fails_at_the_worker(
    client: httpx.AsyncClient,
) -> None:
    truncated = image_bytes(scan(dpi=72), "PNG")[:-4000]
    response = await client.post("/jobs", content=truncated, headers={"content-type": "image/png"})
    assert response.status_code == 202, "the web reads headers only; decoding is the worker's"
    ended = await wait_for_status(client, response.json(), {"completed", "failed"})
    assert ended["status"] == "failed" and ended["error"]["code"] == "unprocessable_document", ended


def many_page_pdf(pages: int) -> bytes:
    base = pymupdf.open("pdf", text_pdf(pages=20))
    doc = pymupdf.open()
    for _ in range(pages // 20):
        doc.insert_pdf(base)
    return bytes(doc.tobytes())


async def test_healthz_answers_within_a_second_while_a_large_searchable_pdf_is_built(client: httpx.AsyncClient) -> None:
    job = (await submit(client, many_page_pdf(1500))).json()
    assert (await wait_for_status(client, job, {"completed", "failed"}, timeout_s=120))["status"] == "completed"
    build = asyncio.create_task(client.get(f"/jobs/{job['id']}/result", params={"format": "pdf"}, timeout=120))
    latencies = []
    # A fresh connection each time: a stalled loop would also expire a kept-alive one, and a reset
    # connection says less than a slow answer.
    fresh = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=str(client.base_url), timeout=30, limits=fresh) as other:
        while not build.done():
            started = time.monotonic()
            assert (await other.get("/healthz")).status_code == 200
            latencies.append(time.monotonic() - started)
            await asyncio.wait({build}, timeout=0.05)
    pdf = await build
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert len(latencies) >= 5, "the build was too quick to show anything"
    assert max(latencies) < 1.0, f"/healthz waited {max(latencies):.2f} s while the PDF was built"


class EndlessAnswer:
    """A webhook receiver that answers 200, then trickles a body that goes on for a minute."""

    def __init__(self) -> None:
        self.port = free_port()
        self.sent = 0

    def app(self) -> Starlette:
        async def hook(request: Request) -> StreamingResponse:
            await request.body()

            async def body() -> AsyncIterator[bytes]:
                for _ in range(6000):
                    yield b"x" * 16384
                    self.sent += 16384
                    await asyncio.sleep(0.01)

            return StreamingResponse(body(), media_type="text/plain")

        return Starlette(routes=[Route("/hook", hook, methods=["POST"])])


async def test_a_webhook_answer_is_read_only_so_far(client: httpx.AsyncClient) -> None:
    receiver = EndlessAnswer()
    server = uvicorn.Server(uvicorn.Config(receiver.app(), host="127.0.0.1", port=receiver.port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{receiver.port}/hook"
        job = (await submit(client, text_pdf(lines=["Tell a chatty receiver"]), webhook_url=url)).json()
        async with asyncio.timeout(30):
            while ((await client.get(f"/jobs/{job['id']}")).json().get("webhook") or {}).get("status") != "delivered":
                await asyncio.sleep(0.1)
        assert receiver.sent < 10 * 1024 * 1024, f"{receiver.sent} bytes of the answer were sent"
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 10)


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(entry.split("=", 1) for entry in raw.decode(errors="replace").split("\0") if "=" in entry)


def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def assert_no_secrets(environ: dict[str, str], service: Service) -> None:
    leaked = {name for name in ("API_KEYS", "SECRET_KEY", "WEBHOOK_SECRET", "REDIS_URL") if name in environ}
    assert leaked == set()
    values = [*SECRETS.values(), KEY, service.redis_url]
    assert not [v for v in values if any(v in seen for seen in environ.values())]


async def test_page_processes_and_tesseract_see_no_secrets(keyed: httpx.AsyncClient, bounded_service: Service) -> None:
    worker = bounded_service.workers[0].pid

    def page_processes() -> list[int]:
        return [p for p in children_of(worker) if b"page_pool" in Path(f"/proc/{p}/cmdline").read_bytes()]

    # An earlier test's page may have cost a child, whose replacement can still be starting: wait for it.
    async with asyncio.timeout(15):
        while len(pages := page_processes()) < 2:
            await asyncio.sleep(0.05)
    assert len(pages) == 2
    for pid in pages:
        environ = environ_of(pid)
        assert_no_secrets(environ, bounded_service)
        assert "PATH" in environ
    job = (await submit(keyed, scanned_pdf([scan(LINES, dpi=300)], dpi=300), dpi="400")).json()
    seen: dict[str, str] | None = None
    async with asyncio.timeout(60):
        while seen is None:
            for pid in (t for p in pages for t in children_of(p)):
                try:
                    if Path(f"/proc/{pid}/comm").read_text().strip() == "tesseract":
                        seen = environ_of(pid)
                except (FileNotFoundError, ProcessLookupError):
                    continue
            await asyncio.sleep(0.01)
    assert_no_secrets(seen, bounded_service)
    assert seen["OMP_THREAD_LIMIT"] == "1"
    assert (await wait_for_status(keyed, job, {"completed", "failed"}))["status"] == "completed"
