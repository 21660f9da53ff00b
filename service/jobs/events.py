"""Job changes as they happen: one pub/sub subscription per process, fanned out to its streams.

Every change is published by the Lua script in service/jobs/store.py on one channel. Each web process
holds exactly one subscription to it (`EventHub`) and fans the events out in memory to its streams,
so Redis connections do not grow with the number of SSE clients.

A stream subscribes to the hub *before* it reads the job's state and history from Redis. Anything
published after that read is therefore in the stream's queue, and anything before it is in the
history; events seen twice are skipped by their sequence number. That is what makes "the first event
is the current state" and Last-Event-ID resume free of races.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from service import keys
from service.jobs.record import TERMINAL, Job

logger = logging.getLogger(__name__)

# A stream whose client reads slower than events arrive has its queued progress events coalesced;
# past this many queued events that cannot be (status, page) it is ended rather than buffered without
# bound, and the client reconnects with Last-Event-ID and loses nothing.
SUBSCRIBER_QUEUE_EVENTS = 1000
# A stream this many events behind is a slow one: from there on a progress event replaces the queued
# progress of the same job. A stream that keeps up gets every event.
COALESCE_AFTER_EVENTS = 8
FEED_SNAPSHOT_JOBS = 50
# The hub pings Redis after this long without a message, so that a dead connection is noticed.
IDLE_PING_S = 10.0


# Turns a stored job into what clients see (links, field order): see service/api/present.py.
Present = Callable[[Job], dict[str, Any]]


# The events that carry the whole job; any other (`deleted`, `page` ...) carries its own data.
JOB_EVENTS = frozenset({"status", "progress"})
ROUTING_FIELDS = frozenset({"id", "tenant", "seq", "tseq", "event", "job"})


@dataclass(frozen=True, slots=True)
class Event:
    job_id: str
    tenant: str
    seq: int  # the event's id in its job's stream
    tseq: int  # its id in the tenant's feed; 0 for events the feed does not carry (`page`)
    name: str  # "status", "progress", "deleted", "page" ...: passed through whatever it is
    job: Job  # the job for JOB_EVENTS, else the event's own data
    # What `present` made of the job, computed once for all of the event's streams (they share a tenant).
    presented: dict[str, Any] = field(default_factory=dict, compare=False)
    # The event as sent, once per kind of stream ("job", "feed") for all of them.
    wire: dict[str, bytes] = field(default_factory=dict, compare=False)

    def present_with(self, present: Present) -> dict[str, Any]:
        if not self.presented:
            self.presented.update(present(self.job))
        return self.presented

    @property
    def terminal(self) -> bool:
        return self.name == "deleted" or (self.name in JOB_EVENTS and self.job.get("status") in TERMINAL)


class Subscription:
    """One stream's queue of events. Close it (or use it as a context manager) to leave the hub.

    Small on purpose (a list and a waiter): a web process holds one per open stream, ten thousand of
    them. The events in it are the hub's own objects, shared by every stream of the job.
    """

    __slots__ = ("_deadline", "_ended", "_index", "_name", "_queue", "_timer", "_waiter")

    def __init__(self, index: dict[str, set[Subscription]], name: str) -> None:
        # A list, not a deque: it is nearly always empty, and an empty deque costs 760 bytes a stream.
        self._queue: list[Event] = []
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0
        self._ended = False
        self._index = index
        self._name = name
        index.setdefault(name, set()).add(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        subs = self._index.get(self._name)
        if subs is not None:
            subs.discard(self)
            if not subs:
                del self._index[self._name]

    def offer(self, event: Event) -> bool:
        """Queue `event`; False when the queue is full of events that cannot be coalesced.

        For a stream that has fallen behind (COALESCE_AFTER_EVENTS queued), only a job's newest
        progress matters: a progress event replaces the one of the same job still queued (its client
        gets fewer, never stale ones). Status, page and deleted events are never dropped or merged."""
        queue = self._queue
        if event.name == "progress" and len(queue) >= COALESCE_AFTER_EVENTS:
            for position in range(len(queue) - 1, -1, -1):
                queued = queue[position]
                if queued.name == "progress" and queued.job_id == event.job_id:
                    del queue[position]
                    break
        if len(queue) >= SUBSCRIBER_QUEUE_EVENTS:
            return False
        queue.append(event)
        self._wake()
        return True

    def end(self) -> None:
        """Tell the stream to finish once it has what is queued: its client reconnects with
        Last-Event-ID and loses nothing."""
        self.close()
        self._ended = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, timeout_s: float | None = None) -> bool:
        """Until an event is queued or the stream is ended (True), or `timeout_s` has passed (False)."""
        if self._queue or self._ended:
            return True
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        if timeout_s is not None:
            # One timer a stream, moved on rather than made anew for every event (which cost more than
            # the rest of a stream's waking): it fires at the first deadline and waits on if it moved.
            self._deadline = loop.time() + timeout_s
            if self._timer is None:
                self._timer = loop.call_at(self._deadline, self._on_timer)
        try:
            await waiter
        finally:
            self._waiter = None
        return bool(self._queue) or self._ended

    def _on_timer(self) -> None:
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done():
            return  # not waiting: the next wait sets a timer
        loop = waiter.get_loop()
        if loop.time() >= self._deadline:
            waiter.set_result(None)
        else:
            self._timer = loop.call_at(self._deadline, self._on_timer)

    @property
    def finished(self) -> bool:
        """Ended by the hub or its client, and nothing left in it."""
        return self._ended and not self._queue

    def pop(self) -> Event | None:
        """The next queued event; None when there is none (the stream has ended, if `wait` said True)."""
        return self._queue.pop(0) if self._queue else None

    async def next(self) -> Event | None:
        """The next event, or None once the hub has ended this stream (Redis lost, or the client too slow)."""
        await self.wait()
        return self.pop()


class EventHub:
    """One Redis subscription per process, fanned out to every open stream."""

    def __init__(self, redis: Redis, *, reconnect_delay_s: float = 0.5) -> None:
        self.redis = redis
        self.reconnect_delay_s = reconnect_delay_s
        self.connected = asyncio.Event()
        self._by_job: dict[str, set[Subscription]] = {}
        self._by_tenant: dict[str, set[Subscription]] = {}
        self._task: asyncio.Task[None] | None = None
        self._heard_at = 0.0  # loop time of the last message from Redis

    @property
    def clients(self) -> int:
        return sum(map(len, self._by_job.values())) + sum(map(len, self._by_tenant.values()))

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-hub")
        # A process that starts while Redis is down still starts; streams answer 503 until it is back.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.connected.wait(), timeout=3)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._drop_all()

    def job(self, job_id: str) -> Subscription:
        return Subscription(self._by_job, job_id)

    def tenant(self, tenant: str) -> Subscription:
        return Subscription(self._by_tenant, tenant)

    async def _run(self) -> None:
        delay_s = self.reconnect_delay_s
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(keys.EVENTS_CHANNEL)
                self.connected.set()
                delay_s = self.reconnect_delay_s
                logger.info("event hub subscribed to %s", keys.EVENTS_CHANNEL)
                await self._pump(pubsub)
            except (RedisError, OSError) as exc:
                if self.connected.is_set():
                    logger.warning("event hub lost Redis (%s); reconnecting", exc)
                self.connected.clear()
                # Streams end so that their clients reconnect (and get a 503 until Redis is back).
                self._drop_all()
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _pump(self, pubsub: Any) -> None:
        # A blocking read, with no timer per message (a read with a timeout costs one, which thousands
        # of events a second felt); a dead TCP peer is only noticed when we write, so a sibling task
        # pings while the channel is quiet.
        loop = asyncio.get_running_loop()
        self._heard_at = loop.time()
        keepalive = asyncio.create_task(self._ping_while_quiet(pubsub), name="event-hub-ping")
        try:
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
                self._heard_at = loop.time()
                if message is None or message.get("type") != "message":
                    continue
                try:
                    event = parse_published(message["data"])
                except (ValueError, KeyError):
                    logger.warning("event hub ignored a malformed message")
                    continue
                self._dispatch(event)
        finally:
            keepalive.cancel()

    async def _ping_while_quiet(self, pubsub: Any) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(IDLE_PING_S)
            if loop.time() - self._heard_at < IDLE_PING_S:
                continue
            try:
                await pubsub.ping()  # its answer comes to the reader, as a message
            except (RedisError, OSError) as exc:
                # Closing the connection ends the reader's wait with an error: `_run` reconnects.
                logger.warning("event hub could not ping Redis (%s)", exc)
                connection = pubsub.connection
                if connection is not None:
                    with contextlib.suppress(RedisError, OSError):
                        await connection.disconnect()
                return

    def _dispatch(self, event: Event) -> None:
        targets = [(self._by_job, event.job_id)]
        if event.tseq:
            targets.append((self._by_tenant, event.tenant))
        for index, name in targets:
            for sub in list(index.get(name, ())):
                if not sub.offer(event):
                    logger.info("ending a slow event stream of %s", name)
                    sub.end()

    def _drop_all(self) -> None:
        for index in (self._by_job, self._by_tenant):
            for subs in list(index.values()):
                for sub in list(subs):
                    sub.end()


def event_payload(name: str, data: dict[str, Any]) -> Any:
    """What a published or kept event carries: its job (the whole job for JOB_EVENTS, `{"id": ...}` for
    `deleted`); for any other event its `data`, or its own fields less the routing ones."""
    if "job" in data:
        return data["job"]
    if "data" in data:
        return data["data"]
    return {key: value for key, value in data.items() if key not in ROUTING_FIELDS} | {"id": data.get("id")}


def parse_published(raw: bytes | str) -> Event:
    data = json.loads(raw)
    name = data["event"]
    return Event(
        job_id=data["id"],
        tenant=data["tenant"],
        seq=int(data["seq"]),
        tseq=int(data.get("tseq") or 0),
        name=name,
        job=event_payload(name, data),
    )
