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
