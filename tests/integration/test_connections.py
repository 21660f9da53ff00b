"""The service's Redis clients against a real redis-server: closing one closes its connections."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from service.connections import redis_client
from settings import Settings
from tests.conftest import RedisServer


async def connected_clients(redis: Redis) -> int:
    return len(await redis.client_list())


async def test_closing_a_client_closes_the_connections_of_the_pool_it_was_given(
    redis_server: RedisServer, redis: Redis
) -> None:
    before = await connected_clients(redis)
    for options in ({}, {"ride_out_outages": True}, {"socket_timeout_s": None}):
        client = redis_client(Settings(redis_url=redis_server.url), **options)  # type: ignore[arg-type]
        await client.ping()
        assert await connected_clients(redis) == before + 1
        await client.aclose()
        # Closed on the client's side; the server notices within a moment.
        for _ in range(50):
            if await connected_clients(redis) == before:
                break
            await asyncio.sleep(0.02)
        assert await connected_clients(redis) == before, options
