"""A minimal Server-Sent Events client on raw asyncio sockets.

Cheap enough to hold thousands of streams in one process, and it stamps every event with the moment its
last byte arrived (`time.perf_counter()` and `time.time()`), which is what the latency figures need.
HTTP/1.1 with chunked transfer encoding, as uvicorn sends streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Event:
    id: int | None
    name: str
    data: dict[str, Any]
    received_perf: float
    received_wall: float


@dataclass
class Stream:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    status: int
    events: list[Event] = field(default_factory=list)
    _buffer: bytes = b""
    _chunked: bool = True
    _pending: list[Event] = field(default_factory=list)

    async def next_event(self) -> Event | None:
        """The next event (comments skipped), or None when the server closed the stream."""
        while not self._pending:
            data = await self._read_body()
            if data is None:
                return None
            self._buffer = (self._buffer + data).replace(b"\r\n", b"\n")
            now_perf, now_wall = time.perf_counter(), time.time()
            while b"\n\n" in self._buffer:
                block, self._buffer = self._buffer.split(b"\n\n", 1)
                event = _parse(block, now_perf, now_wall)
                if event is not None:
                    self._pending.append(event)
        event = self._pending.pop(0)
        self.events.append(event)
        return event

    async def read_until_terminal(
        self, terminal: frozenset[str] = frozenset({"completed", "failed", "cancelled"})
    ) -> list[Event]:
        while True:
            event = await self.next_event()
            if event is None:
                return self.events
            if event.data.get("status") in terminal or event.name == "deleted":
                return self.events

    async def _read_body(self) -> bytes | None:
        if not self._chunked:
            data = await self.reader.read(65536)
            return data or None
        line = await self.reader.readline()
        if not line:
            return None
        size = int(line.strip().split(b";")[0] or b"0", 16)
        if size == 0:
            return None
        data = await self.reader.readexactly(size + 2)
        return data[:-2]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


def _parse(block: bytes, received_perf: float, received_wall: float) -> Event | None:
    event_id: int | None = None
    name = "message"
    data_lines: list[str] = []
    for line in block.decode("utf-8", "replace").split("\n"):
        if not line or line.startswith(":"):
            continue
        key, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if key == "id":
            event_id = int(value) if value.isdigit() else None
        elif key == "event":
            name = value
        elif key == "data":
            data_lines.append(value)
    if not data_lines:
        return None
    return Event(event_id, name, json.loads("\n".join(data_lines)), received_perf, received_wall)


async def open_stream(host: str, port: int, path: str, *, timeout_s: float = 10.0,
                      headers: dict[str, str] | None = None) -> Stream:
    """Connect and read the response head; the stream is then ready for next_event()."""
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    async with asyncio.timeout(timeout_s):
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n"
            f"{extra}\r\n".encode()
        )
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    stream = Stream(reader, writer, status)
    stream._chunked = headers.get("transfer-encoding", "").lower() == "chunked"
    return stream
