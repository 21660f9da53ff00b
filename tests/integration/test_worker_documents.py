"""A job's document fetched from Redis to the worker's file, against a real redis-server."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from arq.connections import ArqRedis
from redis.asyncio import Redis

from service import keys
from service.connections import redis_client
from service.jobs.cache import ContentCache
from service.jobs.store import JobStore
from service.worker import state as worker_state
from service.worker.state import WorkerState
from settings import Settings
from tests.conftest import RedisServer


@pytest.fixture
async def state(redis_server: RedisServer, redis: Redis, tmp_path: Path) -> AsyncIterator[WorkerState]:
    settings = Settings(redis_url=redis_server.url.rsplit("/", 1)[0] + "/1")
    client: ArqRedis = redis_client(settings)
    store = JobStore(client, ttl_s=60)
    yield WorkerState(
        settings=settings, redis=client, store=store, cache=ContentCache(client, store),
        pages=None,  # type: ignore[arg-type]  # no pages run here
        worker_id="test", scratch=tmp_path,
    )  # fmt: skip
    await client.aclose()


async def test_a_document_arrives_whole_in_pieces(state: WorkerState, redis: Redis) -> None:
    # Two and a half pieces: the last one is short.
    document = os.urandom(worker_state.FETCH_CHUNK_BYTES * 5 // 2)
    await redis.set(keys.document("a" * 32), document)
    async with state.document_file("a" * 32) as path:
        assert path is not None
        assert path.read_bytes() == document


async def test_a_document_gone_gives_none_and_leaves_no_file(state: WorkerState, tmp_path: Path) -> None:
    async with state.document_file("b" * 32) as path:
        assert path is None
    assert list(tmp_path.iterdir()) == []


async def test_a_document_deleted_while_it_is_read_gives_none_and_leaves_no_file(
    state: WorkerState, redis: Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = "c" * 32
    await redis.set(keys.document(job_id), b"x" * (worker_state.FETCH_CHUNK_BYTES * 3))
    real_getrange = state.redis.getrange
    pieces = 0

    async def getrange_then_delete(key: str, start: int, end: int) -> bytes:
        # The job is deleted after its first piece was read.
        nonlocal pieces
        pieces += 1
        piece: bytes = await real_getrange(key, start, end)
        if pieces == 1:
            await redis.delete(keys.document(job_id))
        return piece

    monkeypatch.setattr(state.redis, "getrange", getrange_then_delete)
    async with state.document_file(job_id) as path:
        assert path is None
    assert pieces == 2
    assert list(tmp_path.iterdir()) == []
