"""Shared reads of stream state (service/jobs/backlog.py): one read for many callers, never a stale one."""

from __future__ import annotations

import asyncio

import pytest

from service.jobs.backlog import SingleFlight


async def test_callers_share_a_read_but_never_join_one_already_sent() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    release = asyncio.Event()
    started: list[int] = []

    async def read() -> int:
        number = len(started)
        started.append(number)
        await release.wait()
        return number

    first = [asyncio.create_task(flight.get("job", read)) for _ in range(100)]
    async with asyncio.timeout(5):
        while not started:
            await asyncio.sleep(0)
    # These came after the first read was sent: they must get a read made after they asked.
    second = [asyncio.create_task(flight.get("job", read)) for _ in range(100)]
    other = asyncio.create_task(flight.get("other job", read))
    for _ in range(5):
        await asyncio.sleep(0)
    assert started == [0, 1], "one read per key at a time; another key is not held up"
    release.set()
    async with asyncio.timeout(5):
        assert set(await asyncio.gather(*first)) == {0}
        assert set(await asyncio.gather(*second)) == {2}
        assert await other == 1
    assert flight.reads == 3


async def test_a_failed_read_fails_its_callers_and_a_caller_leaving_does_not_cancel_it() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    release = asyncio.Event()

    async def failing() -> int:
        await release.wait()
        raise ConnectionError("Redis went away")

    leaving = asyncio.create_task(flight.get("job", failing))
    staying = asyncio.create_task(flight.get("job", failing))
    await asyncio.sleep(0)
    leaving.cancel()
    await asyncio.sleep(0)
    release.set()
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(staying, 5)
    assert leaving.cancelled()

    async def works() -> int:
        return 7

    assert await asyncio.wait_for(flight.get("job", works), 5) == 7


async def test_a_read_that_fails_while_redis_is_known_up_is_tried_again_and_only_then() -> None:
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from service.jobs.backlog import Backlogs

    attempts: list[int] = []

    async def slow_to_connect() -> int:
        attempts.append(1)
        if len(attempts) < 3:
            raise RedisTimeoutError("Timeout connecting to server")  # a busy loop, not a lost Redis
        return 5

    up = Backlogs(None, reachable=lambda: True)  # type: ignore[arg-type]
    assert await asyncio.wait_for(up._patiently(slow_to_connect), 5) == 5 and len(attempts) == 3
    attempts.clear()
    down = Backlogs(None, reachable=lambda: False)  # type: ignore[arg-type]
    with pytest.raises(RedisTimeoutError):
        await asyncio.wait_for(down._patiently(slow_to_connect), 5)
    assert len(attempts) == 1, "the hub has lost Redis too: a 503 at once"
