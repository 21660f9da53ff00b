"""The Server-Sent Events wire format and response (sse-starlette does the framing, pings and
disconnect detection; what the events say is service/api/streams.py's)."""

from __future__ import annotations

import json
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.responses import Response


def sse(event_id: int, name: str, payload: dict[str, Any], retry_ms: int | None = None) -> ServerSentEvent:
    # One line of JSON per event: `data:` lines cannot hold raw newlines.
    return ServerSentEvent(
        data=json.dumps(payload, separators=(",", ":")), event=name, id=str(event_id), retry=retry_ms, sep="\n"
    )


def comment(text: str, retry_ms: int | None = None) -> ServerSentEvent:
    return ServerSentEvent(comment=text, retry=retry_ms, sep="\n")


def event_response(content: Any, *, ping_s: float) -> Response:
    return EventSourceResponse(
        content,
        ping=ping_s,
        ping_message_factory=lambda: comment("ping"),
        sep="\n",
        # Tell proxies (nginx and peers) not to buffer the stream; SSE is useless if held back.
        headers={"X-Accel-Buffering": "no", "Cache-Control": "no-store"},
    )
