"""5. SSE fan-out: thousands of concurrent streams on one job, one web process.

A job is submitted while no worker runs, so it waits `queued`; N clients (raw asyncio sockets, this
process's descriptor limit raised; the web raises its own) open its stream and get its first event. Then:
the web's resident memory and its Redis connections are read with N idle streams open and compared with
none open; a worker is started, the job runs, and every client must receive every event the worker
published (the benchmark listens on Redis's channel too, for the truth), ending with `completed`. The
spread is the time between the first and the last client receiving the final event.
"""

from __future__ import annotations

import asyncio
import threading
import time

import psutil

from benchmarks import sse
from benchmarks.bench_event_latency import ChannelRecorder
from benchmarks.common import Context, http_client, submit
from benchmarks.documents import text_pdf
from benchmarks.processes import rss_kb, run_service
from benchmarks.report import Section, percentile
from settings import Settings

KEY = "5"
TITLE = "SSE fan-out: concurrent streams on one job"
OPENING_AT_ONCE = 100


def web_redis_connections(web_pid: int, redis_port: int) -> int:
    try:
        return sum(1 for c in psutil.Process(web_pid).net_connections(kind="tcp")
                   if c.raddr and c.raddr.port == redis_port)
    except psutil.Error:
        return -1


class Sampler(threading.Thread):
    """The peak of a reading, sampled every 100 ms."""

    def __init__(self, read: object) -> None:
        super().__init__(daemon=True)
        self.read = read
        self.peak = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.1):
            self.peak = max(self.peak, self.read())  # type: ignore[operator]

    def stop(self) -> int:
        self.stopping.set()
        self.join(timeout=5)
        return self.peak


