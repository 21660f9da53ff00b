"""Reading a stored result while its job is deleted beside it, against a real redis-server.

A soak run (BENCHMARKS.md section 10) once answered a result asked for as its job was deleted with a 200
and no pages: the result's fields were read before the deletion and its page numbers after it."""

from __future__ import annotations

import json

import pytest
from redis.asyncio import Redis

from service import keys
from service.errors import NotReady
from service.jobs import results
from service.ocr import PageResult
from service.ocr.record import page_record

JOB = "d" * 32


async def store(redis: Redis, pages: int) -> None:
    fields = {"id": JOB, "pages_total": pages, "lang": "eng", "duration_ms": 5}
    await redis.set(keys.result(JOB), json.dumps(fields))
    for number in range(1, pages + 1):
        page = PageResult(number=number, text="", source="ocr", confidence=None, rotation=0, width=1.0, height=1.0)
        await redis.hset(keys.pages(JOB), str(number), page_record(page))  # type: ignore[misc]


async def delete_job(redis: Redis) -> None:
    await redis.delete(keys.result(JOB), keys.pages(JOB))


async def test_a_result_longer_than_a_batch_comes_whole_and_in_order(redis: Redis) -> None:
    await store(redis, results.BATCH_PAGES * 2 + 3)
    result = await results.open_result(redis, JOB)
    assert [page.number async for page in result.pages()] == list(range(1, results.BATCH_PAGES * 2 + 4))
    # Read twice (the JSON's text, then its pages): the same pages both times.
    whole = await result.whole()
    assert [page["number"] for page in whole["pages"]] == list(range(1, results.BATCH_PAGES * 2 + 4))


async def test_a_deleted_result_is_not_found(redis: Redis) -> None:
    await store(redis, 2)
    await delete_job(redis)
    with pytest.raises(NotReady):
        await results.open_result(redis, JOB)


async def test_a_job_deleted_as_its_result_is_opened_is_not_found_rather_than_served_without_pages(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store(redis, 3)
    real_hmget = redis.hmget

    async def deleted_first(*args: object) -> object:
        # The DELETE lands between reading the result's fields and page numbers and reading its pages.
        await delete_job(redis)
        return await real_hmget(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(redis, "hmget", deleted_first)
    with pytest.raises(NotReady):
        await results.open_result(redis, JOB)


async def test_a_result_whose_pages_go_while_it_is_read_raises_rather_than_ending_short(redis: Redis) -> None:
    # Past the first batch (read when the result is opened), the rest is read as the answer goes out:
    # a page gone by then must not end the pages quietly, as if the result had no more.
    await store(redis, results.BATCH_PAGES + 5)
    result = await results.open_result(redis, JOB)
    await delete_job(redis)
    seen = []
    with pytest.raises(NotReady) as gone:
        async for page in result.pages():
            seen.append(page.number)
    assert seen == list(range(1, results.BATCH_PAGES + 1))
    assert gone.value.code == "not_found"
