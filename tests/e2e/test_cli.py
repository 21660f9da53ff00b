"""The `ocr-service` command and its client against the real service: a real uvicorn, a real arq
worker, a real redis-server, real Tesseract; the command runs as a process of its own."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.client import OcrClient
from tests.conftest import ROOT, RedisServer, Service, run_service
from tests.unit.ocr_samples import LINES, cer, scan, scanned_pdf, text_pdf

KEY = "key-acme-123456"
COMMAND = [sys.executable, "-m", "service.client.cli"]
TIMEOUT_S = 60


def command_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCR_SERVICE_")}
    return env | extra


def ocr_service(server: str, *args: str | Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, "--server", server, *map(str, args)],
        cwd=ROOT,
        env=command_env(**env),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def started(server: str, *args: str | Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*COMMAND, "--server", server, *map(str, args)],
        cwd=ROOT,
        env=command_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class Lines:
    """The lines a process writes to one pipe, read as they come, each wait with a timeout."""

    def __init__(self, pipe: Any) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, args=(pipe,), daemon=True).start()

    def _read(self, pipe: Any) -> None:
        for line in pipe:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, *parts: str, timeout_s: float = TIMEOUT_S) -> str:
        deadline = time.monotonic() + timeout_s
        while True:
            line = self._queue.get(timeout=max(deadline - time.monotonic(), 0.01))
            if line is None:
                raise AssertionError(f"the pipe closed before a line with {parts}; saw {self.seen}")
            self.seen.append(line)
            if all(part in line for part in parts):
                return line

    def until_closed(self, timeout_s: float = TIMEOUT_S) -> list[str]:
        """Every line, once the pipe has closed."""
        deadline = time.monotonic() + timeout_s
        while (line := self._queue.get(timeout=max(deadline - time.monotonic(), 0.01))) is not None:
            self.seen.append(line)
        return self.seen


def write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def test_submit_follow_prints_the_text_with_progress_on_stderr(live_service: Service, tmp_path: Path) -> None:
    lines = ["The command line follows this page", "and prints what it reads"]
    document = write(tmp_path / "page.pdf", scanned_pdf([scan(lines)]))

    done = ocr_service(live_service.url, "submit", document, "--follow")

    assert done.returncode == 0, done.stderr
    assert cer("\n".join(lines), done.stdout) < 0.05, done.stdout
    progress = done.stderr.splitlines()  # not a terminal: one line per change
    assert len(progress) >= 2 and all(line.startswith("page.pdf [") for line in progress), done.stderr
    assert progress[-1] == "page.pdf [" + "#" * 24 + "] 100% completed"


def test_job_commands_status_result_cancel_delete(live_service: Service, tmp_path: Path) -> None:
    document = write(tmp_path / "letter.pdf", text_pdf(lines=["Status and result commands work"]))

    submitted = ocr_service(live_service.url, "submit", document)
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    assert len(job_id) == 32 and submitted.stderr == "", "only the id, no progress without --follow"
    with OcrClient(live_service.url) as client:
        assert [job["status"] for job in client.follow(job_id)][-1] == "completed"

    status = ocr_service(live_service.url, "status", job_id)
    assert json.loads(status.stdout)["status"] == "completed"
    listed = ocr_service(live_service.url, "jobs", "--status", "completed", "--limit", "200")
    assert any(
        line.startswith(f"{job_id} completed 100% ") and line.endswith("letter.pdf")
        for line in listed.stdout.splitlines()
    )
    text = ocr_service(live_service.url, "result", job_id)
    assert text.returncode == 0 and text.stdout.strip() == "Status and result commands work"
    as_json = ocr_service(live_service.url, "result", job_id, "--format", "json")
    assert json.loads(as_json.stdout)["pages"][0]["source"] == "text-layer"
    as_pdf = ocr_service(live_service.url, "result", job_id, "--format", "pdf", "--output", f"{tmp_path}/out/")
    assert as_pdf.returncode == 0, as_pdf.stderr
    assert (tmp_path / "out" / "letter.searchable.pdf").read_bytes().startswith(b"%PDF")
    refused = ocr_service(live_service.url, "result", job_id, "--format", "pdf")
    assert refused.returncode == 2 and "--output" in refused.stderr

    finished = ocr_service(live_service.url, "cancel", job_id)
    assert finished.returncode == 1 and "already completed; there is nothing to cancel" in finished.stderr
    deleted = ocr_service(live_service.url, "delete", job_id)
    assert deleted.returncode == 0 and deleted.stdout == f"{job_id}: deleted\n"
    gone = ocr_service(live_service.url, "status", job_id)
    assert gone.returncode == 1 and gone.stderr.startswith("error: not_found: ") and gone.stderr.count("\n") == 1


def test_formats_and_outputs(live_service: Service, tmp_path: Path) -> None:
    first = write(tmp_path / "first.pdf", text_pdf(lines=["The first document of two"]))
    second = write(tmp_path / "second.pdf", text_pdf(lines=["The second document of two"]))

    as_json = ocr_service(live_service.url, "submit", first, second, "--format", "json", "-q")
    assert as_json.returncode == 0 and as_json.stderr == "", as_json.stderr
    results = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [r["text"].strip() for r in results] == ["The first document of two", "The second document of two"]

    as_text = ocr_service(live_service.url, "submit", first, second, "--follow", "-q")
    assert (
        as_text.stdout
        == "==> first.pdf <==\nThe first document of two\n==> second.pdf <==\nThe second document of two\n"
    )

    into = tmp_path / "results"
    to_directory = ocr_service(live_service.url, "submit", first, second, "--format", "pdf", "--output", into)
    assert to_directory.returncode == 0, to_directory.stderr
    assert sorted(p.name for p in into.iterdir()) == ["first.searchable.pdf", "second.searchable.pdf"]
    assert (into / "second.searchable.pdf").read_bytes().startswith(b"%PDF")

    to_file = ocr_service(live_service.url, "submit", first, "--output", tmp_path / "first.txt")
    assert to_file.returncode == 0 and to_file.stdout == ""
    assert (tmp_path / "first.txt").read_text() == "The first document of two\n"


def test_wait_answers_with_the_text_or_falls_back_to_following(live_service: Service, tmp_path: Path) -> None:
    lines = ["One request waits for this page"]
    document = write(tmp_path / "waited.pdf", scanned_pdf([scan(lines)]))
    waited = ocr_service(live_service.url, "submit", document, "--wait", "20")
    assert waited.returncode == 0, waited.stderr
    assert cer(lines[0], waited.stdout) < 0.05 and "100% completed" in waited.stderr

    # The server answers 202 at once when it may not wait: the command follows the stream instead.
    other = write(tmp_path / "quick.pdf", text_pdf(lines=["Followed after the wait ran out"]))
    fallback = ocr_service(live_service.url, "submit", other, "--wait", "0")
    assert fallback.returncode == 0 and fallback.stdout == "Followed after the wait ran out\n", fallback.stderr


def test_a_document_the_service_refuses_is_a_one_line_error(live_service: Service, tmp_path: Path) -> None:
    notes = write(tmp_path / "notes.txt", b"just some text, not a document")
    good = write(tmp_path / "good.pdf", text_pdf(lines=["A good document next to a bad one"]))

    done = ocr_service(live_service.url, "submit", notes, good, "--follow", "-q")

    assert done.returncode == 1
    assert done.stderr.startswith(f"error: {notes}: unsupported_media_type: ") and done.stderr.count("\n") == 1
    assert done.stdout == "==> good.pdf <==\nA good document next to a bad one\n", "the other files are still done"


def test_cancel_ends_a_followed_job_with_exit_status_1(live_service: Service, tmp_path: Path) -> None:
    document = write(tmp_path / "long.pdf", scanned_pdf([scan(LINES, dpi=300) for _ in range(8)], dpi=300))
    follower = started(live_service.url, "submit", document, "--follow")
    try:
        progress = Lines(follower.stderr)
        progress.wait_for("long.pdf [", "running")
        with OcrClient(live_service.url) as client:
            [job] = [j for j in client.jobs(status="running") if j["filename"] == "long.pdf"]

        cancelled = ocr_service(live_service.url, "cancel", job["id"])

        assert cancelled.returncode == 0, cancelled.stderr
        assert cancelled.stdout in (f"{job['id']}: cancelled\n", f"{job['id']}: cancelling\n")
        assert progress.wait_for(" cancelled").endswith("% cancelled")
        assert progress.wait_for("error:") == "error: long.pdf: cancelled: The job was cancelled."
        assert follower.wait(timeout=TIMEOUT_S) == 1
        assert follower.stdout is not None and follower.stdout.read() == ""
    finally:
        follower.kill()
        follower.communicate()


def test_watch_prints_one_line_per_event_until_ctrl_c(live_service: Service) -> None:
    with OcrClient(live_service.url) as client:
        before = client.submit(text_pdf(lines=["Submitted before watching"]), filename="before.pdf")
        watcher = started(live_service.url, "watch")
        try:
            out = Lines(watcher.stdout)
            # Listed from the first answer (a snapshot), or live: either way the feed is open now.
            out.wait_for(before["id"][:8])
            job = client.submit(scanned_pdf([scan(["Watched while it runs"])]), filename="watched.pdf")
            for status in ("queued", "running"):
                out.wait_for(f" {job['id'][:8]} {status} ", "watched.pdf: ")
            line = out.wait_for(f" {job['id'][:8]} completed 100% watched.pdf: Completed")
            assert line[2] == line[5] == ":" and len(line.split(" ")[0]) == 8, "starts with the time"
            watcher.send_signal(signal.SIGINT)
            assert watcher.wait(timeout=10) == 0
        finally:
            watcher.kill()
            _, err = watcher.communicate()
    assert err == ""


def test_api_keys_from_the_flag_or_the_environment(redis_server: RedisServer, tmp_path: Path) -> None:
    document = write(tmp_path / "keyed.pdf", text_pdf(lines=["Only with the right key"]))
    write(tmp_path / "next.pdf", text_pdf(lines=["Never sent"]))
    with run_service(redis_server, API_KEYS=f"acme:{KEY}", SECRET_KEY="x" * 32) as service:
        missing = ocr_service(service.url, "submit", document, tmp_path / "next.pdf")
        assert missing.returncode == 1
        assert missing.stderr == (
            f"error: {document}: unauthorized: Send an API key as 'Authorization: Bearer <key>'."
            f" (give --key or set OCR_SERVICE_KEY)\nerror: not submitted: {tmp_path / 'next.pdf'}\n"
        ), "stops at the first answer that is not about the document"
        wrong = ocr_service(service.url, "jobs", "--key", "not-the-key-000")
        assert wrong.returncode == 1 and wrong.stderr.startswith("error: unauthorized: That API key is not valid.")

        with_flag = ocr_service(service.url, "submit", document, "--follow", "--key", KEY)
        assert with_flag.returncode == 0 and with_flag.stdout == "Only with the right key\n", with_flag.stderr
        from_env = ocr_service(service.url, "jobs", OCR_SERVICE_KEY=KEY)
        assert from_env.returncode == 0 and from_env.stdout.count("keyed.pdf") == 1
        for done in (missing, wrong, with_flag, from_env):
            assert KEY not in done.stdout + done.stderr

        # Without a key, the token in the job's events link is enough to follow it.
        with OcrClient(service.url, KEY) as keyed, OcrClient(service.url) as keyless:
            job = keyed.submit(text_pdf(lines=["Followed with the link's token"]), filename="token.pdf")
            assert [j["status"] for j in keyless.follow(job)][-1] == "completed"


class CuttingProxy:
    """A TCP proxy to the service that cuts the first event stream through it after its first event,
    as a restarting router or a flaky network would."""

    def __init__(self, upstream: str) -> None:
        url = httpx.URL(upstream)
        self.upstream = (url.host, url.port)
        self.requests: list[bytes] = []  # what clients sent, per connection
        self.first_response = b""
        self._cut_done = False
        self._listener = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(downstream,), daemon=True).start()

    def _serve(self, downstream: socket.socket) -> None:
        index = len(self.requests)
        self.requests.append(b"")
        with downstream, socket.create_connection(self.upstream) as upstream:
            threading.Thread(target=self._pump_requests, args=(downstream, upstream, index), daemon=True).start()
            seen = b""
            while chunk := upstream.recv(65536):
                seen += chunk
                cut = not self._cut_done and b"/events" in self.requests[index] and b"data:" in seen
                if cut and b"\n\n" in seen[seen.index(b"data:") :]:
                    end = seen.index(b"\n\n", seen.index(b"data:")) + 2
                    downstream.sendall(chunk[: len(chunk) - (len(seen) - end)])
                    self._cut_done = True
                    self.first_response = seen[:end]
                    downstream.shutdown(socket.SHUT_RDWR)
                    return
                downstream.sendall(chunk)

    def _pump_requests(self, downstream: socket.socket, upstream: socket.socket, index: int) -> None:
        try:
            while chunk := downstream.recv(65536):
                self.requests[index] += chunk
                upstream.sendall(chunk)
        except OSError:
            pass


@pytest.fixture
def proxy(live_service: Service) -> Iterator[CuttingProxy]:
    proxy = CuttingProxy(live_service.url)
    yield proxy
    proxy.close()


def test_follow_resumes_after_a_dropped_stream_without_losing_or_repeating(
    live_service: Service, proxy: CuttingProxy
) -> None:
    document = scanned_pdf([scan(LINES[:2]), scan(LINES[2:4]), scan(LINES[4:])])
    with OcrClient(live_service.url) as direct, OcrClient(proxy.url) as through_proxy:
        through_proxy._sleep = lambda _s: None  # the server's retry field says 2 s; no need to wait here
        job = direct.submit(document, filename="three.pdf")

        seen = list(through_proxy.follow(job))

        assert seen[-1]["status"] == "completed" and seen[-1]["progress"] == 100
        first_id = next(line for line in proxy.first_response.splitlines() if line.startswith(b"id:"))[3:].strip()
        streams = [r for r in proxy.requests if r.startswith(b"GET /jobs/")]
        assert len(streams) >= 2, "the stream was cut and opened again"
        assert b"\r\nlast-event-id: " + first_id + b"\r\n" in streams[1].lower()

        # What the server replays after that id is exactly what the client saw after its first event.
        replay = direct._http.get(job["links"]["events"], headers={"Last-Event-ID": first_id.decode()})
        data = [json.loads(line[5:]) for line in replay.text.splitlines() if line.startswith("data:")]
        replayed = [d for d in data if "page" not in d]  # follow() gives the job's changes, not its pages
        assert len(replayed) < len(data), "the pages were replayed too"
        steps = [(j["status"], j["progress"], j["message"]) for j in seen]
        assert steps[1:] == [(j["status"], j["progress"], j["message"]) for j in replayed]
        ids = [int(line[3:]) for line in replay.text.splitlines() if line.startswith("id:")]
        assert ids == sorted(ids) and min(ids) == int(first_id) + 1

        # Resuming after the last event of an ended job: 204, and follow hands back the job as it ended.
        end = direct._http.get(job["links"]["events"], headers={"Last-Event-ID": str(ids[-1])})
        assert end.status_code == 204
        assert [j["status"] for j in direct.follow(job, last_event_id=str(ids[-1]))] == ["completed"]


def test_follow_prints_each_page_as_it_is_done_in_page_order(live_service: Service, tmp_path: Path) -> None:
    # One worker reading two pages at a time: page 1 is done well before the last of six.
    pages = [scan([f"Page {n} of the followed scan", LINES[0]]) for n in range(1, 8)]
    document = write(tmp_path / "seven.pdf", scanned_pdf(pages))
    url = live_service.url
    process = started(url, "submit", document, "--follow", "--pages", "1-3,5-7", "--dpi", "150", "-q")
    try:
        out = Lines(process.stdout)
        first = out.wait_for("Page 1 of the followed")
        [job] = httpx.get(f"{url}/jobs", params={"limit": 1}, timeout=10).json()["jobs"]
        assert job["status"] == "running" and job["pages_done"] < 6, "page 1 was printed before the job ended"
        assert process.wait(timeout=TIMEOUT_S) == 0, process.stderr.read() if process.stderr else ""
        text = "\n".join(out.until_closed())
    finally:
        process.kill()
        process.wait()
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()
    assert first == out.seen[0]
    positions = [text.index(f"Page {n} of") for n in (1, 2, 3, 5, 6, 7)]
    assert positions == sorted(positions) and text.count("\f") == 5
    assert "Page 4 of" not in text
    result = httpx.get(f"{url}/jobs/{job['id']}/result", params={"format": "text"}, timeout=10).text
    assert text == result.rstrip("\n"), "what was printed page by page is the result's text"


def test_format_hocr_and_alto_write_the_words(live_service: Service, tmp_path: Path) -> None:
    document = write(tmp_path / "words.pdf", text_pdf(pages=2))
    for fmt, marker in (("hocr", "ocrx_word"), ("alto", "http://www.loc.gov/standards/alto/ns-v4#")):
        target = tmp_path / f"words.{fmt}"
        done = ocr_service(live_service.url, "submit", document, "--format", fmt, "--output", target, "-q")
        assert done.returncode == 0, done.stderr
        content = target.read_text()
        assert marker in content and content.count('"ocr_page"' if fmt == "hocr" else "<Page ") == 2, content[:300]
