"""A small HTTP server on loopback that plays the outside world: a webhook receiver and a document host."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from tests.conftest import free_port


@dataclass
class Receiver:
    port: int
    hooks: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    documents: dict[str, bytes] = field(default_factory=dict)
    failures_left: int = 0
    # While set, requests wait (at most HOLD_LIMIT_S) before they are answered: a worker blocked in one
    # is at a known point. A request whose client is gone by then is dropped, not recorded.
    hold: bool = False
    arrived: list[str] = field(default_factory=list)  # paths of every request, as it arrives

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_for_hooks(self, count: int, timeout_s: float = 60) -> list[tuple[dict[str, str], bytes]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if len(self.hooks) >= count:
                return self.hooks
            time.sleep(0.05)
        raise AssertionError(f"{len(self.hooks)} webhook calls arrived, expected {count}")


HOLD_LIMIT_S = 60


async def _held(receiver: Receiver, request: Request) -> bool:
    """Note the request and wait while the receiver holds; True when its client is still there."""
    receiver.arrived.append(request.url.path)
    deadline = time.monotonic() + HOLD_LIMIT_S
    while receiver.hold and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return not await request.is_disconnected()


def _app(receiver: Receiver) -> Starlette:
    async def hook(request: Request) -> Response:
        body = await request.body()
        if not await _held(receiver, request):
            return Response(status_code=499)
        if receiver.failures_left > 0:
            receiver.failures_left -= 1
            return Response("try again", status_code=503)
        receiver.hooks.append((dict(request.headers), body))
        return Response(status_code=204)

    async def document(request: Request) -> Response:
        name = request.path_params["name"]
        if not await _held(receiver, request):
            return Response(status_code=499)
        if name not in receiver.documents:
            return Response(status_code=404)
        return Response(receiver.documents[name], media_type="application/octet-stream")

    async def redirect(request: Request) -> Response:
        return RedirectResponse(request.query_params["to"], status_code=302)

    return Starlette(
        routes=[
            Route("/hook", hook, methods=["POST"]),
            Route("/docs/{name}", document),
            Route("/redirect", redirect),
        ]
    )


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    receiver = Receiver(free_port())
    server = uvicorn.Server(uvicorn.Config(_app(receiver), host="127.0.0.1", port=receiver.port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield receiver
    finally:
        server.should_exit = True
        thread.join(timeout=10)
