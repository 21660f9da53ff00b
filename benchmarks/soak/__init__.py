"""10. Soak: 20,000 jobs over four tenants, a worker SIGKILLed, Redis crashed; nothing lost, nothing left.

The service runs as it would be deployed: two workers and a web process on a redis-server of the soak's
own with its append-only file on (`appendfsync everysec`), four tenants (`API_KEYS`), `RESULT_TTL=30`.
A second web process on the same Redis keeps `ALLOW_PRIVATE_NETWORKS` off: the first needs it on to
reach the loopback receiver (webhooks, URL submissions), the second is where submissions naming internal
addresses go, and must refuse them. All traffic stays on 127.0.0.1.

Each tenant submits in bursts (many requests at once, then a pause), concurrently with the others, until
its share of the jobs is in; the open jobs (submitted, not ended) are held under a window so that the
queue stays inside what two cores drain. The mix: mostly one-page text-layer PDFs, some multi-page ones
(split into ranges), a few small scans that Tesseract really reads, URL submissions, synchronous
`?wait=` submissions and repeats that hit the content cache; hostile submissions are mixed into the
bursts and must get a 4xx. Some jobs ask for a webhook, some are cancelled as soon as they are accepted,
some deleted once their result has been checked. Each page carries a marker of its own
(`Soak <tenant> <n> page <p>`), and every completed job's text is checked against it.

A third of the way in, a worker is SIGKILLed and a new one started; two thirds in, redis-server is
SIGKILLed and started again from its AOF two seconds later. Ends are seen on each tenant's `/events`
feed, and a sweep polls jobs that the feed has not ended, so a missed event is not a lost job.

After the last end, the soak waits `RESULT_TTL` plus the cleanup cron's period and compares Redis with
the baseline taken before the traffic: the key names (job ids folded), the key count, `used_memory`.

The modules: `state` (the plan and what the soak records), `load` (the tenants' bursts), `hostile` (the
submissions that must get a 4xx), `checks` (ends, results, Redis and the logs), `faults` (the worker's
SIGKILL, Redis's crash) and `report` (the figures and findings); this one runs them together.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter

import httpx
from redis.asyncio import Redis

from benchmarks.common import Context
from benchmarks.processes import (
    READY_TIMEOUT_S,
    RedisServer,
    Service,
    free_port,
    redis_server,
    run_service,
    spawn,
    stop,
    tree_rss_kb,
)
from benchmarks.receiver import Receiver
from benchmarks.report import Section
from benchmarks.soak.checks import OUTLIVING, PROCESS_WIDE, Checks, fold, log_faults, redis_figures, sample
from benchmarks.soak.faults import inject_faults, wait_http, watch_workers
from benchmarks.soak.hostile import hostile_cases
from benchmarks.soak.report import write_report
from benchmarks.soak.state import (
    CLEANUP_PERIOD_S,
    END_BOUND_S,
    MAX_PAGES,
    MAX_UPLOAD_MB,
    TENANTS,
    Plan,
    tenant_quotas,
)

KEY = "10"
TITLE = "Soak: 20,000 jobs over four tenants, a worker killed, Redis crashed"


class Soak(Checks):
    """The whole soak: its state, load, hostile submissions and checks."""


async def run(ctx: Context) -> Section:
    plan = Plan.of(ctx.quick)
    keys = {tenant: f"soak-key-{tenant}" for tenant in TENANTS}
    env = {
        "API_KEYS": ",".join(f"{t}:{k}" for t, k in keys.items()),
        "SECRET_KEY": "soak-secret-of-the-benchmark",
        "WEBHOOK_SECRET": "soak-webhook-secret",
        "RESULT_TTL": str(plan.result_ttl_s),
        "ALLOW_PRIVATE_NETWORKS": "true",
        "MAX_PAGES": str(MAX_PAGES),
        "MAX_UPLOAD_MB": str(MAX_UPLOAD_MB),
        "MAX_ACTIVE_JOBS": "100000",
        "OMP_THREAD_LIMIT": "1",
    }
    receiver = Receiver()
    await receiver.start()
    try:
        with (
            redis_server(ctx.logdir, name="soak-redis", appendfsync="everysec") as server,
            run_service(server, ctx.logdir, name="soak", workers=2, **env) as service,
        ):
            return await _soak(ctx, plan, server, service, receiver, keys)
    finally:
        await receiver.stop()


async def _soak(
    ctx: Context, plan: Plan, server: RedisServer, service: Service, receiver: Receiver, keys: dict[str, str]
) -> Section:
    section = Section(KEY, TITLE)
    tenants = list(TENANTS)
    guarded_port = free_port()
    guarded = spawn(
        [sys.executable, "-m", "service.web"],
        log=ctx.logdir / "soak-guarded-web.log",
        env=service.env | {"PORT": str(guarded_port), "ALLOW_PRIVATE_NETWORKS": "false"},
    )
    redis = Redis.from_url(service.redis_url, socket_timeout=5, socket_connect_timeout=2)
    try:
        if await wait_http(f"http://127.0.0.1:{guarded_port}", "/healthz", READY_TIMEOUT_S) is None:
            raise RuntimeError("the guarded web process did not start")
        soak = Soak(plan, service, f"http://127.0.0.1:{guarded_port}", receiver, keys, hostile_cases(receiver.url))
        await asyncio.sleep(3)  # the cleanup cron's run at start-up, and the first heartbeats
        base_memory, base_dataset, base_keys = await redis_figures(redis)
        pids = {
            "web": [service.web.pid] if service.web else [],
            "guarded web": [guarded.pid],
            "worker 1 (never killed)": [service.workers[1].pid],
        }
        rss_start = {role: tree_rss_kb(p) for role, p in pids.items()}
        peaks: dict[str, float] = {}
        started_wall, started = time.time(), time.monotonic()
        deadline = started + plan.traffic_bound_s
        chaos: dict[str, float] = {}
        rss_warm: dict[str, int] = {}
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with (
            httpx.AsyncClient(base_url=service.url, timeout=60, limits=limits) as client,
            httpx.AsyncClient(base_url=soak.guarded_url, timeout=60) as guarded_client,
        ):
            feeds = [asyncio.create_task(soak.follow_feed(t)) for t in tenants]
            background = [
                asyncio.create_task(soak.sweep(client)),
                asyncio.create_task(sample(soak, redis, pids, peaks)),
                asyncio.create_task(watch_workers(soak, service)),
            ]
            background += [asyncio.create_task(soak.check_results(client)) for _ in range(32)]
            chaos_task = asyncio.create_task(inject_faults(soak, server, service, chaos, rss_warm, pids, deadline))
            quotas = tenant_quotas(plan.jobs)
            await asyncio.gather(
                *(soak.tenant_traffic(client, guarded_client, t, quotas[t], deadline) for t in tenants)
            )
            last_submit = time.time()
            await chaos_task
            # Every job ends within END_BOUND_S of its submission, or it is reported as not ended.
            drain_deadline = time.monotonic() + END_BOUND_S
            while time.monotonic() < drain_deadline and soak.open:
                await asyncio.sleep(0.5)
            while time.monotonic() < drain_deadline and not soak.checks.empty():
                await asyncio.sleep(0.5)
            traffic_end = max([e.finished_wall for e in soak.ends.values()] or [time.time()])
            # Webhooks: until every job that asked has one and none came for 5 s, at most 90 s.
            asked = [j for j in soak.jobs.values() if j.webhook]
            hook_deadline = time.monotonic() + 90
            while time.monotonic() < hook_deadline:
                quiet = time.monotonic() - receiver.last_hook_at > 5
                if quiet and all(receiver.hooks[j.id] for j in asked if j.id in soak.ends):
                    break
                await asyncio.sleep(0.5)
            soak.stopping.set()
            for feed in feeds:  # a stream waits for its next event, or ping, at any moment
                feed.cancel()
            await asyncio.gather(*feeds, *background, return_exceptions=True)
            rss_end_traffic = {role: tree_rss_kb(p) for role, p in pids.items()}
        # Everything a job wrote expires RESULT_TTL after its end; the cron prunes the indexes every 30 s.
        settle_started = time.monotonic()
        last_activity = max(time.time(), traffic_end)
        await asyncio.sleep(max(0.0, last_activity + plan.result_ttl_s + CLEANUP_PERIOD_S + 5 - time.time()))
        allowed = set(fold(k, tenants) for k in base_keys) | set(OUTLIVING) | set(PROCESS_WIDE)
        for _ in range(30):
            after_memory, after_dataset, after_keys = await redis_figures(redis)
            if all(fold(k, tenants) in allowed for k in after_keys):
                break
            await asyncio.sleep(2)
        settled_s = time.monotonic() - settle_started
        leftover = Counter(fold(k, tenants) for k in after_keys if fold(k, tenants) not in allowed)
        leftover_ttls = {}
        for key in list(after_keys)[:2000]:
            if fold(key, tenants) in leftover and fold(key, tenants) not in leftover_ttls:
                leftover_ttls[fold(key, tenants)] = int(await redis.ttl(key))
        outliving_bytes = 0
        for key in after_keys:
            if fold(key, tenants) in OUTLIVING or fold(key, tenants) in PROCESS_WIDE:
                outliving_bytes += int(await redis.memory_usage(key) or 0)
        rss_after = {role: tree_rss_kb(p) for role, p in pids.items()}
        final_hooks = Counter(receiver.hooks)
    finally:
        await redis.aclose()
        stop(guarded)

    logs = sorted(ctx.logdir.glob("soak-*.log"))
    outage = (chaos.get("redis killed", 0.0), chaos.get("redis web ready", chaos.get("redis killed", 0.0) + 60))
    outside_tb, inside_tb, log_5xx = log_faults([p for p in logs if "redis" not in p.name], outage)
    write_report(
        section,
        soak,
        plan,
        started_wall,
        traffic_end,
        last_submit,
        chaos,
        final_hooks,
        (base_memory, base_dataset, base_keys),
        (after_memory, after_dataset, after_keys),
        peaks,
        leftover,
        leftover_ttls,
        outliving_bytes,
        settled_s,
        rss_start,
        rss_warm,
        rss_end_traffic,
        rss_after,
        outside_tb,
        inside_tb,
        log_5xx,
        tenants,
        server,
    )
    return section
