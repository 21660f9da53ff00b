"""The processes a benchmark needs: a redis-server on a free port, the service's web and workers, the
Celery baseline. Each runs in its own process group and is stopped, group and all, when its context ends.

Every process started here is also remembered in `_LIVE`, so an interrupted run (Ctrl-C, SIGTERM) still
stops them all before it exits.
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
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / ".results"
READY_TIMEOUT_S = 40
STOP_TIMEOUT_S = 15

_LIVE: set[subprocess.Popen[bytes]] = set()
# Set by a SIGINT/SIGTERM: the runner starts no further benchmark.
STOPPING = threading.Event()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn(
    argv: Sequence[str], *, log: Path, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.Popen[bytes]:
    """Start `argv` in `cwd` (the repository) in a new session (its own process group), output appended to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        process = subprocess.Popen(
            list(argv), cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    _LIVE.add(process)
    return process


def stop(process: subprocess.Popen[bytes] | None, *, timeout_s: float = STOP_TIMEOUT_S, group: bool = True) -> None:
    """SIGTERM the process (and its group), then SIGKILL the group if it lingers."""
    if process is None:
        return
    try:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                if group:
                    os.killpg(process.pid, signal.SIGTERM)
                else:
                    process.terminate()
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left of the group (page processes, tesseract) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
    finally:
        _LIVE.discard(process)


def stop_all() -> None:
    for process in list(_LIVE):
        stop(process, timeout_s=3)


def install_signal_handlers() -> None:
    """Ctrl-C or SIGTERM: stop every process we started, then exit."""

    def handler(signum: int, frame: object) -> None:
        STOPPING.set()
        stop_all()
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def raise_open_file_limit(wanted: int = 65536) -> int:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]
    workdir: str
    _next_db: int = 0
    argv: list[str] = field(default_factory=list)
    log: Path | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def fresh_db(self) -> int:
        """A database no service of this run has used (each service gets its own queue and keys)."""
        db = self._next_db
        self._next_db = (self._next_db + 1) % 64
        client = redis.Redis(port=self.port)
        try:
            client.execute_command("SELECT", db)
            client.flushdb()
        finally:
            client.close()
        return db

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(port=self.port, db=db)

    def connected_clients(self) -> int:
        client = redis.Redis(port=self.port)
        try:
            return int(client.info("clients")["connected_clients"]) - 1  # not counting this one
        finally:
            client.close()

    def crash_and_restart(self, *, down_s: float) -> float:
        """SIGKILL the server (a crash, not a clean shutdown), wait `down_s`, start it again on the same port
        and directory; returns the seconds from the kill until it answers PING again (its AOF loaded)."""
        killed_at = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        _LIVE.discard(self.process)
        time.sleep(down_s)
        assert self.log is not None
        self.process = spawn(self.argv, log=self.log)
        _wait_until_serving(self.port, self.process, self.log, timeout_s=60)
        return time.monotonic() - killed_at


def _wait_until_serving(port: int, process: subprocess.Popen[bytes], log: Path, *, timeout_s: float) -> None:
    """Until the server answers PING: a server still loading its AOF answers LOADING instead."""
    deadline = time.monotonic() + timeout_s
    client = redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=0.2)
    try:
        while True:
            with contextlib.suppress(redis.RedisError, OSError):
                if client.ping():
                    return
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"redis-server did not start; see {log}")
            time.sleep(0.05)
    finally:
        client.close()


@contextlib.contextmanager
def redis_server(logdir: Path, *, name: str = "redis", appendfsync: str | None = None) -> Iterator[RedisServer]:
    """A redis-server on a free port: in memory only, or with its append-only file on (`appendfsync`
    `everysec` or `always`), which lets `crash_and_restart` bring its data back."""
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="ocr-bench-redis-")
    persistence = ["--appendonly", "no"]
    if appendfsync is not None:
        persistence = ["--appendonly", "yes", "--appendfsync", appendfsync]
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", *persistence,
            "--databases", "64", "--dir", workdir, "--maxclients", "20000"]
    log = logdir / f"{name}.log"
    server = RedisServer(port, spawn(argv, log=log), workdir, argv=argv, log=log)
    try:
        _wait_until_serving(port, server.process, log, timeout_s=10)
        yield server
    finally:
        stop(server.process)
        shutil.rmtree(workdir, ignore_errors=True)


def service_env(redis_url: str, port: int, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("API_KEYS", "SECRET_KEY", "REDIS_"))}
    env |= {
        "REDIS_URL": redis_url,
        "PORT": str(port),
        "LOG_FORMAT": "plain",
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
        # Benchmarks submit more than the default quota of 100 active jobs at once.
        "MAX_ACTIVE_JOBS": "100000",
    }
    env |= overrides
    return env


