"""What operators look at: metrics, readiness, logs."""

from __future__ import annotations

import asyncio
import json
import time

import httpx

from tests.conftest import RedisServer, Service, run_service
from tests.e2e.test_api import read_stream, submit
from tests.unit.ocr_samples import scan, scanned_pdf, text_pdf


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics")


async def test_metrics_cover_jobs_pages_durations_queue_and_streams(client: httpx.AsyncClient) -> None:
    before = (await client.get("/metrics")).text
    job = (await submit(client, scanned_pdf([scan(["Metrics count this page"])]))).json()
    await read_stream(client, job["links"]["events"])
    text_job = (await submit(client, text_pdf(lines=["Metrics count text layers too"]))).json()
    await read_stream(client, text_job["links"]["events"])
    response = await client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    after = response.text
    assert metric(after, 'ocr_jobs_total{status="completed"}') >= metric(before, 'ocr_jobs_total{status="completed"}') + 2
    assert metric(after, 'ocr_pages_total{source="ocr"}') >= 1
    assert metric(after, 'ocr_pages_total{source="text-layer"}') >= 1
    assert metric(after, "ocr_page_seconds_count") >= 2 and metric(after, "ocr_page_seconds_sum") > 0
    assert metric(after, "ocr_job_duration_seconds_count") >= 2
    assert metric(after, 'ocr_job_duration_seconds_bucket{le="+Inf"}') == metric(after, "ocr_job_duration_seconds_count")
    assert metric(after, "ocr_workers_alive") == 1
    assert metric(after, "ocr_sse_clients") == 0
    assert 'ocr_webhook_deliveries_total{outcome="delivered"}' in after


async def first_stats(client: httpx.AsyncClient) -> dict:
    """The first figures `/ops/events` sends."""
    async with client.stream("GET", "/ops/events") as stream:
        async for line in stream.aiter_lines():
            if line.startswith("data:"):
                return json.loads(line[5:])
    raise AssertionError("the dashboard stream ended without figures")


async def test_queue_figures_count_waiting_units_and_their_age(redis_server: RedisServer) -> None:
    with run_service(redis_server, workers=0) as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            jobs = [(await submit(client, text_pdf(lines=[f"Waiting {n}"]))).json() for n in range(2)]
            await asyncio.sleep(1.2)  # what is measured here is time passing
            waiting = (await client.get("/metrics")).text
            assert metric(waiting, "ocr_queue_depth") == 2
            # Per tenant: its pages waiting, and how long the oldest has waited.
            assert metric(waiting, 'ocr_tenant_pages_waiting{priority="normal",tenant="public"}') == 2
            assert 1.0 <= metric(waiting, 'ocr_tenant_oldest_wait_seconds{priority="normal",tenant="public"}') < 30
            assert 1.0 <= metric(waiting, "ocr_queue_oldest_age_seconds") < 30
            assert metric(waiting, "ocr_workers_alive") == 0
            stats = await first_stats(client)
            assert stats["queue_depth"] == 2 and stats["workers_alive"] == 0 and stats["oldest_queued_s"] >= 1.0
            [tenant] = stats["tenants_waiting"]
            assert tenant["tenant"] == "public" and tenant["pages"] == 2 and tenant["oldest_wait_s"] >= 1.0
            service.start_worker()
            for job in jobs:
                await read_stream(client, job["links"]["events"])
            # arq takes a unit out of its queue just after the unit's function returned, which is after
            # the job published its end: wait for that bookkeeping.
            deadline = time.monotonic() + 10
            while metric(drained := (await client.get("/metrics")).text, "ocr_queue_depth") and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert metric(drained, "ocr_queue_depth") == 0 and metric(drained, "ocr_queue_oldest_age_seconds") == 0
            assert metric(drained, "ocr_workers_alive") == 1
            assert "ocr_tenant_pages_waiting{" not in drained, "a tenant with nothing waiting is not reported"


async def test_readyz_needs_a_worker_heartbeat(redis_server: RedisServer) -> None:
    with run_service(redis_server, workers=0) as service:
        response = httpx.get(service.url + "/readyz")
        assert response.status_code == 503
        assert "heartbeat" in response.json()["reason"]
        service.start_worker()
        service.wait_ready()


async def test_json_logs_have_one_line_per_state_change_without_document_text(redis_server: RedisServer) -> None:
    secret_text = "Confidential salary figures for everyone"
    with run_service(redis_server, LOG_FORMAT="json") as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            job = (await submit(client, text_pdf(lines=[secret_text]))).json()
            await read_stream(client, job["links"]["events"])
        # The worker logs the completion just after publishing it: give the line a moment to land.
        for _ in range(50):
            logs = service.logs()
            if f"job {job['id']} tenant=public completed" in logs:
                break
            await asyncio.sleep(0.1)
    entries = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert entries and all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    about_job = [
        e["message"] for e in entries
        if job["id"] in e["message"] and e["logger"].startswith("service.") and e["logger"] != "service.access"
    ]
    assert any("queued" in m for m in about_job) and any("completed" in m for m in about_job)
    assert all("tenant=public" in m for m in about_job if "queued" in m or "completed" in m)
    requests = [e["message"] for e in entries if e["logger"] == "service.access"]
    assert any(m.startswith("POST /jobs 202 ") and m.endswith("ms") for m in requests)
    assert secret_text not in logs and "Confidential" not in logs


async def test_the_worker_metrics_reach_the_web_through_redis(client: httpx.AsyncClient) -> None:
    before = (await client.get("/metrics")).text
    job = (await submit(client, text_pdf(lines=["A page the worker counts"], pages=3))).json()
    await read_stream(client, job["links"]["events"])
    after = (await client.get("/metrics")).text
    assert "# TYPE ocr_page_seconds histogram" in after
    # The worker counted the pages into Redis; the web, another process, reports them.
    assert metric(after, "ocr_page_seconds_count") == metric(before, "ocr_page_seconds_count") + 3
    assert metric(after, 'ocr_pages_total{source="text-layer"}') == metric(before, 'ocr_pages_total{source="text-layer"}') + 3


async def test_the_dashboard_streams_live_figures(client: httpx.AsyncClient) -> None:
    page = await client.get("/dashboard")
    assert page.status_code == 200 and "dashboard.js" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    stats = await first_stats(client)
    assert stats["workers_alive"] == 1
    assert {"completed", "failed"} <= set(stats["jobs"]) and "completed_per_minute" in stats


async def test_page_assets_are_revalidated_after_a_deploy(client: httpx.AsyncClient) -> None:
    for asset in ("/static/app.js", "/static/style.css", "/static/dashboard.js"):
        response = await client.get(asset)
        assert response.status_code == 200 and response.headers["cache-control"] == "no-cache", asset
