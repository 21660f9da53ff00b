"""The outside world of the soak, on 127.0.0.1: a webhook receiver that counts POSTs per job, and a document
host for URL submissions.

A few dozen lines of HTTP/1.1 on asyncio's streams, in the benchmark's own event loop: one request per
connection (the service's webhook and download clients open one per call anyway), bodies by
Content-Length, every wait bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field

READ_TIMEOUT_S = 10
MAX_BODY_BYTES = 1 << 20


@dataclass
class Receiver:
    documents: dict[str, bytes] = field(default_factory=dict)
    # job id -> POSTs received for it, and the statuses they carried.
    hooks: Counter[str] = field(default_factory=Counter)
    hook_statuses: dict[str, list[str]] = field(default_factory=dict)
    last_hook_at: float = 0.0
    malformed_hooks: int = 0
    port: int = 0
    _server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), timeout=5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {
                    k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)
                }
                length = min(int(headers.get("content-length", "0") or 0), MAX_BODY_BYTES)
                body = await reader.readexactly(length) if length else b""
            status, payload = self._answer(method, path, body)
            writer.write(
                f"HTTP/1.1 {status} X\r\nContent-Length: {len(payload)}\r\nContent-Type: application/octet-stream\r\n"
                "Connection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        except (TimeoutError, ValueError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    def _answer(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        if method == "POST" and path == "/hook":
            try:
                job = json.loads(body)
                job_id, status = str(job["id"]), str(job["status"])
            except (ValueError, KeyError, TypeError):
                self.malformed_hooks += 1
                return 400, b""
            self.hooks[job_id] += 1
            self.hook_statuses.setdefault(job_id, []).append(status)
            self.last_hook_at = time.monotonic()
            return 204, b""
        if method == "GET" and path.startswith("/docs/"):
            document = self.documents.get(path.removeprefix("/docs/"))
            return (200, document) if document is not None else (404, b"")
        return 404, b""