@dataclass
class Service:
    """The OCR service: one web process and its workers, on a Redis database of their own."""

    name: str
    env: dict[str, str]
    port: int
    logdir: Path
    # The checkout the processes run from: this one, or another version of the service (a baseline).
    root: Path = ROOT
    web: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _worker_count: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def redis_url(self) -> str:
        return self.env["REDIS_URL"]

    def start_web(self, *, prefix: Sequence[str] = ()) -> None:
        self.web = spawn([*prefix, sys.executable, "-m", "service.web"], log=self.logdir / f"{self.name}-web.log",
                         env=self.env, cwd=self.root)

    def start_worker(self, *, prefix: Sequence[str] = (), env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        n = self._worker_count
        self._worker_count += 1
        worker = spawn([*prefix, sys.executable, "worker.py"], log=self.logdir / f"{self.name}-worker{n}.log",
                       env=self.env | (env or {}), cwd=self.root)
        self.workers.append(worker)
        return worker

    def wait_ready(self, *, workers: int) -> None:
        """Until /readyz (a worker's heartbeat) or /healthz answers, and `workers` workers have registered."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        path = "/readyz" if workers else "/healthz"
        while time.monotonic() < deadline:
            for process in [self.web, *self.workers]:
                if process is not None and process.poll() is not None:
                    raise RuntimeError(f"a service process exited early; logs in {self.logdir}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + path, timeout=1).status_code == 200 and self.workers_registered() >= workers:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"service {self.name} not ready within {READY_TIMEOUT_S} s; logs in {self.logdir}")

    def workers_registered(self) -> int:
        client = redis.Redis.from_url(self.redis_url)
        try:
            return int(client.zcard("ocr:workers"))
        finally:
            client.close()

    def stop_workers(self) -> None:
        for worker in self.workers:
            stop(worker)
        self.workers.clear()
        client = redis.Redis.from_url(self.redis_url)
        try:
            client.delete("ocr:workers")
        finally:
            client.close()

    def stop(self) -> None:
        self.stop_workers()
        stop(self.web)
        self.web = None

    def pids(self) -> list[int]:
        return [p.pid for p in [self.web, *self.workers] if p is not None and p.poll() is None]


@contextlib.contextmanager
def run_service(
    server: RedisServer,
    logdir: Path,
    *,
    name: str,
    workers: int = 1,
    web_prefix: Sequence[str] = (),
    root: Path = ROOT,
    **env: str,
) -> Iterator[Service]:
    port = free_port()
    service = Service(name, service_env(server.url(server.fresh_db()), port, **env), port, logdir, root=root)
    try:
        service.start_web(prefix=web_prefix)
        for _ in range(workers):
            service.start_worker()
        service.wait_ready(workers=workers)
        yield service
    finally:
        service.stop()


def rss_kb(pid: int) -> int:
    """Resident memory of one process, from /proc/<pid>/status."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def tree_pids(pid: int) -> list[int]:
    """The process and all its descendants (page processes, tesseract, prefork children)."""
    import psutil

    try:
        parent = psutil.Process(pid)
        return [pid, *(child.pid for child in parent.children(recursive=True))]
    except psutil.Error:
        return []


def tree_rss_kb(pids: Sequence[int]) -> int:
    seen: set[int] = set()
    for pid in pids:
        seen.update(tree_pids(pid))
    return sum(rss_kb(p) for p in seen)


def tree_cpu_s(pids: Sequence[int]) -> float:
    """CPU seconds (user + system) used so far by the processes, their descendants, and the descendants
    they have already waited for (a page process's finished tesseract runs)."""
    import psutil

    seen: set[int] = set()
    for pid in pids:
        seen.update(tree_pids(pid))
    total = 0.0
    for pid in seen:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
    return total


def cpu_by_role(web_pid: int | None, worker_pids: Sequence[int], redis_pid: int | None = None) -> dict[str, float]:
    """CPU seconds so far, split by role: the web process, the worker processes' own Python, their page
    processes' own Python (rendering, pickling), and the tesseract runs (the page processes' children)."""
    import psutil

    roles = {"web": 0.0, "worker": 0.0, "page processes": 0.0, "tesseract": 0.0}
    if redis_pid is not None:
        roles["redis-server"] = 0.0
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(redis_pid).cpu_times()
            roles["redis-server"] = times.user + times.system

    def own(process: psutil.Process) -> float:
        times = process.cpu_times()
        return times.user + times.system

    with contextlib.suppress(psutil.Error):
        if web_pid is not None:
            roles["web"] += own(psutil.Process(web_pid))
    for pid in worker_pids:
        with contextlib.suppress(psutil.Error):
            worker = psutil.Process(pid)
            roles["worker"] += own(worker)
            for child in worker.children():
                with contextlib.suppress(psutil.Error):
                    roles["page processes"] += own(child)
                    times = child.cpu_times()
                    roles["tesseract"] += times.children_user + times.children_system
                    for grandchild in child.children(recursive=True):
                        with contextlib.suppress(psutil.Error):
                            roles["tesseract"] += own(grandchild)
    return roles


@dataclass
class Baseline:
    """The Celery baseline: its web process and one Celery worker (prefork, `concurrency` processes)."""

    env: dict[str, str]
    port: int
    web: subprocess.Popen[bytes]
    worker: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pids(self) -> list[int]:
        return [self.web.pid, self.worker.pid]


@contextlib.contextmanager
def run_celery_baseline(server: RedisServer, logdir: Path, *, concurrency: int) -> Iterator[Baseline]:
    port = free_port()
    env = service_env(server.url(server.fresh_db()), port, OMP_THREAD_LIMIT="1")
    worker_log = logdir / "celery-worker.log"
    worker = spawn(
        [sys.executable, "-m", "celery", "-A", "benchmarks.celery_baseline.tasks", "worker",
         "--concurrency", str(concurrency), "--pool", "prefork", "--prefetch-multiplier", "1", "-O", "fair",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO"],
        log=worker_log, env=env,
    )
    web = spawn([sys.executable, "-m", "benchmarks.celery_baseline.web"], log=logdir / "celery-web.log", env=env)
    baseline = Baseline(env, port, web, worker)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if worker.poll() is not None or web.poll() is not None:
                raise RuntimeError(f"the Celery baseline exited early; logs in {logdir}")
            ready = worker_log.exists() and "ready." in worker_log.read_text(errors="replace")
            with contextlib.suppress(httpx.HTTPError):
                if ready and httpx.get(baseline.url + "/jobs/none", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Celery baseline was not ready within {READY_TIMEOUT_S} s; logs in {logdir}")
            time.sleep(0.2)
        yield baseline
    finally:
        stop(web)
        stop(worker)
