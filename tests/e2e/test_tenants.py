"""Tenants, keys and safe edges: API keys, isolation, stream tokens, quotas, webhooks, URL ingestion."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import pickle
import time
from collections.abc import Iterator

import httpx
import pytest
from redis.asyncio import Redis

from tests.conftest import RedisServer, Service, run_service
from tests.e2e.receiver import running_receiver
from tests.e2e.test_api import read_stream, submit, wait_for_status
from tests.unit.ocr_samples import LINES, scan, scanned_pdf, text_pdf

KEYS = {"acme": "key-acme-123456", "globex": "key-globex-654321"}
SECRET = "test-secret-key-0123456789abcdef"
WEBHOOK_SECRET = "webhook-secret-for-tests"


def bearer(tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[tenant]}"}


@pytest.fixture(scope="module")
def keyed_service(redis_server: RedisServer) -> Iterator[Service]:
    with run_service(
        redis_server,
        API_KEYS=",".join(f"{t}:{k}" for t, k in KEYS.items()),
        SECRET_KEY=SECRET,
        WEBHOOK_SECRET=WEBHOOK_SECRET,
        MAX_ACTIVE_JOBS="3",
    ) as service:
        yield service


async def test_every_api_endpoint_needs_a_key(keyed_service: Service) -> None:
    async with httpx.AsyncClient(base_url=keyed_service.url) as client:
        for method, path in [
            ("GET", "/jobs"), ("POST", "/jobs"), ("GET", "/jobs/" + "a" * 32), ("DELETE", "/jobs/" + "a" * 32),
            ("GET", "/jobs/" + "a" * 32 + "/result"), ("GET", "/jobs/" + "a" * 32 + "/events"), ("GET", "/events"),
            ("GET", "/cache/stats"), ("DELETE", "/cache"), ("GET", "/events/link"),
        ]:
            response = await client.request(method, path)
            assert response.status_code == 401, (method, path)
            assert response.json()["error"]["code"] == "unauthorized"
            wrong = await client.request(method, path, headers={"Authorization": "Bearer not-a-key-at-all"})
            assert wrong.status_code == 401
        for path in ("/", "/healthz", "/readyz", "/metrics"):
            assert (await client.get(path)).status_code == 200, path


async def test_the_start_up_log_says_open_mode(live_service: Service) -> None:
    assert "open mode" in (live_service.logdir / "web.log").read_text()


async def test_keys_never_reach_the_logs(keyed_service: Service) -> None:
    async with httpx.AsyncClient(base_url=keyed_service.url) as client:
        await client.get("/jobs", headers=bearer("acme"))
    logs = keyed_service.logs()
    assert all(key not in logs for key in KEYS.values()) and SECRET not in logs


async def test_tenants_see_only_their_own_jobs(keyed_service: Service) -> None:
    async with httpx.AsyncClient(base_url=keyed_service.url, timeout=30) as client:
        client.headers.update(bearer("acme"))
        job = (await submit(client, text_pdf(lines=["Acme confidential report text"]))).json()
        await read_stream(client, job["links"]["events"])
        other = bearer("globex")
        for method, path in [
            ("GET", f"/jobs/{job['id']}"), ("GET", f"/jobs/{job['id']}/result"),
            ("GET", f"/jobs/{job['id']}/events"), ("DELETE", f"/jobs/{job['id']}"),
        ]:
            response = await client.request(method, path, headers=other)
            unknown = await client.request(method, path.replace(job["id"], "b" * 32), headers=other)
            assert response.status_code == unknown.status_code == 404, (method, path)
            assert response.json() == {"error": {"code": "not_found", "message": f"No job with id {job['id']!r}."}}
        listed = (await client.get("/jobs", headers=other)).json()["jobs"]
        assert job["id"] not in [j["id"] for j in listed]
        assert job["id"] in [j["id"] for j in (await client.get("/jobs")).json()["jobs"]]


async def test_the_cache_is_per_tenant(keyed_service: Service) -> None:
    document = text_pdf(lines=["A document both tenants happen to send"])
    async with httpx.AsyncClient(base_url=keyed_service.url, timeout=30) as client:
        client.headers.update(bearer("acme"))
        first = (await submit(client, document)).json()
        await read_stream(client, first["links"]["events"])
        assert (await submit(client, document)).status_code == 200
        client.headers.update(bearer("globex"))
        response = await submit(client, document)
        assert response.status_code == 202 and response.json()["cached"] is False
        await read_stream(client, response.json()["links"]["events"])


async def test_stream_tokens(keyed_service: Service) -> None:
    async with httpx.AsyncClient(base_url=keyed_service.url, timeout=30) as client:
        client.headers.update(bearer("acme"))
        job = (await submit(client, text_pdf(lines=["Tokens let EventSource in"]))).json()
        other = (await submit(client, text_pdf(lines=["Another job of the same tenant"]))).json()
        events_link = job["links"]["events"]
        assert "token=" in events_link and KEYS["acme"] not in events_link
    async with httpx.AsyncClient(base_url=keyed_service.url, timeout=30) as anonymous:
        # The token alone is enough: EventSource cannot send headers.
        events = await read_stream(anonymous, events_link)
        assert events[-1][2]["status"] == "completed"
        base = events_link.split("?")[0]
        token = events_link.split("token=")[1]
        expires, tenant, mac = token.split(".")
        refused = [
            f"{base}?token={KEYS['acme']}",  # a raw API key in a URL
            f"{base}?token={expires}.{tenant}.{mac[:-2]}AA",  # tampered
            f"{base}?token={int(expires) + 60}.{tenant}.{mac}",  # a longer life it was not signed for
            f"/jobs/{other['id']}/events?token={token}",  # another job's token
            f"/events?token={token}",  # a job token on the feed
        ]
        for url in refused:
            response = await anonymous.get(url)
            assert response.status_code == 401, url
            assert response.json()["error"]["code"] == "unauthorized"
        feed_link = (await anonymous.get("/events/link", headers=bearer("acme"))).json()["links"]["events"]
        async with anonymous.stream("GET", feed_link) as feed:
            assert feed.status_code == 200
        async with anonymous.stream("GET", f"/jobs/{job['id']}/events?token={feed_link.split('token=')[1]}") as wrong:
            assert wrong.status_code == 401


async def test_the_feed_shows_only_the_tenants_jobs(keyed_service: Service) -> None:
    async with httpx.AsyncClient(base_url=keyed_service.url, timeout=30) as client:
        seen: list[tuple[str, dict]] = []

        async def watch() -> None:
            async with client.stream("GET", "/events", headers=bearer("globex")) as feed:
                name = None
                async for line in feed.aiter_lines():
                    if line.startswith("event:"):
                        name = line.split(":", 1)[1].strip()
                    elif line.startswith("data:") and name is not None:
                        seen.append((name, json.loads(line[5:])))

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0.5)
        acme_job = (await client.post("/jobs", files={"file": ("a.pdf", text_pdf(lines=["Only acme sees"]))},
                                      headers=bearer("acme"))).json()
        globex_job = (await client.post("/jobs", files={"file": ("g.pdf", text_pdf(lines=["Globex sees this"]))},
                                        headers=bearer("globex"))).json()
        for job, tenant in ((globex_job, "globex"), (acme_job, "acme")):
            await read_stream(client, job["links"]["events"], headers=bearer(tenant))
        await asyncio.sleep(0.5)
        watcher.cancel()
        ids = {data.get("id") for name, data in seen if name != "snapshot"}
        assert globex_job["id"] in ids and acme_job["id"] not in ids
        snapshot_ids = {j["id"] for name, data in seen if name == "snapshot" for j in data["jobs"]}
        assert acme_job["id"] not in snapshot_ids


async def test_too_many_active_jobs_is_429(redis_server: RedisServer) -> None:
    with run_service(redis_server, workers=0, MAX_ACTIVE_JOBS="2") as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            for n in range(2):
                assert (await submit(client, text_pdf(lines=[f"Quota job {n} here"]))).status_code == 202
            response = await submit(client, text_pdf(lines=["One too many jobs"]))
            assert response.status_code == 429
            assert response.json()["error"]["code"] == "too_many_jobs"
            assert int(response.headers["retry-after"]) > 0


async def test_webhook_is_signed_and_retried(redis_server: RedisServer) -> None:
    with running_receiver() as receiver, run_service(redis_server, WEBHOOK_SECRET=WEBHOOK_SECRET) as service:
        receiver.failures_left = 1
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            job = (await submit(client, text_pdf(lines=["Tell me when it is done"]),
                                webhook_url=f"{receiver.url}/hook")).json()
            await read_stream(client, job["links"]["events"])
            (headers, body), = await asyncio.to_thread(receiver.wait_for_hooks, 1)
            expected = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
            assert headers["x-signature-256"] == f"sha256={expected}"
            delivered = json.loads(body)
            assert delivered["id"] == job["id"] and delivered["status"] == "completed"
            final = (await client.get(f"/jobs/{job['id']}")).json()
            assert final["webhook"]["status"] == "delivered" and final["webhook"]["attempts"] == 2


async def test_webhook_failures_are_visible_on_the_job(redis_server: RedisServer) -> None:
    with run_service(redis_server) as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            # Nothing listens on port 9 of loopback: the delivery fails and is retried.
            job = (await submit(client, text_pdf(lines=["Nobody is listening"]),
                                webhook_url="http://127.0.0.1:9/hook")).json()
            await read_stream(client, job["links"]["events"])
            deadline = time.monotonic() + 20
            webhook = None
            while time.monotonic() < deadline and webhook is None:
                webhook = (await client.get(f"/jobs/{job['id']}")).json().get("webhook")
                await asyncio.sleep(0.2)
            assert webhook is not None and webhook["status"] == "retrying" and webhook["error"]


async def test_internal_webhook_and_document_urls_are_refused(redis_server: RedisServer) -> None:
    with run_service(redis_server, workers=0, ALLOW_PRIVATE_NETWORKS="false") as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            for url in ("http://169.254.169.254/latest", "http://127.0.0.1:8080/x", "http://[::1]/x",
                        "http://10.0.0.7/x", "http://localhost/x"):
                response = await submit(client, text_pdf(), webhook_url=url)
                assert response.status_code == 400, url
                assert response.json()["error"]["code"] == "forbidden_address"
                response = await client.post("/jobs", json={"url": url})
                assert response.status_code == 400, url


async def test_documents_by_url_are_downloaded_by_the_worker(live_service: Service) -> None:
    with running_receiver() as receiver:
        receiver.documents["scan.pdf"] = scanned_pdf([scan(LINES[:2])])
        async with httpx.AsyncClient(base_url=live_service.url, timeout=30) as client:
            response = await client.post("/jobs", json={"url": f"{receiver.url}/docs/scan.pdf", "dpi": 200})
            assert response.status_code == 202, response.text
            job = response.json()
            assert job["filename"] == "scan.pdf" and job["options"]["dpi"] == 200
            final = await wait_for_status(client, job, {"completed", "failed"})
            assert final["status"] == "completed", final
            text = (await client.get(f"/jobs/{job['id']}/result", params={"format": "text"})).text
            assert "quick brown fox" in text
            # Redirects are followed, each one checked again.
            via = f"{receiver.url}/redirect?to=/docs/scan.pdf"
            job = (await client.post("/jobs", json={"url": via, "dpi": 150})).json()
            assert (await wait_for_status(client, job, {"completed", "failed"}))["status"] == "completed"
            # Not a document, or not there: a failed job with a code, never a crash.
            receiver.documents["notes.txt"] = b"plain text"
            job = (await client.post("/jobs", json={"url": f"{receiver.url}/docs/notes.txt"})).json()
            failed = await wait_for_status(client, job, {"completed", "failed"})
            assert failed["error"]["code"] == "unsupported_media_type"
            job = (await client.post("/jobs", json={"url": f"{receiver.url}/docs/missing.pdf"})).json()
            failed = await wait_for_status(client, job, {"completed", "failed"})
            assert failed["error"]["code"] == "download_failed"


# arq logs the payload it cannot decode with the decoder's traceback: that refusal is the point.
@pytest.mark.logs_traceback("deserializing job forged failed")
async def test_a_forged_pickle_job_is_not_executed(live_service: Service, tmp_path) -> None:
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (os.system, (f"touch {marker}",))

    payload = pickle.dumps({"t": 1, "f": "ocr_pages", "a": [Exploit()], "k": {}, "et": int(time.time() * 1000)})
    redis = Redis.from_url(live_service.redis_url)
    try:
        await redis.set("arq:job:forged", payload, ex=60)
        await redis.zadd("arq:queue", {"forged": int(time.time() * 1000)})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and await redis.zscore("arq:queue", "forged") is not None:
            await asyncio.sleep(0.1)
        assert await redis.zscore("arq:queue", "forged") is None, "the worker took the job off the queue"
    finally:
        await redis.aclose()
    assert not marker.exists()
    async with httpx.AsyncClient(base_url=live_service.url, timeout=30) as client:
        job = (await submit(client, text_pdf(lines=["Still serving after a forged job"]))).json()
        assert (await wait_for_status(client, job, {"completed", "failed"}))["status"] == "completed"


async def test_response_headers(live_service: Service) -> None:
    async with httpx.AsyncClient(base_url=live_service.url, timeout=30) as client:
        page = await client.get("/")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-content-type-options"] == "nosniff"
        job = (await submit(client, text_pdf(lines=["Headers are set on results"]))).json()
        await read_stream(client, job["links"]["events"])
        result = await client.get(f"/jobs/{job['id']}/result")
        assert result.headers["cache-control"] == "no-store"
        assert result.headers["x-content-type-options"] == "nosniff"
        preflight = await client.options("/jobs", headers={"Origin": "https://elsewhere.example",
                                                           "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in preflight.headers


async def test_cors_can_be_enabled_for_chosen_origins(redis_server: RedisServer) -> None:
    with run_service(redis_server, workers=0, CORS_ORIGINS="https://app.example") as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            allowed = await client.get("/healthz", headers={"Origin": "https://app.example"})
            assert allowed.headers["access-control-allow-origin"] == "https://app.example"
            other = await client.get("/healthz", headers={"Origin": "https://evil.example"})
            assert "access-control-allow-origin" not in other.headers
            # A stream is carried on below the app's middleware once open (service/api/sse.py): it keeps
            # the headers every response gets, and its access-log line is written when it ends.
            async with client.stream("GET", "/events", headers={"Origin": "https://app.example"}) as stream:
                assert stream.status_code == 200
                assert stream.headers["access-control-allow-origin"] == "https://app.example"
                assert stream.headers["x-content-type-options"] == "nosniff"
                assert (await anext(stream.aiter_lines())).startswith("id: ")  # the head: the snapshot
                assert "GET /events 200" not in service.logs()
            deadline = time.monotonic() + 10
            while "GET /events 200" not in service.logs():
                assert time.monotonic() < deadline, service.logs()
                await asyncio.sleep(0.05)
