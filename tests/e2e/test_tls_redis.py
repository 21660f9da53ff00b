"""REDIS_URL=rediss:// with a self-signed certificate, as Heroku Redis hands out."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, RedisServer, free_port, run_service
from tests.e2e.test_api import read_stream, submit
from tests.unit.ocr_samples import text_pdf


@pytest.fixture(scope="module")
def tls_redis() -> Iterator[str]:
    workdir = Path(tempfile.mkdtemp(prefix="ocr-test-tls-"))
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=redis.test",
         "-keyout", str(workdir / "key.pem"), "-out", str(workdir / "cert.pem")],
        check=True, capture_output=True,
    )
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--tls-cert-file", str(workdir / "cert.pem"), "--tls-key-file", str(workdir / "key.pem"),
         "--tls-ca-cert-file", str(workdir / "cert.pem"), "--tls-auth-clients", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    yield f"rediss://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(timeout=10)


async def test_rediss_with_a_self_signed_certificate_works_when_verification_is_off(
    redis_server: RedisServer, tls_redis: str
) -> None:
    with run_service(redis_server, REDIS_URL=tls_redis, REDIS_SSL_VERIFY="false") as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            job = (await submit(client, text_pdf(lines=["Over TLS to Redis"]))).json()
            events = await read_stream(client, job["links"]["events"])
            assert events[-1][2]["status"] == "completed"


def test_rediss_with_verification_refuses_a_self_signed_certificate(tls_redis: str) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "service.web"], cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "REDIS_URL": tls_redis}, capture_output=True, text=True, timeout=60,
    )
    assert completed.returncode == 3
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and "not reachable" in lines[0]
