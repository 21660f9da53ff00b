"""12. Streams at scale: 10,000 clients on one web process, bursts, several web processes.

Each scenario starts its own web (no worker: the benchmark publishes the jobs' changes itself through
the same Lua script a worker uses, JobStore.change, so that it knows each event's publish time), opens
streams from client processes on raw asyncio sockets (benchmarks/stream_client.py), then publishes a
few progress events and the terminal one for every job, and checks that every stream got every event
of its job (or of its tenant's feed) in order, against what Redis kept. Figures: clients served and
refused, the final event's publish-to-client latency and spread, the web's CPU per event delivered to
one stream, its memory per idle stream, and its Redis connections.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import psutil
from redis.asyncio import Redis

from benchmarks.common import Context
from benchmarks.processes import ROOT, rss_kb, run_service
from benchmarks.report import Section, percentile
from service import keys
from service.jobs.record import COMPLETED, RUNNING, new_job, new_job_id
from service.jobs.store import JobStore

logger = logging.getLogger(__name__)

KEY = "12"
TITLE = "Streams at scale: 10,000 clients per web process, bursts, WEB_CONCURRENCY"
TENANTS = [f"tenant{n}" for n in range(10)]
KEYS = {tenant: f"{tenant}-key-0123456789" for tenant in TENANTS}
PROGRESS_EVENTS = 3
CLIENT_PROCESSES = 2


@dataclass
class Scenario:
    name: str
    streams: int
    jobs: int
    burst: bool  # every client at the same moment, else 250 at a time per client process
    feeds: int = 0  # of `streams`, how many are tenant feeds
    web_concurrency: int = 1


def scenarios(quick: bool) -> list[Scenario]:
    n, burst = (2000, 1000) if quick else (10_000, 5000)
    return [
        Scenario(f"{n:,} streams on one job", n, 1, burst=False),
        Scenario(f"{n:,} streams over {n // 10:,} jobs", n, n // 10, burst=False),
        Scenario(f"a burst of {burst:,} at once (half one job, half feeds)", burst, 1, burst=True, feeds=burst // 2),
        Scenario(f"a burst of {burst:,} at once, WEB_CONCURRENCY=2", burst, 1, burst=True, feeds=burst // 2,
                 web_concurrency=2),
        Scenario(f"{n:,} streams on one job, WEB_CONCURRENCY=2", n, 1, burst=False, web_concurrency=2),
    ]


def web_pids(supervisor: int) -> list[int]:
    """The processes serving the port: the web itself, or uvicorn's children under WEB_CONCURRENCY."""
    try:
        children = [c for c in psutil.Process(supervisor).children() if "resource_tracker" not in " ".join(c.cmdline())]
    except psutil.Error:
        return []
    return [c.pid for c in children] or [supervisor]


def redis_connections(pids: list[int], redis_port: int) -> int:
    total = 0
    for pid in pids:
        try:
            total += sum(1 for c in psutil.Process(pid).net_connections(kind="tcp")
                         if c.raddr and c.raddr.port == redis_port and c.status == psutil.CONN_ESTABLISHED)
        except psutil.Error:
            pass
    return total


def cpu_s(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


class PeakSampler(threading.Thread):
    def __init__(self, read: Any) -> None:
        super().__init__(daemon=True)
        self.read, self.peak, self.stopping = read, 0, threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.05):
            self.peak = max(self.peak, self.read())

    def stop(self) -> int:
        self.stopping.set()
        self.join(timeout=5)
        return self.peak


