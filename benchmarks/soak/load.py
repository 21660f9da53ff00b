"""Load generation: the tenants' bursts of submissions of every kind, retried through the Redis outage."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

import httpx

from benchmarks.documents import marker_scan, marker_scanned_pdf, marker_text_pdf, png_bytes
from benchmarks.soak.hostile import Hostile
from benchmarks.soak.state import (
    CANCEL_SHARE,
    DELETE_SHARE,
    KINDS,
    SCAN_DPI,
    SUBMIT_RETRY_S,
    TENANTS,
    TERMINAL,
    WEBHOOK_SHARE,
    Job,
)


class Load(Hostile):
    """Load generation: each tenant's bursts of submissions, and the requests they make."""

    async def post(self, client: httpx.AsyncClient, tenant: str, **request: Any) -> httpx.Response | None:
        """POST /jobs, retried with the same Idempotency-Key while Redis is away (503) for SUBMIT_RETRY_S."""
        headers = self.auth(tenant) | {"Idempotency-Key": f"soak-{tenant}-{self.rng.getrandbits(64):016x}"}
        headers |= request.pop("headers", {})
        deadline = time.monotonic() + SUBMIT_RETRY_S
        response: httpx.Response | None = None
        for _ in range(200):
            try:
                response = await client.post("/jobs", headers=headers, **request)
            except httpx.HTTPError as exc:
                self.submit_failures.append(f"{exc.__class__.__name__}: {exc}")
                response = None
            if response is not None:
                self.note_answer("POST", "/jobs", response.status_code)
                if response.status_code not in (503, 429):
                    return response
            if time.monotonic() > deadline:
                return response
            await asyncio.sleep(0.5)
        return None

    async def submit_one(self, client: httpx.AsyncClient, tenant: str) -> None:
        rng = self.rng
        roll, kind = rng.random(), "tiny"
        for name, weight in KINDS.items():
            if roll < weight:
                kind = name
                break
            roll -= weight
        number = self.new_number()
        webhook = rng.random() < WEBHOOK_SHARE
        params: dict[str, str] = {}
        if webhook:
            params["webhook_url"] = f"{self.receiver.url}/hook"
        pages, ocr = 1, False
        request: dict[str, Any]
        recent = self.recent_tiny.setdefault(tenant, deque(maxlen=50))
        if kind == "cached" and recent:
            document, number = rng.choice(list(recent))
            request = {"content": document, "headers": {"Content-Type": "application/pdf"}, "params": params}
        elif kind == "multi":
            pages = rng.randint(2, 30)
            document = marker_text_pdf([f"Soak {tenant} {number} page {p}" for p in range(1, pages + 1)])
            request = {"files": {"file": (f"{number}.pdf", document, "application/pdf")}, "data": params}
        elif kind == "scan":
            ocr = True
            document = png_bytes(marker_scan(f"Soak {tenant} {number} page 1", dpi=SCAN_DPI))
            request = {"content": document, "headers": {"Content-Type": "image/png"}, "params": params}
        elif kind == "scan-pdf":
            ocr, pages = True, rng.randint(2, 3)
            document = marker_scanned_pdf(
                [f"Soak {tenant} {number} page {p}" for p in range(1, pages + 1)], dpi=SCAN_DPI
            )
            request = {
                "content": document,
                "headers": {"Content-Type": "application/pdf"},
                "params": params | {"dpi": str(SCAN_DPI)},
            }
        elif kind == "url":
            self.receiver.documents[f"{number}.pdf"] = marker_text_pdf([f"Soak {tenant} {number} page 1"])
            request = {"json": {"url": f"{self.receiver.url}/docs/{number}.pdf", **params}}
        else:
            kind = "sync" if kind == "sync" else "tiny"
            document = marker_text_pdf([f"Soak {tenant} {number} page 1"])
            if kind == "sync":
                params = params | {"wait": "10"}
            else:
                recent.append((document, number))
            request = {"content": document, "headers": {"Content-Type": "application/pdf"}, "params": params}
        submitted_wall = time.time()
        response = await self.post(client, tenant, **request)
        self.submitted += 1
        if response is None or response.status_code not in (200, 202):
            status = "no answer" if response is None else f"{response.status_code} {response.text[:200]}"
            self.submit_failures.append(f"{kind} job of {tenant}: {status}")
            return
        body = response.json()
        job = Job(
            body["id"],
            tenant,
            kind,
            number,
            pages,
            ocr,
            submitted_wall,
            webhook,
            expected={(tenant, number, p) for p in range(1, pages + 1)},
        )
        self.jobs[job.id] = job
        if "result" in body:  # ?wait= answered with the result inline
            self.record_end(body, "inline")
            self.check_text(job, body["result"].get("text", ""))
            job.checked = True
        elif body.get("status") in TERMINAL:  # a cache hit
            self.record_end(body, "inline")
        if job.id in self.ends:  # ended in the answer, or on the feed before the answer came
            job.delete = rng.random() < DELETE_SHARE
            if job.delete or not job.checked:
                self.checks.put_nowait(job.id)
            return
        self.open.add(job.id)
        if rng.random() < CANCEL_SHARE:
            job.cancel = True
            answer = await self.request_retrying(client, "DELETE", f"/jobs/{job.id}", tenant)
            job.cancel_answer = answer.status_code if answer is not None else None
            if job.cancel_answer == 204:  # it had ended already: the DELETE deleted it
                self.deleted.add(job.id)
        else:
            job.delete = rng.random() < DELETE_SHARE

    async def request(
        self, client: httpx.AsyncClient, method: str, path: str, tenant: str, **kwargs: Any
    ) -> httpx.Response | None:
        try:
            response = await client.request(method, path, headers=self.auth(tenant), **kwargs)
        except httpx.HTTPError:
            return None
        self.note_answer(method, path, response.status_code)
        return response

    async def request_retrying(
        self, client: httpx.AsyncClient, method: str, path: str, tenant: str, **kwargs: Any
    ) -> httpx.Response | None:
        """The request, again every 0.5 s while Redis is away (503 or no answer), for SUBMIT_RETRY_S at most."""
        deadline = time.monotonic() + SUBMIT_RETRY_S
        while True:
            response = await self.request(client, method, path, tenant, **kwargs)
            if (response is not None and response.status_code != 503) or time.monotonic() > deadline:
                return response
            await asyncio.sleep(0.5)

    async def tenant_traffic(
        self, client: httpx.AsyncClient, guarded: httpx.AsyncClient, tenant: str, quota: int, deadline: float
    ) -> None:
        _, (burst_low, burst_high), (pause_low, pause_high), hostile_share = TENANTS[tenant]
        done = 0
        while done < quota and time.monotonic() < deadline:
            waited_until = time.monotonic() + 60
            while self.open_jobs() >= self.plan.window and time.monotonic() < min(waited_until, deadline):
                await asyncio.sleep(0.1)
            burst = min(self.rng.randint(burst_low, burst_high), quota - done)
            tasks = []
            for _ in range(burst):
                if self.rng.random() < hostile_share:
                    tasks.append(self.hostile_one(client, guarded, tenant))
                tasks.append(self.submit_one(client, tenant))
            await asyncio.gather(*tasks)
            done += burst
            await asyncio.sleep(self.rng.uniform(pause_low, pause_high))
