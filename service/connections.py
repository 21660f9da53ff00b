"""Redis clients and the arq job serializer, shared by the web process and the workers."""

from __future__ import annotations

import json
from typing import Any

from arq.connections import ArqRedis
from redis.asyncio import BlockingConnectionPool, ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from settings import Settings


def serialize_job(data: dict[str, Any]) -> bytes:
    # arq's default serializer is pickle: anyone able to write to Redis could run code in a worker.
    # JSON carries data only; a forged pickle payload fails to decode and the job fails unexecuted.
    # arq serializes a job's outcome with the same function, and a failed job's outcome is an exception
    # (JobExecutionFailed for an expired or undecodable job): it is stored as its text, not a traceback.
    return json.dumps(data, separators=(",", ":"), default=_as_text).encode()


def _as_text(value: object) -> str:
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    raise TypeError(f"an arq job carries only JSON data, not {type(value).__name__}")


def deserialize_job(raw: bytes) -> dict[str, Any]:
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("an arq job payload must be a JSON object")
    return data


# A worker rides out a Redis outage: every command retries with backoff (capped at 2 s) for hours,
# so the worker picks up where it was when Redis comes back, without a restart.
OUTAGE_RETRIES = 10_000


def outage_retry() -> Retry:
    return Retry(ExponentialBackoff(cap=2.0, base=0.05), OUTAGE_RETRIES)


OUTAGE_ERRORS = [RedisConnectionError, RedisTimeoutError, ConnectionRefusedError]


def redis_client(
    settings: Settings, *, socket_timeout_s: float | None = 5.0, ride_out_outages: bool = False
) -> ArqRedis:
    """A client for the web process fails fast (an unreachable Redis is a 503 within seconds, never a
    hung request); a worker's (`ride_out_outages`) waits for Redis to come back."""
    options: dict[str, Any] = {
        "socket_connect_timeout": 2.0,
        "socket_timeout": socket_timeout_s,
        "health_check_interval": 15,
    }
    if settings.effective_redis_url.startswith("rediss://") and not settings.redis_ssl_verify:
        options |= {"ssl_cert_reqs": "none", "ssl_check_hostname": False}
    if ride_out_outages:
        options |= {"retry": outage_retry(), "retry_on_error": OUTAGE_ERRORS}
        pool: ConnectionPool = ConnectionPool.from_url(settings.effective_redis_url, **options)
    else:
        # Bounded: a burst of requests waits for a connection instead of opening hundreds against a
        # hosted Redis's connection limit, however long the wait (a busy process is not a failed Redis).
        # A Redis that is really unreachable still fails fast: connecting times out in 2 s, and every
        # command on a connection times out in `socket_timeout_s`, which gives the connection back.
        pool = BlockingConnectionPool.from_url(
            settings.effective_redis_url, max_connections=settings.redis_max_connections, timeout=None, **options
        )
    client = ArqRedis(pool, job_serializer=serialize_job, job_deserializer=deserialize_job)
    # The client owns its pool, as with redis-py's `Redis.from_pool`: closing it closes the pool's
    # connections, which a client given its pool otherwise leaves open (a web app shut down inside a
    # running process, as a test does, kept them).
    client.auto_close_connection_pool = True
    return client
