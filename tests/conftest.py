"""Fixtures that run the real thing: a redis-server on a free port, uvicorn and arq workers as processes.

Nothing here fakes Redis or the OCR: integration tests talk to a real redis-server, end-to-end tests
drive a real web process and real workers over HTTP.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
READY_TIMEOUT_S = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]
    workdir: str
    options: tuple[str, ...] = ()  # more redis-server options (an append-only file, a slow load)

    @property
    def url(self) -> str:
        return self.db_url(0)

    def db_url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()

    def start_again(self) -> None:
        """Restart on the same port (for outage tests)."""
        self.process = _spawn_redis(self.port, self.workdir, self.options)


def _spawn_redis(port: int, workdir: str, options: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--databases", "64",
         "--dir", workdir, *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return process
        time.sleep(0.05)
    process.kill()
    raise RuntimeError("redis-server did not start")


def start_redis(*options: str) -> RedisServer:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed: run scripts/test, which installs it")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="ocr-test-redis-")
    return RedisServer(port, _spawn_redis(port, workdir, options), workdir, options)


@contextlib.contextmanager
def running_redis(*options: str) -> Iterator[RedisServer]:
    """A redis-server of its own for the block (with more `options`), stopped and its files removed after."""
    server = start_redis(*options)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    """A clean database of its own (db 1), so flushing it never disturbs a running service on db 0."""
    client = Redis.from_url(redis_server.url.rsplit("/", 1)[0] + "/1")
    await client.flushdb()
    yield client
    await client.aclose()


def service_env(redis_url: str, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("API_KEYS", "SECRET_KEY", "REDIS_"))}
    env |= {
        "REDIS_URL": redis_url,
        "LOG_FORMAT": "plain",
        "OCR_CONCURRENCY": "2",
        "ALLOW_PRIVATE_NETWORKS": "true",
        "PYTHONUNBUFFERED": "1",
        "SSE_PING_SECONDS": "1",
    }
    env |= overrides
    return env


# Every Service started in this session, so the e2e fixture (tests/e2e/conftest.py) can read what each
# one logged during a test.
SERVICES: list[Service] = []


@dataclass
class Service:
    """A running web process and its workers."""

    redis: RedisServer
    env: dict[str, str]
    port: int
    logdir: Path
    web: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    # Processes that ignored SIGTERM and had to be killed: a hang the test must not pass over.
    killed: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def redis_url(self) -> str:
        return self.env["REDIS_URL"]

    def _spawn(self, args: list[str], name: str) -> subprocess.Popen[bytes]:
        # The child keeps its own copy of the descriptor; ours can close at once.
        with open(self.logdir / f"{name}.log", "ab") as log:
            return subprocess.Popen(
                [sys.executable, *args], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start_web(self) -> None:
        self.web = self._spawn(["-m", "service.web"], "web")

    def start_worker(self) -> subprocess.Popen[bytes]:
        worker = self._spawn(["worker.py"], f"worker{len(self.workers)}")
        self.workers.append(worker)
        return worker

    def wait_ready(self, *, need_worker: bool = True) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        path = "/readyz" if need_worker else "/healthz"
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + path, timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"service not ready; logs in {self.logdir}:\n{self.logs()}")

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}" for p in self.logdir.glob("*.log"))

    def stop(self) -> None:
        for process in [*self.workers, self.web]:
            if process is not None and process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        for process in [*self.workers, self.web]:
            if process is None:
                continue
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                self.killed.append(" ".join(str(a) for a in process.args))  # type: ignore[union-attr]


_next_db = iter(range(2, 64))


@contextlib.contextmanager
def run_service(redis_server: RedisServer, *, workers: int = 1, **env: str) -> Iterator[Service]:
    """A web process and `workers` workers on a Redis database of their own (db 0 is `live_service`'s,
    db 1 the integration tests'), so services never take each other's jobs."""
    logdir = Path(tempfile.mkdtemp(prefix="ocr-test-service-"))
    port = free_port()
    db = next(_next_db)
    # Its own TMPDIR: every Tesseract the service starts reads a file under it, which is how the tests find
    # the service's Tesseract processes, orphans included (tests/e2e/test_api.py live_tesseract_pids).
    tmpdir = logdir / "tmp"
    tmpdir.mkdir()
    env = {"TMPDIR": str(tmpdir)} | env
    service = Service(redis_server, service_env(redis_server.db_url(db), PORT=str(port), **env), port, logdir)
    SERVICES.append(service)
    try:
        service.start_web()
        for _ in range(workers):
            service.start_worker()
        service.wait_ready(need_worker=workers > 0)
        yield service
    finally:
        service.stop()
    if service.killed:
        raise AssertionError(f"SIGTERM did not stop {service.killed}: it had to be killed; logs in {logdir}")


@pytest.fixture(scope="session")
def live_service(redis_server: RedisServer) -> Iterator[Service]:
    """One web process and one worker, shared by the end-to-end tests that need no special settings."""
    with run_service(redis_server, workers=1) as service:
        yield service


@pytest.fixture
async def client(live_service: Service) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live_service.url, timeout=30) as http:
        yield http