async def run(ctx: Context) -> Section:
    section = Section(KEY, TITLE)
    clients = 300 if ctx.quick else 2000
    # One tenant holds every stream here: lift its per-process cap (MAX_STREAMS_PER_TENANT, 1,000).
    with run_service(ctx.server, ctx.logdir, name="sse-fanout", workers=0, MAX_STREAMS_PER_TENANT="100000") as service:
        assert service.web is not None
        web_pid, redis_port = service.web.pid, ctx.server.port
        recorder = ChannelRecorder(service.redis_url)
        recorder.start()
        streams: list[sse.Stream] = []
        try:
            async with http_client(service.url) as client:
                job = await submit(client, text_pdf(4, seed=500_000, lines_per_page=10))
            # A few streams first, so the process's one-off costs are not counted as per-stream memory.
            warm = [await sse.open_stream("127.0.0.1", service.port, job["links"]["events"]) for _ in range(20)]
            for stream in warm:
                await stream.next_event()
            await asyncio.sleep(1)
            rss_before_kb = rss_kb(web_pid)
            conns_before = web_redis_connections(web_pid, redis_port)
            redis_clients_before = ctx.server.connected_clients()

            gate = asyncio.Semaphore(OPENING_AT_ONCE)

            async def open_one() -> sse.Stream:
                async with gate:
                    stream = await sse.open_stream("127.0.0.1", service.port, job["links"]["events"], timeout_s=60)
                    if stream.status != 200:
                        raise RuntimeError(f"stream answered {stream.status}")
                    await stream.next_event()  # the job's current state
                    return stream

            # Half the clients connect one after another (steady arrivals), then half in a burst of
            # OPENING_AT_ONCE concurrent connects (a reconnect storm after a deploy or a Redis blip).
            steady = clients // 2
            opening_started = time.perf_counter()
            for _ in range(steady):
                streams.append(await open_one())
            opening_s = time.perf_counter() - opening_started
            await asyncio.sleep(1)
            rss_steady_kb = rss_kb(web_pid)
            conns_steady = web_redis_connections(web_pid, redis_port)
            streams += await asyncio.gather(*(open_one() for _ in range(clients - steady)))
            await asyncio.sleep(2)
            rss_idle_kb = rss_kb(web_pid)
            conns_idle = web_redis_connections(web_pid, redis_port)
            redis_clients_idle = ctx.server.connected_clients()

            readers = [asyncio.create_task(s.read_until_terminal()) for s in streams]
            sampler = Sampler(lambda: web_redis_connections(web_pid, redis_port))
            sampler.start()
            web_cpu_before = _cpu_s(web_pid)
            client_cpu_before = time.process_time()
            service.start_worker()
            try:
                async with asyncio.timeout(120):
                    await asyncio.gather(*readers)
            finally:
                conns_peak = sampler.stop()
            web_cpu_s = _cpu_s(web_pid) - web_cpu_before
            client_cpu_s = time.process_time() - client_cpu_before
            await asyncio.sleep(0.5)
        finally:
            for stream in [*streams, *locals().get("warm", [])]:
                stream.close()
            recorder.stop()

    published = sorted(seq for (job_id, seq) in recorder.by_job_seq if job_id == job["id"])
    first_seq = streams[0].events[0].id or 0
    expected = [seq for seq in published if seq > first_seq]
    complete = sum(1 for s in streams if [e.id for e in s.events[1:]] == expected
                   and s.events[-1].data.get("status") == "completed")
    finals = [s.events[-1].received_perf for s in streams if s.events]
    final_published = recorder.by_job_seq.get((job["id"], published[-1])) if published else None
    spread_s = max(finals) - min(finals)
    per_stream_kb = (rss_idle_kb - rss_before_kb) / clients
    section.add("clients that got every event, in order", complete, "clients", target=f"= {clients}",
                bound=clients, kind="min")
    section.add("spread of the final event, first to last client", spread_s * 1000, "ms", target="< 1000 ms",
                bound=1000)
    if final_published is not None:
        delays = [(f - final_published) * 1000 for f in finals]
        section.add("final event, publish -> last client", max(delays), "ms")
        section.add("final event, publish -> client, p50", percentile(delays, 50), "ms")
    deliveries = clients * max(len(expected), 1)
    pool_cap = Settings.redis_max_connections  # the web under test runs with the default
    section.add("web CPU per event delivered to one stream", web_cpu_s / deliveries * 1e6, "us",
                note=f"the web used {web_cpu_s:.2f} CPU s to deliver {len(expected)} events to {clients} streams; "
                     f"this client process used {client_cpu_s:.2f} CPU s reading them")
    # The web's pool opens a second connection when two of its users meet: a stream's backlog read and the
    # process's stream-count report (service/ops/stream_counts.py, at most once a second while the count
    # changes). That is one connection, whatever N: the bound allows it, and the next row shows that the
    # count stays put from N to 2N (section 12: at 10,000 too).
    section.add(f"web's Redis connections with {steady} streams opened one after another", float(conns_steady),
                "connections", baseline=float(conns_before), baseline_label="20 streams",
                target="does not grow with N", bound=float(conns_before + 1),
                note=f"{conns_before} with the 20 warm-up streams open (pool + the hub's one subscription), "
                     f"{conns_steady} with {steady} streams opened one at a time; the pool's second connection, if "
                     "any, is the stream-count report meeting a stream's read")
    section.add(f"web's Redis connections after {clients - steady} more opened {OPENING_AT_ONCE} at a time",
                float(max(conns_idle, conns_peak)), "connections",
                target=f"<= REDIS_MAX_CONNECTIONS + 1 = {pool_cap + 1}, however many open at once",
                bound=float(pool_cap + 1),
                note=f"{conns_idle} once the burst had connected, peak {conns_peak} while the events went out; "
                     f"Redis's connected_clients (all processes) {redis_clients_before} -> {redis_clients_idle}. "
                     "Each stream reads its backlog with one pipeline on the web's shared pool: a burst of opens "
                     f"takes up to REDIS_MAX_CONNECTIONS ({pool_cap}) pooled connections, and waits for one beyond "
                     "that, besides the hub's one subscription.")
    section.add("web memory per idle stream", per_stream_kb, "KB",
                note=f"web RSS {rss_before_kb / 1024:.1f} MB with 20 streams, {rss_steady_kb / 1024:.1f} MB with "
                     f"{steady} more, {rss_idle_kb / 1024:.1f} MB with {clients} more")
    section.add(f"time to open {steady} streams one at a time", opening_s, "s")
    section.notes.append(
        f"{clients} streams on one job (plus 20 warm-up ones), one web process, one client process on raw asyncio "
        f"sockets; the job is a 4-page text PDF whose run publishes {len(expected)} events after the first "
        f"(running, progress per page, completed). The spread includes this client process reading "
        f"{clients} sockets on one event loop."
    )
    return section


def _cpu_s(pid: int) -> float:
    try:
        times = psutil.Process(pid).cpu_times()
        return times.user + times.system
    except psutil.Error:
        return 0.0