def start_clients(
    port: int, orders: list[dict[str, Any]], at_once: int, deadline_s: float
) -> list[subprocess.Popen[str]]:
    share = [orders[i::CLIENT_PROCESSES] for i in range(CLIENT_PROCESSES)]
    clients = []
    for streams in share:
        client = subprocess.Popen([sys.executable, "-m", "benchmarks.stream_client"], cwd=ROOT, text=True,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert client.stdin is not None and client.stdout is not None
        client.stdin.write(json.dumps({"port": port, "streams": streams, "at_once": at_once,
                                       "deadline_s": deadline_s}) + "\n")
        client.stdin.flush()
        clients.append(client)
    for client in clients:
        assert client.stdout is not None and client.stdout.readline().strip() == "ready"
    return clients


async def read_line(client: subprocess.Popen[str]) -> dict[str, Any]:
    assert client.stdout is not None
    line = await asyncio.get_running_loop().run_in_executor(None, client.stdout.readline)
    if not line:
        raise RuntimeError("a client process ended without reporting")
    result: dict[str, Any] = json.loads(line)
    return result


async def run_scenario(ctx: Context, scenario: Scenario, section: Section) -> None:
    env = {"API_KEYS": ",".join(f"{t}:{k}" for t, k in KEYS.items()), "SECRET_KEY": "s" * 32,
           "WEB_CONCURRENCY": str(scenario.web_concurrency), "MAX_STREAMS_PER_TENANT": "100000",
           "LOG_LEVEL": "WARNING", "SSE_SEND_TIMEOUT_SECONDS": "60"}
    arrival = "burst" if scenario.burst else "steady"
    name = f"streams-{scenario.streams}-{arrival}-{scenario.jobs}-wc{scenario.web_concurrency}"
    with run_service(ctx.server, ctx.logdir, name=name, workers=0, **env) as service:
        assert service.web is not None
        pids = web_pids(service.web.pid)
        redis = Redis.from_url(service.redis_url)
        store = JobStore(redis, ttl_s=3600)
        jobs = [(new_job_id(), TENANTS[n % len(TENANTS)]) for n in range(scenario.jobs)]
        for job_id, tenant in jobs:
            await store.create(new_job(job_id, filename="bench.pdf", options={}, pages_total=PROGRESS_EVENTS),
                               tenant=tenant, meta={}, document=None)
        # Each feed waits for the end of its tenant's last job, which the benchmark publishes last.
        feed_jobs = {tenant: new_job_id() for tenant in TENANTS} if scenario.feeds else {}
        for tenant, job_id in feed_jobs.items():
            await store.create(new_job(job_id, filename="feed.pdf", options={}, pages_total=1), tenant=tenant,
                               meta={}, document=None)
        job_streams = scenario.streams - scenario.feeds
        orders = [{"key": jobs[n % len(jobs)][0], "path": f"/jobs/{jobs[n % len(jobs)][0]}/events",
                   "headers": {"Authorization": f"Bearer {KEYS[jobs[n % len(jobs)][1]]}"}} for n in range(job_streams)]
        orders += [{"key": f"feed:{TENANTS[n % len(TENANTS)]}", "path": "/events",
                    "headers": {"Authorization": f"Bearer {KEYS[TENANTS[n % len(TENANTS)]]}"},
                    "until": feed_jobs[TENANTS[n % len(TENANTS)]]} for n in range(scenario.feeds)]
        # A few streams first, so the process's one-off costs are not counted per stream.
        warm = start_clients(service.port, orders[:20], 0, 600)
        for client in warm:
            assert client.stdin is not None
            client.stdin.write("go\n")
            client.stdin.flush()
        for client in warm:
            await read_line(client)
        await asyncio.sleep(1)
        rss_before_kb = sum(rss_kb(pid) for pid in pids)
        conns_before = redis_connections(pids, ctx.server.port)
        reads_before = int((await redis.info("commandstats")).get("cmdstat_lrange", {}).get("calls", 0))

        clients = start_clients(service.port, orders, 0 if scenario.burst else 250, 600)
        sampler = PeakSampler(lambda: redis_connections(pids, ctx.server.port))
        sampler.start()
        for client in clients:
            assert client.stdin is not None
            client.stdin.write("go\n")
            client.stdin.flush()
        opened = await asyncio.gather(*(read_line(client) for client in clients))
        conns_peak = sampler.stop()
        statuses: dict[str, int] = {}
        for report in opened:
            for status, count in report["statuses"].items():
                statuses[status] = statuses.get(status, 0) + count
        open_s = max(report["open_s"] for report in opened)
        await asyncio.sleep(2)
        rss_idle_kb = sum(rss_kb(pid) for pid in pids)
        conns_idle = redis_connections(pids, ctx.server.port)
        reads = int((await redis.info("commandstats")).get("cmdstat_lrange", {}).get("calls", 0)) - reads_before

        # Publish: `running`, then progress events, then the end, every job in turn; the feeds' own jobs last.
        load_before = os.getloadavg()[0]
        cpu_before = cpu_s(pids)
        final_published: dict[str, float] = {}
        changes = [{"status": RUNNING}] + [{"pages_done": n + 1} for n in range(PROGRESS_EVENTS)]
        for change in changes:
            for job_id, tenant in jobs:
                await store.change(job_id, tenant, dict(change))
            await asyncio.sleep(0.2)
        for job_id, tenant in jobs:
            final_published[job_id] = time.time()
            await store.change(job_id, tenant, {"status": COMPLETED, "pages_done": PROGRESS_EVENTS})
        for tenant, job_id in feed_jobs.items():
            final_published[f"feed:{tenant}"] = time.time()
            await store.change(job_id, tenant, {"status": COMPLETED, "pages_done": 1})
        results = await asyncio.gather(*(read_line(client) for client in clients))
        web_cpu_s = cpu_s(pids) - cpu_before
        for client in [*warm, *clients]:
            client.kill()
            client.wait()

        # The truth: what Redis kept of each job's and each feed's events.
        truth: dict[str, list[int]] = {}
        for job_id, _ in jobs:
            truth[job_id] = [json.loads(raw)["seq"] for raw in await redis.lrange(keys.events(job_id), 0, -1)]
        for tenant in feed_jobs:
            truth[f"feed:{tenant}"] = [json.loads(raw)["seq"] for raw in await redis.lrange(keys.feed(tenant), 0, -1)]
        await redis.aclose()

    streams = [stream for result in results for stream in result["streams"]]
    complete = 0
    latencies: list[float] = []
    finals_by_key: dict[str, list[float]] = {}
    deliveries = 0
    for stream in streams:
        ids, key = stream["ids"], stream["key"]
        expected = [seq for seq in truth[key] if ids and seq > ids[0]]
        if ids and ids[1:] == expected:
            complete += 1
        deliveries += max(len(ids) - 1, 0)
        if stream["final"]:
            latencies.append((stream["final"] - final_published[key]) * 1000)
            finals_by_key.setdefault(key, []).append(stream["final"])
    spread_ms = max((max(v) - min(v)) * 1000 for v in finals_by_key.values()) if finals_by_key else float("nan")
    refused = sum(count for status, count in statuses.items() if status != "200")
    label = scenario.name
    section.add(f"{label}: clients that got every event, in order", complete, "clients",
                target=f"= {scenario.streams}", bound=scenario.streams, kind="min",
                note=f"answers: {statuses}; opened in {open_s:.1f} s; {refused} refused or unanswered; "
                     f"{reads} reads of job state (LRANGE) for {scenario.streams} openings")
    section.add(f"{label}: final event, publish -> client p50", percentile(latencies, 50), "ms")
    section.add(f"{label}: final event, publish -> client p99", percentile(latencies, 99), "ms",
                target="< 2000 ms", bound=2000)
    section.add(f"{label}: spread of the final event across one job's clients", spread_ms, "ms")
    section.add(f"{label}: web CPU per event delivered to one stream", web_cpu_s / max(deliveries, 1) * 1e6, "us",
                note=f"{web_cpu_s:.2f} CPU s for {deliveries} deliveries; load average {load_before:.2f} "
                     "when publishing began")
    section.add(f"{label}: web memory per idle stream", (rss_idle_kb - rss_before_kb) / scenario.streams, "KB",
                target="<= 10 KB", bound=10,
                note=f"RSS of {len(pids)} web process(es) {rss_before_kb / 1024:.0f} MB with 20 streams, "
                     f"{rss_idle_kb / 1024:.0f} MB with {scenario.streams} more")
    section.add(f"{label}: web's Redis connections", float(max(conns_idle, conns_peak)), "connections",
                target="does not grow with streams", bound=float(scenario.web_concurrency * 17),
                note=f"{conns_before} before the streams, peak {conns_peak} while they opened, {conns_idle} with "
                     f"all open (REDIS_MAX_CONNECTIONS 16 + 1 hub per process)")


async def run(ctx: Context) -> Section:
    section = Section(KEY, TITLE)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    for scenario in scenarios(ctx.quick):
        try:
            await run_scenario(ctx, scenario, section)
        except Exception as exc:
            logger.exception("scenario %s failed", scenario.name)
            section.notes.append(f"{scenario.name}: did not complete ({exc.__class__.__name__}: {exc}).")
    section.notes.append(
        f"One web process unless WEB_CONCURRENCY says otherwise, no worker; {CLIENT_PROCESSES} client processes "
        "on raw asyncio sockets on the same 2 cores as the web (their reading is part of every latency). Each "
        f"job publishes `running`, {PROGRESS_EVENTS} progress events 200 ms apart and `completed`; streams "
        "that are not a burst open 250 at a time per client process. Feeds are those of ten tenants. Load "
        f"average at the start: {load} (other engineers share the machine)."
    )
    return section
