"""The Server-Sent Events wire format, and the response that carries a stream.

A stream is a plain ASGI response rather than sse-starlette's: one web process holds ten thousand of
them, and sse-starlette gives each a task group of three tasks and a queue (about 50 KB a stream,
measured). Here a stream is the request's own task awaiting its source with the ping interval as the
timeout, and no other task: the client leaving is noticed from a callback (`_DisconnectWatch`), and a
write gets a timer only when it has to wait for its client (`EventStream._send`). It keeps what
sse-starlette gave: pings, `retry:`, disconnect detection and a send timeout for clients that stop
reading.

A stream is opened by the whole app (auth, errors as JSON, CORS and security headers on its first
message), then carried on below it: it hands itself to the app's edge (`HANDOFF`, service/api/app.py),
Starlette's middleware and router return, and the edge runs the stream with the server's own `send`.
Ten thousand idle streams then hold no middleware or router frames (about 5 KB a stream, measured),
and each event written passes through no wrapper.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import types
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator
from typing import Any, Protocol, TypeVar, cast

from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

# The scope key under which the app's edge (service/api/app.py) offers to carry an opened stream on
# below Starlette's middleware and router: a list the stream puts itself in.
HANDOFF = "ocr.stream_handoff"

T = TypeVar("T")

HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"connection", b"keep-alive"),
    # Tell proxies (nginx and peers) not to buffer the stream; SSE is useless if held back.
    (b"x-accel-buffering", b"no"),
]


def encode(
    event_id: int | None = None,
    name: str | None = None,
    data: str | None = None,
    retry_ms: int | None = None,
    comment: str | None = None,
) -> bytes:
    lines = []
    if comment is not None:
        lines.append(f": {comment}")
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if name is not None:
        lines.append(f"event: {name}")
    if data is not None:
        lines.append(f"data: {data}")
    if retry_ms is not None:
        lines.append(f"retry: {retry_ms}")
    return ("\n".join(lines) + "\n\n").encode()


def sse(event_id: int, name: str, payload: Any, retry_ms: int | None = None) -> bytes:
    # One line of JSON per event: `data:` lines cannot hold raw newlines.
    return encode(event_id, name, json.dumps(payload, separators=(",", ":")), retry_ms)


def comment(text: str, retry_ms: int | None = None) -> bytes:
    return encode(retry_ms=retry_ms, comment=text)


PING = comment("ping")


def jittered(retry_ms: int) -> int:
    """The `retry:` one stream sends: SSE_RETRY_MS plus up to half again, so that the clients of a
    stream that ended together (a deploy, a Redis blip) do not come back together."""
    return retry_ms + random.randrange(retry_ms // 2 + 1)


class Source(Protocol):
    """What a stream sends, as it becomes ready."""

    def wait(self, timeout_s: float) -> Awaitable[bool]:
        """Until there is something to send or the source has ended (True), or `timeout_s` (False)."""

    def take(self) -> tuple[bytes, bool]:
        """What to send now, and whether the stream ends after it."""

    def end(self) -> None:
        """The client has gone: stop waiting."""


class EventStream(Response):
    """`head` at once, then what `source` gives, with a ping whenever it is quiet for `ping_s`. It ends
    when the source says so, when the client goes, or when one send waits past `send_timeout_s` (a
    client that holds the connection but reads nothing: it is ended rather than buffered for, and
    reconnects with Last-Event-ID, losing nothing). `on_close` runs however it ends."""

    def __init__(
        self,
        head: bytes,
        source: Source | None,
        *,
        ping_s: float,
        send_timeout_s: float,
        on_close: Callable[[], None],
    ) -> None:
        self.head = head
        self.source = source
        self.ping_s = ping_s
        self.send_timeout_s = send_timeout_s
        self.on_close = on_close
        self.status_code = 200
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._send(send, {"type": "http.response.start", "status": 200, "headers": HEADERS})
            if self.head:
                message: Message = {"type": "http.response.body", "body": self.head, "more_body": True}
                self.head = b""  # not kept for the stream's life (nor is `message`, once sent)
                await self._send(send, message)
                del message
        except BaseException as exc:
            self.release()
            if not isinstance(exc, TimeoutError):
                raise
            logger.info("ended a stream whose client stopped reading (%s)", scope.get("path"))
            return
        handoff = scope.get(HANDOFF)
        if handoff is not None and self.source is not None:
            # Opened: the app's middleware and router return, and the edge goes on with `stream`.
            handoff.append(self)
            return
        await self.stream(scope, receive, send)

    async def stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The stream's life once its head is sent, until it ends; `send` is the server's own."""
        watch: _DisconnectWatch | None = None
        try:
            if self.source is not None:
                watch = _DisconnectWatch(receive, self.source)
                await self._pump(send, self.source)
            if watch is None or not watch.gone:
                await self._send(send, {"type": "http.response.body", "body": b"", "more_body": False})
        except TimeoutError:
            logger.info("ended a stream whose client stopped reading (%s)", scope.get("path"))
        finally:
            if watch is not None:
                watch.close()
            self.release()

    def release(self) -> None:
        """Give back what the stream holds (its source, its slot); harmless if done already."""
        if self.source is not None:
            self.source.end()
        self.on_close()

    async def _pump(self, send: Send, source: Source) -> None:
        while True:
            if not await source.wait(self.ping_s):
                await self._send(send, {"type": "http.response.body", "body": PING, "more_body": True})
                continue
            body, last = source.take()
            if body:
                await self._send(send, {"type": "http.response.body", "body": body, "more_body": True})
            if last:
                return

    async def _send(self, send: Send, message: Message) -> None:
        # Run the send up to where it would wait: nearly always it does not (the bytes go into the
        # socket), and a timer per write for each of ten thousand streams was most of the web's CPU.
        # Only a send that waits for the client to read (the server's buffer is full) gets the timeout.
        steps = send(message).__await__()
        try:
            waiting_on = steps.send(None)
        except StopIteration:
            return
        async with asyncio.timeout(self.send_timeout_s):
            await _go_on(steps, waiting_on)


