"""The Server-Sent Events wire format and response (sse-starlette does the framing, pings and
disconnect detection; what the events say is service/api/streams.py's)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent
from sse_starlette.sse import SendTimeoutError
from starlette.types import Receive, Scope, Send

logger = logging.getLogger(__name__)


def sse(event_id: int, name: str, payload: dict[str, Any], retry_ms: int | None = None) -> ServerSentEvent:
    # One line of JSON per event: `data:` lines cannot hold raw newlines.
    return ServerSentEvent(
        data=json.dumps(payload, separators=(",", ":")), event=name, id=str(event_id), retry=retry_ms, sep="\n"
    )


def comment(text: str, retry_ms: int | None = None) -> ServerSentEvent:
    return ServerSentEvent(comment=text, retry=retry_ms, sep="\n")


class EventStream(EventSourceResponse):
    """A stream that ends when its client stops reading (a send waits past `send_timeout`) and that
    runs `on_close` however it ends, even when its content never started."""

    def __init__(self, content: Any, *, on_close: Callable[[], None], **options: Any) -> None:
        super().__init__(content, **options)
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except SendTimeoutError:
            # The client holds the connection but reads nothing: end it rather than buffer for it. A
            # client that is merely slow reconnects with Last-Event-ID and loses nothing.
            logger.info("ended a stream whose client stopped reading (%s)", scope.get("path"))
        finally:
            self.on_close()


def event_response(content: Any, *, ping_s: float, send_timeout_s: float, on_close: Callable[[], None]) -> EventStream:
    return EventStream(
        content,
        on_close=on_close,
        ping=ping_s,
        ping_message_factory=lambda: comment("ping"),
        send_timeout=send_timeout_s,
        sep="\n",
        # Tell proxies (nginx and peers) not to buffer the stream; SSE is useless if held back.
        headers={"X-Accel-Buffering": "no", "Cache-Control": "no-store"},
    )
