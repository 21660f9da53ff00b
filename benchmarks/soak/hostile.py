"""Hostile submissions: the requests the soak mixes into the bursts, each of which must be answered 4xx."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import httpx

from benchmarks.documents import encrypted_pdf, marker_text_pdf
from benchmarks.soak.state import MAX_PAGES, SUBMIT_RETRY_S, SoakState

ANOTHER_TENANTS_JOB = "GET /jobs/<another tenant's job>"


def hostile_cases(receiver_url: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(name, which web, the request): each must be answered 4xx."""
    pdf = {"Content-Type": "application/pdf"}
    valid = marker_text_pdf(["Soak hostile 0 page 1"])
    post = {"method": "POST", "url": "/jobs"}
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("empty body", "main", post | {"content": b"", "headers": pdf}),
        ("random bytes", "main", post | {"content": random.Random(1).randbytes(4096), "headers": pdf}),
        ("truncated PDF", "main", post | {"content": valid[: len(valid) // 3], "headers": pdf}),
        ("encrypted PDF", "main", post | {"content": encrypted_pdf(), "headers": pdf}),
        (
            "too many pages",
            "main",
            post | {"content": marker_text_pdf([f"p {n}" for n in range(MAX_PAGES + 1)]), "headers": pdf},
        ),
        ("multipart without its file", "main", post | {"data": {"lang": "eng"}, "files": {"x": ("a", b"")}}),
        (
            "deeply nested JSON",
            "main",
            post
            | {
                "content": b'{"url":' + b"[" * 5000 + b"]" * 5000 + b"}",
                "headers": {"Content-Type": "application/json"},
            },
        ),
        ("no API key", "main", post | {"content": valid, "headers": pdf, "auth": {}}),
        (
            "non-UTF-8 API key",
            "main",
            post | {"content": valid, "headers": pdf, "auth": {"Authorization": b"Bearer \xff\xfe\xe9"}},
        ),
        (
            "non-ASCII API key",
            "main",
            post | {"content": valid, "headers": pdf, "auth": {"Authorization": "Bearer \u00e9t\u00e9".encode()}},
        ),
        (ANOTHER_TENANTS_JOB, "main", {"method": "GET", "url": "/jobs/x"}),
        ("GET /jobs?limit=nan", "main", {"method": "GET", "url": "/jobs", "params": {"limit": "nan"}}),
        (
            "Idempotency-Key of 300 characters",
            "main",
            post | {"content": valid, "headers": pdf | {"Idempotency-Key": "k" * 300}},
        ),
    ]
    bad_params = {
        "dpi=abc": {"dpi": "abc"},
        "dpi=5000": {"dpi": "5000"},
        "dpi in Arabic-Indic digits": {"dpi": "\u0663\u0660\u0660"},
        "dpi in superscripts": {"dpi": "\u00b3\u2070\u2070"},
        "dpi of 5000 digits": {"dpi": "9" * 5000},
        "wait=nan": {"wait": "nan"},
        "wait=inf": {"wait": "inf"},
        "webhook_url=ftp://": {"webhook_url": "ftp://x/y"},
        "webhook_url port 99999": {"webhook_url": "http://127.0.0.1:99999/hook"},
        "webhook_url broken IPv6": {"webhook_url": "http://[::1/hook"},
    }
    cases += [
        (name, "main", post | {"content": valid, "headers": pdf, "params": params})
        for name, params in bad_params.items()
    ]
    # Internal addresses, to the web that does not allow them. Literals and names that stay on this machine
    # only: nothing would leave loopback even if one were accepted.
    internal = [
        "http://127.0.0.1:9/x.pdf",
        "http://localhost:9/x.pdf",
        "http://[::1]:9/x.pdf",
        "http://[::ffff:127.0.0.1]:9/x.pdf",
        "http://0.0.0.0:9/x.pdf",
        "http://2130706433:9/x.pdf",
        f"{receiver_url}/docs/1.pdf",
    ]
    cases += [(f"document URL {url.split('/')[2]}", "guarded", post | {"json": {"url": url}}) for url in internal]
    cases.append(
        (
            "webhook_url to loopback",
            "guarded",
            post | {"content": valid, "headers": pdf, "params": {"webhook_url": f"{receiver_url}/hook"}},
        )
    )
    return cases


class Hostile(SoakState):
    """Hostile submissions mixed into the bursts: each must be answered 4xx."""

    async def hostile_one(self, client: httpx.AsyncClient, guarded: httpx.AsyncClient, tenant: str) -> None:
        name, target, case = self.rng.choice(self.hostile_cases)
        request = dict(case)
        if name == ANOTHER_TENANTS_JOB:
            other = next((j for j in reversed(self.jobs.values()) if j.tenant != tenant), None)
            if other is None:
                return
            request["url"] = f"/jobs/{other.id}"
        http = guarded if target == "guarded" else client
        auth = request.pop("auth", None)
        request["headers"] = (self.auth(tenant) if auth is None else auth) | request.get("headers", {})
        deadline = time.monotonic() + SUBMIT_RETRY_S
        while True:
            response, error = None, ""
            for _ in range(2):  # once more if a kept-alive connection was closed under the request
                try:
                    response = await http.request(**request)
                    break
                except httpx.HTTPError as exc:
                    error = exc.__class__.__name__
            if response is None:
                self.hostile[(f"{name}: no answer, {error}", 0)] += 1
                return
            self.note_answer(request["method"], name, response.status_code)
            # A 503 while Redis is away is the contract's answer: asked again, as a submission is.
            if response.status_code != 503 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        self.hostile[(name, response.status_code)] += 1