@types.coroutine
def _go_on(steps: Generator[Any, Any, T], waiting_on: Any) -> Generator[Any, Any, T]:
    """Await an awaitable already run up to its first wait (`steps`, its `__await__()`; `waiting_on`,
    what it yielded to the loop), just as if awaited from its start: what the task sends or throws
    goes in to it."""
    while True:
        try:
            value = yield waiting_on
        except BaseException as exc:  # noqa: BLE001 - a cancellation (the timeout) goes on in to it
            try:
                waiting_on = steps.throw(exc)
            except StopIteration as done:
                return cast(T, done.value)
        else:
            try:
                waiting_on = steps.send(value)
            except StopIteration as done:
                return cast(T, done.value)


class _DisconnectWatch:
    """Ends `source` once the client has gone (`receive` says `http.disconnect`).

    Without a task of its own per stream: `receive` is run up to where it waits (the future the server
    resolves when the client sends or leaves), and run on from that future's callback. A task and
    its coroutine cost about 1 KB a stream; this costs the object and the waiting `receive`.
    """

    __slots__ = ("_receiving", "gone", "receive", "source", "task")

    def __init__(self, receive: Receive, source: Source) -> None:
        self.receive = receive
        self.source = source
        self.gone = False
        self._receiving: Generator[Any, Any, Message] | None = None
        self.task: asyncio.Task[None] | None = None  # for a server whose `receive` waits on no future
        self._step()

    def _step(self, _: object = None) -> None:
        while not self.gone:
            if self._receiving is None:
                self._receiving = self.receive().__await__()
            try:
                waiting_on = self._receiving.send(None)
            except StopIteration as received:
                self._receiving = None
                if received.value["type"] == "http.disconnect":
                    self.leave()
                continue
            except BaseException:  # noqa: BLE001 - `receive` failed: there is no client to serve
                self._receiving = None
                self.leave()
                return
            if isinstance(waiting_on, asyncio.Future):
                waiting_on.add_done_callback(self._step)
            else:
                self.task = asyncio.ensure_future(_go_on_until_disconnect(self, self._receiving, waiting_on))
                self._receiving = None
            return

    def leave(self) -> None:
        self.gone = True
        self.source.end()

    def close(self) -> None:
        receiving, self._receiving = self._receiving, None
        if receiving is not None:
            receiving.close()  # the server's wait removes its future
        if self.task is not None:
            self.task.cancel()


async def _go_on_until_disconnect(
    watch: _DisconnectWatch, receiving: Generator[Any, Any, Message], waiting_on: Any
) -> None:
    message = await _go_on(receiving, waiting_on)
    while message["type"] != "http.disconnect":
        message = await watch.receive()
    watch.leave()


class IteratorSource:
    """A Source over an async iterator of events (the dashboard's few streams, paced by themselves)."""

    def __init__(self, events: AsyncIterator[bytes]) -> None:
        self.events = events
        self.pending: asyncio.Future[bytes] | None = None
        self.closing: asyncio.Future[None] | None = None
        self.ended = False

    async def wait(self, timeout_s: float) -> bool:
        if self.ended:
            return True
        if self.pending is None:
            self.pending = asyncio.ensure_future(anext(self.events))
        done, _ = await asyncio.wait([self.pending], timeout=timeout_s)
        return bool(done) or self.ended

    def take(self) -> tuple[bytes, bool]:
        pending, self.pending = self.pending, None
        if self.ended or pending is None or not pending.done():
            return b"", True
        if pending.cancelled() or isinstance(pending.exception(), StopAsyncIteration):
            return b"", True
        return pending.result(), False

    def end(self) -> None:
        if self.ended:
            return
        self.ended = True
        if self.pending is not None:
            self.pending.cancel()  # the iterator's `finally` runs as the cancellation reaches it
        elif isinstance(self.events, AsyncGenerator):
            self.closing = asyncio.ensure_future(self.events.aclose())
