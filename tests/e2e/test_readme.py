"""Every curl example in the README runs against a live server, so the docs cannot rot."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, RedisServer, Service, run_service
from tests.e2e.receiver import running_receiver
from tests.unit.ocr_samples import LINES, scan, scanned_pdf

CURL_TIMED_OUT = 28  # `curl --max-time` on an endless stream


def readme_curl_commands() -> list[str]:
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S):
        for line in block.splitlines():
            if line.startswith("curl "):
                commands.append(line.split("  #")[0].strip())
    return commands


def test_the_readme_shows_every_endpoint_and_the_stream() -> None:
    commands = " ".join(readme_curl_commands())
    assert "curl -N localhost:8000/jobs/$JOB/events" in commands
    for fragment in ("/jobs", "wait=20", "/result", "format=text", "format=pdf", "-X DELETE localhost:8000/jobs",
                     "/cache/stats", "-X DELETE localhost:8000/cache", "/healthz", "/readyz", "/metrics", "/events",
                     "/pages/1", "/pages?after=", "detail=words", "format=hocr", "format=alto"):
        assert fragment in commands, fragment


@pytest.fixture
def fresh_service(redis_server: RedisServer) -> Iterator[Service]:
    """A service of the README's reader's own: its job list holds only what the examples made (the
    session's shared service also holds other tests' failed jobs, which the feed example would show)."""
    with run_service(redis_server, workers=1) as service:
        yield service


def test_every_readme_curl_example_works(fresh_service: Service, tmp_path: Path) -> None:
    live_service = fresh_service
    (tmp_path / "scan.pdf").write_bytes(scanned_pdf([scan(LINES[:2])]))
    job = httpx.post(live_service.url + "/jobs", params={"wait": "20"},
                     files={"file": ("scan.pdf", (tmp_path / "scan.pdf").read_bytes())}, timeout=30).json()
    assert job["status"] == "completed"
    with running_receiver() as receiver:
        receiver.documents["scan.pdf"] = (tmp_path / "scan.pdf").read_bytes()
        env = os.environ | {"JOB": job["id"]}
        for command in readme_curl_commands():
            runnable = (
                command.replace("localhost:8000", f"127.0.0.1:{live_service.port}")
                .replace("https://example.com/scan.pdf", f"{receiver.url}/docs/scan.pdf")
            )
            completed = subprocess.run(
                ["bash", "-c", f"timeout 60 {runnable}"], cwd=tmp_path, env=env, capture_output=True, timeout=90
            )
            allowed = {0, CURL_TIMED_OUT} if "--max-time" in command else {0}
            assert completed.returncode in allowed, (command, completed.stderr)
            output = completed.stdout.decode(errors="replace")
            assert '"error":{' not in output.replace(' ', ''), (command, output)
            if "/events" in command and "-N" in command:
                assert "event: status" in output or "event: snapshot" in output or ": connected" in output
    assert (tmp_path / "searchable.pdf").read_bytes().startswith(b"%PDF")
    assert b"ocrx_word" in (tmp_path / "scan.hocr.html").read_bytes()
    assert b"<String " in (tmp_path / "scan.alto.xml").read_bytes()
