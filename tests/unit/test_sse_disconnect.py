"""A stream notices its client leaving without a task of its own, and waits with one timer
(service/api/sse.py, service/jobs/events.py)."""

from __future__ import annotations

import asyncio

from service.api.sse import _DisconnectWatch
from service.jobs.events import Event, Subscription


class Source:
    def __init__(self) -> None:
        self.ended = False

    async def wait(self, timeout_s: float) -> bool:
        return True

    def take(self) -> tuple[bytes, bool]:
        return b"", True

    def end(self) -> None:
        self.ended = True


async def test_a_receive_waiting_on_a_future_is_run_on_by_its_callbacks() -> None:
    arrived = asyncio.Event()
    messages = [{"type": "http.request", "body": b"", "more_body": False}, {"type": "http.disconnect"}]

    async def receive() -> dict[str, object]:
        if len(messages) == 1:  # the request itself is read at once; the disconnect is waited for
            await arrived.wait()
        return messages.pop(0)

    source = Source()
    watch = _DisconnectWatch(receive, source)
    assert watch.task is None and not source.ended
    arrived.set()
    await asyncio.sleep(0)
    assert source.ended and watch.gone


async def test_one_left_waiting_is_closed_with_its_stream() -> None:
    event = asyncio.Event()

    async def receive() -> dict[str, object]:
        await event.wait()
        return {"type": "http.disconnect"}

    watch = _DisconnectWatch(receive, Source())
    watch.close()
    assert not event._waiters  # type: ignore[attr-defined]  # the wait's future is gone with it


async def test_a_receive_that_waits_on_something_else_gets_a_task() -> None:
    turns = [{"type": "http.request"}, {"type": "http.request"}, {"type": "http.disconnect"}]

    async def receive() -> dict[str, object]:
        await asyncio.sleep(0)  # yields None to the loop, not a future
        return turns.pop(0)

    source = Source()
    watch = _DisconnectWatch(receive, source)
    assert watch.task is not None
    await asyncio.wait_for(watch.task, 5)
    assert source.ended and watch.gone


async def test_a_subscription_times_out_a_full_timeout_after_its_last_event() -> None:
    subscription = Subscription({}, "job")
    loop = asyncio.get_running_loop()
    waiting = asyncio.ensure_future(subscription.wait(0.2))
    await asyncio.sleep(0.1)
    assert subscription.offer(Event("job", "t", 1, 1, "progress", {"status": "running"}))
    assert await waiting is True and subscription.pop() is not None
    # Its one timer was set for the first wait's deadline; this wait still gets its whole 0.2 s.
    since = loop.time()
    assert await subscription.wait(0.2) is False
    assert loop.time() - since >= 0.19
    subscription.close()
    assert subscription._timer is None
