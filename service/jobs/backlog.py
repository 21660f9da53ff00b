"""What a stream sends before it goes live, read from Redis once for every stream that opens at once.

A burst of clients on one job (every `EventSource` reconnecting after a deploy) must not cost Redis a
read per client. `SingleFlight` shares one read among all the streams that ask for the same job or
feed while it is being made: a burst of N streams costs a handful of reads, however large N is.

Sharing must not break the rule of service/jobs/events.py (a stream subscribes to the hub before its
state is read): a caller joins only a read that has not been sent yet. Each key has at most one read
in Redis and one gathering callers behind it; the gathering one is sent when the one before it
returns, so every caller gets a read made after it subscribed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service import keys
from service.jobs.events import event_payload
from service.jobs.page_events import PAGE, with_page_events
from service.jobs.record import Job, looks_like_job_id

K = TypeVar("K")
V = TypeVar("V")

# (seq, event name, payload) of one event a stream sends from its backlog.
Entry = tuple[int, str, Any]


class SingleFlight(Generic[K, V]):
    """Concurrent calls for the same key share one call of `read`, among callers that came before it
    was sent."""

    def __init__(self) -> None:
        self._gathering: dict[K, asyncio.Future[V]] = {}
        self._in_flight: dict[K, asyncio.Future[V]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.reads = 0  # calls of `read` made, for tests and metrics

    async def get(self, key: K, read: Callable[[], Awaitable[V]]) -> V:
        future = self._gathering.get(key)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            # A result nobody waits for any more (every caller's client left) is not an error to log.
            future.add_done_callback(lambda f: f.cancelled() or f.exception())
            self._gathering[key] = future
            task = asyncio.create_task(self._run(key, future, read))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        # One caller giving up (its client left) must not cancel the read the others wait for.
        return await asyncio.shield(future)

    async def _run(self, key: K, future: asyncio.Future[V], read: Callable[[], Awaitable[V]]) -> None:
        previous = self._in_flight.get(key)
        if previous is not None:
            await asyncio.wait([previous])
        # From here on, callers gather behind this read rather than join it.
        del self._gathering[key]
        self._in_flight[key] = future
        self.reads += 1
        try:
            future.set_result(await read())
        except BaseException as exc:  # noqa: BLE001 - handed to every caller
            future.set_exception(exc)
        finally:
            if self._in_flight.get(key) is future:
                del self._in_flight[key]


@dataclass(frozen=True, slots=True)
class JobState:
    """One read of a job's stream state: its owner, its current seq and state, and its kept history."""

    tenant: str | None
    seq: int
    job: Job | None
    history: list[bytes]


@dataclass(frozen=True, slots=True)
class FeedState:
    seq: int
    history: list[bytes]


async def read_job_state(redis: Redis, job_id: str) -> JobState:
    if not looks_like_job_id(job_id):
        return JobState(None, 0, None, [])
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hget(keys.meta(job_id), "tenant")
        pipe.get(keys.seq(job_id))
        pipe.get(keys.job(job_id))
        pipe.lrange(keys.events(job_id), 0, -1)
        tenant_raw, seq_raw, job_raw, history = await pipe.execute()
    return JobState(
        tenant=tenant_raw.decode() if tenant_raw is not None else None,
        seq=int(seq_raw or 0),
        job=json.loads(job_raw) if job_raw is not None else None,
        history=history,
    )


async def read_feed_state(redis: Redis, tenant: str) -> FeedState:
    async with redis.pipeline(transaction=True) as pipe:
        pipe.get(keys.feed_seq(tenant))
        pipe.lrange(keys.feed(tenant), 0, -1)
        seq_raw, history = await pipe.execute()
    return FeedState(int(seq_raw or 0), history)


def _history_entry(raw: bytes) -> Entry:
    data = json.loads(raw)
    if data["event"] == PAGE:
        # Kept as its page's number (service/jobs/page_events.py): `with_page_events` reads the page.
        return int(data["seq"]), PAGE, int(data["page"])
    return int(data["seq"]), data["event"], event_payload(data["event"], data)


def job_backlog(state: JobState, last_event_id: int | None) -> list[Entry]:
    """The events after `last_event_id` when the history still holds them, else the current state alone
    (nothing when the job is gone or the client has seen everything). Its page events are references
    until `with_page_events` reads their pages."""
    if state.job is None:
        return []
    if last_event_id is not None:
        if last_event_id >= state.seq:
            return []
        history = [_history_entry(raw) for raw in state.history]
        if history and history[0][0] <= last_event_id + 1:
            return [entry for entry in history if entry[0] > last_event_id]
    return [(state.seq, "status", state.job)]


def feed_backlog(state: FeedState, last_event_id: int | None) -> list[Entry] | None:
    """The feed's events after `last_event_id` when the history holds them; None when the client needs
    a snapshot instead."""
    if last_event_id is not None and last_event_id <= state.seq:
        history = [_history_entry(raw) for raw in state.history]
        if last_event_id == state.seq or (history and history[0][0] <= last_event_id + 1):
            return [entry for entry in history if entry[0] > last_event_id]
    return None


async def read_job_backlog(redis: Redis, job_id: str, last_event_id: int | None) -> tuple[list[Entry], int]:
    """One stream's backlog, read on its own: (events, seq of the current state)."""
    state = await read_job_state(redis, job_id)
    return await with_page_events(redis, job_id, job_backlog(state, last_event_id)), state.seq


# How long a stream's opening keeps retrying a read that failed while Redis is known to be up.
PATIENCE_S = 20.0


class Backlogs:
    """The web process's shared reads of stream state (one per job, feed or snapshot at a time).

    A reconnect storm can keep the process's event loop so busy that a new pooled connection takes
    longer than its connect timeout, though Redis is fine. While the event hub's own connection says
    Redis is up (`reachable`), such a read is tried again, for up to PATIENCE_S, rather than refused
    with a 503; once the hub has lost Redis too, it fails at once."""

    def __init__(self, redis: Redis, reachable: Callable[[], bool]) -> None:
        self.redis = redis
        self.reachable = reachable
        self.jobs: SingleFlight[str, JobState] = SingleFlight()
        self.feeds: SingleFlight[str, FeedState] = SingleFlight()
        self.snapshots: SingleFlight[str, list[Job]] = SingleFlight()

    async def _patiently(self, read: Callable[[], Awaitable[V]]) -> V:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PATIENCE_S
        while True:
            try:
                return await read()
            except (RedisConnectionError, RedisTimeoutError, OSError):
                if not self.reachable() or loop.time() > deadline:
                    raise
            await asyncio.sleep(0.1)

    async def job(self, job_id: str) -> JobState:
        return await self.jobs.get(job_id, lambda: self._patiently(lambda: read_job_state(self.redis, job_id)))

    async def feed(
        self, tenant: str, last_event_id: int | None, snapshot: Callable[[], Awaitable[list[Job]]]
    ) -> tuple[list[Entry], int]:
        """The feed's events after `last_event_id`, else one `snapshot` event with the tenant's newest jobs
        (read once for every feed of the tenant opening at once). Returns (events, the feed's seq)."""
        state = await self.feeds.get(tenant, lambda: self._patiently(lambda: read_feed_state(self.redis, tenant)))
        events = feed_backlog(state, last_event_id)
        if events is None:
            jobs = await self.snapshots.get(tenant, lambda: self._patiently(snapshot))
            events = [(state.seq, "snapshot", {"jobs": jobs})]
        return events, state.seq

    @property
    def reads(self) -> int:
        return self.jobs.reads + self.feeds.reads + self.snapshots.reads
