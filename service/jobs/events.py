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
from service.jobs.page_events import PAGE, read_page_events
from service.jobs.record import TERMINAL, Job

logger = logging.getLogger(__name__)

# A stream whose client reads slower than events arrive is closed rather than buffered without
# bound; the client reconnects with Last-Event-ID and loses nothing.
SUBSCRIBER_QUEUE_EVENTS = 1000
FEED_SNAPSHOT_JOBS = 50


# Turns a stored job into what clients see (links, field order): see service/api/present.py.
Present = Callable[[Job], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Event:
    job_id: str
    tenant: str
    seq: int  # the event's id in its job's stream
    tseq: int  # its id in the tenant's feed
    name: str  # "status", "progress", "deleted" or "page"
    job: Job  # the job after the change ({} for a page event)
    # An event that is not a change of the job (a page) carries its data ready to send.
    data: dict[str, Any] | None = None
    # What `present` made of the job, computed once for all of the event's streams (they share a tenant).
    presented: dict[str, Any] = field(default_factory=dict, compare=False)

    def present_with(self, present: Present) -> dict[str, Any]:
        if not self.presented:
            self.presented.update(present(self.job))
        return self.presented

    @property
    def terminal(self) -> bool:
        return self.name == "deleted" or self.job.get("status") in TERMINAL


class Subscription:
    """One stream's queue of events. Close it (or use it as a context manager) to leave the hub."""

    def __init__(self, index: dict[str, set[Subscription]], name: str) -> None:
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(SUBSCRIBER_QUEUE_EVENTS)
        self._index = index
        self._name = name
        index.setdefault(name, set()).add(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        subs = self._index.get(self._name)
        if subs is not None:
            subs.discard(self)
            if not subs:
                del self._index[self._name]

    def offer(self, event: Event | None) -> bool:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            return False
        return True

    def end(self) -> None:
        """Tell the stream to finish: its client reconnects with Last-Event-ID and loses nothing."""
        self.close()
        while not self.offer(None):
            self.queue.get_nowait()

    async def next(self) -> Event | None:
        """The next event, or None once the hub has ended this stream (Redis lost, or the client too slow)."""
        return await self.queue.get()


class EventHub:
    """One Redis subscription per process, fanned out to every open stream."""

    def __init__(self, redis: Redis, *, reconnect_delay_s: float = 0.5) -> None:
        self.redis = redis
        self.reconnect_delay_s = reconnect_delay_s
        self.connected = asyncio.Event()
        self._by_job: dict[str, set[Subscription]] = {}
        self._by_tenant: dict[str, set[Subscription]] = {}
        self._task: asyncio.Task[None] | None = None

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
        idle_s = 0.0
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is None:
                idle_s += 1.0
                if idle_s >= 10:
                    # A dead TCP peer is only noticed when we write: ping while idle.
                    await pubsub.ping()
                    idle_s = 0.0
                continue
            if message.get("type") != "message":
                continue
            idle_s = 0.0
            try:
                event = parse_published(message["data"])
            except (ValueError, KeyError):
                logger.warning("event hub ignored a malformed message")
                continue
            self._dispatch(event)

    def _dispatch(self, event: Event) -> None:
        targets = [(self._by_job, event.job_id)]
        if event.tseq > 0:  # a job's own events (pages) have no id in the tenant's feed: not for the feed
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


def parse_published(raw: bytes | str) -> Event:
    data = json.loads(raw)
    return Event(
        job_id=data["id"],
        tenant=data["tenant"],
        seq=int(data["seq"]),
        tseq=int(data["tseq"]),
        name=data["event"],
        job=data.get("job", {}),
        data=data.get("data"),
    )


def _history_entry(raw: bytes) -> tuple[int, str, Any]:
    data = json.loads(raw)
    # A page event keeps only its page's number in the history (service/jobs/page_events.py).
    return int(data["seq"]), data["event"], data["page"] if data["event"] == PAGE else data["job"]


async def read_job_backlog(
    redis: Redis, job_id: str, last_event_id: int | None
) -> tuple[list[tuple[int, str, Any]], int]:
    """What a job stream sends before going live: the events after `last_event_id` when the history
    still holds them, else the current state alone. Returns (events, seq of the current state); each
    event is (seq, name, the job), or for a page event (seq, "page", its data)."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.get(keys.seq(job_id))
        pipe.get(keys.job(job_id))
        pipe.lrange(keys.events(job_id), 0, -1)
        seq_raw, job_raw, history_raw = await pipe.execute()
    if job_raw is None:
        return [], 0
    seq_now = int(seq_raw or 0)
    current = json.loads(job_raw)
    if last_event_id is not None:
        if last_event_id >= seq_now:
            return [], seq_now
        history = [_history_entry(raw) for raw in history_raw]
        if history and history[0][0] <= last_event_id + 1:
            return await _with_pages(redis, job_id, [entry for entry in history if entry[0] > last_event_id]), seq_now
    return [(seq_now, "status", current)], seq_now


async def _with_pages(redis: Redis, job_id: str, entries: list[tuple[int, str, Any]]) -> list[tuple[int, str, Any]]:
    """The history's page references replaced by the pages' event data."""
    pages = await read_page_events(redis, job_id, [int(p) for _, name, p in entries if name == PAGE])
    return [
        (seq, name, pages[int(payload)] if name == PAGE else payload)
        for seq, name, payload in entries
        if name != PAGE or int(payload) in pages
    ]


async def read_feed_backlog(
    redis: Redis, tenant: str, last_event_id: int | None, snapshot: Callable[[], Any]
) -> tuple[list[tuple[int, str, Any]], int]:
    """The feed's events after `last_event_id` when the history holds them, else one `snapshot` event
    with the tenant's newest jobs."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.get(keys.feed_seq(tenant))
        pipe.lrange(keys.feed(tenant), 0, -1)
        seq_raw, history_raw = await pipe.execute()
    seq_now = int(seq_raw or 0)
    if last_event_id is not None and last_event_id <= seq_now:
        history = [_history_entry(raw) for raw in history_raw]
        if last_event_id == seq_now or (history and history[0][0] <= last_event_id + 1):
            return [entry for entry in history if entry[0] > last_event_id], seq_now
    jobs = await snapshot()
    return [(seq_now, "snapshot", {"jobs": jobs})], seq_now
