"""The soak's figures and findings, in words."""

from __future__ import annotations

import os
from collections import Counter

from benchmarks.processes import (
    RedisServer,
)
from benchmarks.report import Section, percentile
from benchmarks.soak.checks import OUTLIVING, PROCESS_WIDE, fold
from benchmarks.soak.state import END_BOUND_S, MAX_PAGES, SCAN_DPI, Job, Plan, SoakState


def write_report(
    section: Section,
    soak: SoakState,
    plan: Plan,
    started_wall: float,
    traffic_end: float,
    last_submit: float,
    chaos: dict[str, float],
    hooks: Counter[str],
    base: tuple[int, int, dict[str, int]],
    after: tuple[int, int, dict[str, int]],
    peaks: dict[str, float],
    leftover: Counter[str],
    leftover_ttls: dict[str, int],
    outliving_bytes: int,
    settled_s: float,
    rss_start: dict[str, int],
    rss_warm: dict[str, int],
    rss_end_traffic: dict[str, int],
    rss_after: dict[str, int],
    outside_tb: list[str],
    inside_tb: list[str],
    log_5xx: list[str],
    tenants: list[str],
    server: RedisServer,
) -> None:
    jobs = list(soak.jobs.values())
    ended = [j for j in jobs if j.id in soak.ends]
    not_ended = [j for j in jobs if j.id not in soak.ends]
    by_state = Counter(soak.ends[j.id].status for j in ended)
    wall_s = traffic_end - started_wall
    pages = sum(soak.ends[j.id].pages_total for j in ended if soak.ends[j.id].status == "completed")
    latencies = [soak.ends[j.id].finished_wall - j.submitted_wall for j in ended]
    late = [s for s in latencies if s > END_BOUND_S]
    section.add("jobs submitted and accepted", len(jobs), "jobs", target=f">= {plan.jobs}", bound=plan.jobs, kind="min")
    section.add("jobs that did not end (vanished or stuck)", len(not_ended), "jobs", target="= 0", bound=0)
    section.add(
        f"jobs that ended later than {END_BOUND_S} s after submission", len(late), "jobs", target="= 0", bound=0
    )
    for state in ("completed", "failed", "cancelled"):
        section.add(f"jobs {state}", by_state.get(state, 0), "jobs")
    section.add("wall time, first submission to last end", wall_s, "s")
    section.add("jobs per second", len(ended) / wall_s if wall_s else float("nan"), "jobs/s")
    section.add("pages per second (completed jobs)", pages / wall_s if wall_s else float("nan"), "pages/s")
    section.add("submit to end, p50", percentile(latencies, 50), "s")
    section.add("submit to end, p99", percentile(latencies, 99), "s")
    section.add("submit to end, max", max(latencies, default=float("nan")), "s")
    own = soak.results["its own text"]
    wrong = soak.results["another document's text"] + soak.results["pages missing from its text"]
    section.add("completed jobs whose text was checked and is their own", own, "jobs")
    section.add("completed jobs with another's text or missing pages", wrong, "jobs", target="= 0", bound=0)
    asked = [j for j in jobs if j.webhook]
    asked_ended = [j for j in asked if j.id in soak.ends]
    missing = [j for j in asked_ended if hooks[j.id] == 0]
    duplicated = [j for j in asked_ended if hooks[j.id] > 1]
    unasked = [job_id for job_id in hooks if job_id in soak.jobs and not soak.jobs[job_id].webhook]
    section.add("jobs that asked for a webhook", len(asked), "jobs")
    section.add("webhook POSTs received", sum(hooks[j.id] for j in asked), "POSTs")
    section.add("jobs that asked and got none", len(missing), "jobs", target="= 0", bound=0)
    section.add("jobs that got more than one", len(duplicated), "jobs", target="= 0", bound=0)
    client_5xx = [
        e
        for e in soak.server_errors
        if not (e[2] == 503 and chaos.get("redis killed", 0) - 1 <= e[0] <= chaos.get("redis web ready", 0) + 2)
    ]
    hostile_total = sum(soak.hostile.values())
    hostile_not_4xx = {k: v for k, v in soak.hostile.items() if not 400 <= k[1] < 500}
    section.add("hostile submissions sent", hostile_total, "requests")
    section.add(
        "hostile submissions not answered 4xx", sum(hostile_not_4xx.values()), "requests", target="= 0", bound=0
    )
    section.add(
        "5xx answers seen by clients, Redis outage's 503s aside", len(client_5xx), "answers", target="= 0", bound=0
    )
    section.add(
        "5xx lines in the services' access logs, outage's 503s aside", len(log_5xx), "lines", target="= 0", bound=0
    )
    section.add(
        "tracebacks in the services' logs outside the Redis outage",
        len(outside_tb),
        "tracebacks",
        target="= 0",
        bound=0,
    )
    section.add(
        "tracebacks in the services' logs during the Redis outage (+10 s)",
        len(inside_tb),
        "tracebacks",
        target="= 0",
        bound=0,
    )
    section.add(
        "workers that exited by themselves (started again)", len(soak.worker_exits), "workers", target="= 0", bound=0
    )
    if "worker's processes alive 1 s after its SIGKILL" in chaos:
        section.add(
            "the killed worker's page processes still alive 1 s after its SIGKILL",
            chaos["worker's processes alive 1 s after its SIGKILL"],
            "processes",
            target="= 0",
            bound=0,
        )
    worker_flight, redis_flight = soak.in_flight_at_worker_kill, soak.in_flight_at_redis_kill

    def last_end_after(ids: list[str], at: float) -> float:
        ends = [soak.ends[i].finished_wall for i in ids if i in soak.ends]
        return max(ends, default=at) - at if len(ends) == len(ids) else float("nan")

    if "worker killed" in chaos:
        section.add(
            "worker kill: replacement worker's first heartbeat after",
            chaos.get("worker replaced after", float("nan")),
            "s",
            note="from the SIGKILL, with 1 s before the replacement was started",
        )
        section.add(
            "worker kill: the jobs open at the kill all ended within",
            last_end_after(worker_flight, chaos["worker killed"]),
            "s",
            target="<= LEASE_SECONDS (20) + 20",
            bound=40,
            note=f"{len(worker_flight)} jobs were open; NaN means some of them never ended",
        )
    if "redis killed" in chaos:
        section.add(
            "Redis crash: serving again (AOF loaded) after",
            chaos.get("redis serving after", float("nan")),
            "s",
            note="from the SIGKILL; it was started again 2 s after it",
        )
        section.add("Redis crash: web /readyz 200 again after", chaos.get("redis web ready after", float("nan")), "s")
        section.add(
            "Redis crash: the jobs open at the crash all ended within",
            last_end_after(redis_flight, chaos["redis killed"]),
            "s",
            note=f"{len(redis_flight)} jobs were open; NaN means some of them never ended",
        )
    base_memory, base_dataset, base_keys = base
    after_memory, after_dataset, after_keys = after
    section.add("Redis used_memory before the traffic", base_memory / 1e6, "MB")
    section.add("Redis used_memory at its peak", peaks.get("used_memory", float("nan")) / 1e6, "MB")
    section.add(
        "Redis used_memory after RESULT_TTL",
        after_memory / 1e6,
        "MB",
        baseline=base_memory / 1e6,
        baseline_label="before",
    )
    section.add("Redis keys before the traffic", len(base_keys), "keys")
    section.add("Redis keys at their peak", peaks.get("keys", float("nan")), "keys")
    section.add(
        "Redis keys after RESULT_TTL", len(after_keys), "keys", baseline=len(base_keys), baseline_label="before"
    )
    section.add(
        "keys left after RESULT_TTL that are neither baseline nor named below",
        sum(leftover.values()),
        "keys",
        target="= 0",
        bound=0,
    )
    for role in rss_start:
        warm = rss_warm.get(role, rss_start[role])
        section.add(
            f"RSS of the {role} after RESULT_TTL",
            # 0: the process is gone (a worker that exited by itself); no figure rather than a flattering one
            rss_after[role] / 1024 if rss_after[role] else float("nan"),
            "MB",
            baseline=warm / 1024,
            baseline_label="warm",
            target="<= warm x 1.25 + 20 MB",
            bound=(warm * 1.25 + 20_000) / 1024,
            note=f"{rss_start[role] / 1024:.0f} MB at start, {warm / 1024:.0f} MB warm (5% of the jobs in), "
            f"{rss_end_traffic[role] / 1024:.0f} MB at the traffic's end, {rss_after[role] / 1024:.0f} MB "
            f"after RESULT_TTL; peak {peaks.get('rss ' + role, 0) / 1024:.0f} MB (page processes included)",
        )

    # --- the notes: what ran, and every finding in words ---
    kinds = Counter(j.kind for j in jobs)
    per_tenant = Counter(j.tenant for j in jobs)
    end_by_kind = {k: Counter(soak.ends[j.id].status for j in ended if j.kind == k) for k in kinds}
    failed_codes = Counter(soak.ends[j.id].error_code for j in ended if soak.ends[j.id].status == "failed")
    cancelled = [j for j in jobs if j.cancel]
    cancel_outcomes = Counter(
        (j.cancel_answer, soak.ends[j.id].status if j.id in soak.ends else "not ended") for j in cancelled
    )
    notes = section.notes
    notes.append(
        f"{len(jobs):,} jobs over {len(tenants)} tenants ({', '.join(f'{t} {n:,}' for t, n in per_tenant.items())}), "
        f"in bursts, at most {plan.window} open at once; by kind: "
        + ", ".join(f"{k} {n:,} ({dict(end_by_kind[k])})" for k, n in kinds.most_common())
        + f". Multi-page: 2-30 text pages; scans: 360 x 90 pt at {SCAN_DPI} dpi "
        f"({sum(j.pages for j in jobs if j.ocr):,} OCRed pages); RESULT_TTL={plan.result_ttl_s}, "
        f"MAX_PAGES={MAX_PAGES}, "
        f"two workers with default OCR_CONCURRENCY, redis-server with appendonly yes, appendfsync everysec."
    )
    notes.append(
        f"Failed jobs by code: {dict(failed_codes) or 'none'}. Ends seen on the feeds vs. by polling vs. in "
        f"the POST's answer: {dict(Counter(e.source for e in soak.ends.values()))}; feed reconnects "
        f"{soak.feed_reconnects} (the Redis restart ends every stream), feed events read {soak.events_seen:,}."
    )
    notes.append(
        f"Cancelled at once after the 202 ({len(cancelled)}): (DELETE answer, end) "
        f"{ {f'{a} -> {s}': n for (a, s), n in cancel_outcomes.items()} }; deleted after their result was "
        f"checked: DELETE answers {dict(soak.delete_answers)}."
    )
    notes.append(f"Result checks: {dict(soak.results)}.")
    if soak.result_faults:
        notes.append("Results that were not their own (first 5): " + "; ".join(soak.result_faults[:5]))
    if not_ended:
        sample_ids = ", ".join(
            f"{j.kind} {j.id} ({'404' if j.id in soak.vanished else 'no end'})" for j in not_ended[:5]
        )
        notes.append(
            f"**Finding: {len(not_ended)} jobs never ended** ({len([j for j in not_ended if j.id in soak.vanished])} "
            f"answered 404 before any end, by kind {dict(Counter(j.kind for j in not_ended))}); e.g. {sample_ids}."
        )
    if soak.conflicting_ends:
        notes.append(
            f"**Finding: {len(soak.conflicting_ends)} jobs reported two different ends**: "
            + "; ".join(soak.conflicting_ends[:5])
        )
    if missing or duplicated:

        def describe(group: list[Job]) -> str:
            return str(
                dict(
                    Counter(
                        f"{j.kind}{' cancelled' if j.cancel else ''}{' deleted' if j.delete else ''}"
                        f" -> {soak.ends[j.id].status}"
                        for j in group
                    )
                )
            )

        notes.append(
            f"**Finding: webhooks.** Missing for {len(missing)} jobs: {describe(missing)}; more than one for "
            f"{len(duplicated)}: {describe(duplicated)} (max {max((hooks[j.id] for j in duplicated), default=0)})."
        )
    mismatched = [
        j for j in asked_ended if hooks[j.id] and soak.receiver.hook_statuses[j.id][-1] != soak.ends[j.id].status
    ]
    if mismatched or unasked:
        notes.append(
            f"Webhooks whose status differs from the job's end: {len(mismatched)}; webhooks for jobs that "
            f"did not ask: {len(unasked)}."
        )
    notes.append(
        "Hostile submissions by answer: "
        + ", ".join(f"{name} {status} x{n}" for (name, status), n in sorted(soak.hostile.items()))
    )
    if hostile_not_4xx:
        notes.append(f"**Finding: hostile submissions answered other than 4xx**: {hostile_not_4xx}")
    notes.append(
        f"Answers seen by clients: {dict(sorted(soak.answers.items()))}; submissions that failed for good: "
        f"{len(soak.submit_failures)}" + (f" (e.g. {soak.submit_failures[:3]})" if soak.submit_failures else "")
    )
    if client_5xx or log_5xx:
        notes.append(f"**Finding: 5xx answers** outside the outage: clients {client_5xx[:5]}; logs {log_5xx[:5]}")
    for label, found in (("outside the Redis outage", outside_tb), ("during the Redis outage", inside_tb)):
        if found:
            kinds_tb = Counter(entry.split(" ... ")[-1] for entry in found)
            notes.append(
                f"**Finding: {len(found)} tracebacks {label}**, by last line: {dict(kinds_tb.most_common(6))}; "
                f"first: {found[0][:300]}"
            )
    if soak.worker_exits:
        notes.append(
            f"**Finding: workers exited by themselves**: {'; '.join(soak.worker_exits)} (their last "
            "traceback is among those above)."
        )
    if chaos:
        notes.append(
            "Chaos: worker 0 SIGKILLed at {:.0f} s with {:.0f} jobs open, replaced 1 s later; redis-server "
            "SIGKILLed at "
            "{:.0f} s with {:.0f} jobs open, started again from its AOF after 2 s. With appendfsync everysec a crashed "
            "redis-server loses nothing it had acknowledged (it writes the AOF before it replies; only the fsync is "
            "deferred), but a crashed machine loses up to the last second of writes (two when an fsync is slow): jobs "
            "accepted, transitions and webhook deliveries of that second. appendfsync always closes that gap at a "
            "cost in throughput.".format(
                chaos.get("worker killed", started_wall) - started_wall,
                chaos.get("worker in flight", 0),
                chaos.get("redis killed", started_wall) - started_wall,
                chaos.get("redis in flight", 0),
            )
        )
    keys_before = Counter(fold(k, tenants) for k in base_keys)
    keys_after = Counter(fold(k, tenants) for k in after_keys)
    notes.append(
        f"Keys before the traffic: {dict(keys_before)}. After RESULT_TTL + the cron's period "
        f"({settled_s:.0f} s after the last end): {dict(keys_after)}."
    )
    notes.append(
        "Keys that outlive every job on purpose: "
        + "; ".join(f"`{k}`: {why}" for k, why in (OUTLIVING | PROCESS_WIDE).items())
        + f". Together they take {outliving_bytes / 1e3:.1f} KB (MEMORY USAGE); used_memory after minus before is "
        f"{(after_memory - base_memory) / 1e3:.0f} KB, used_memory_dataset {base_dataset / 1e3:.0f} KB before and "
        f"{after_dataset / 1e3:.0f} KB after (the restarted redis-server rebuilt its memory from the AOF)."
    )
    if leftover:
        notes.append(f"**Finding: keys that did not return to the baseline**: {dict(leftover)}, TTLs {leftover_ttls}.")
    notes.append(
        f"Last submission {last_submit - started_wall:.0f} s in; load average {os.getloadavg()[0]:.1f} after; "
        f"the soak's redis-server: {server.log}."
    )
