"""Redis clients and the arq job serializer, shared by the web process and the workers."""

from __future__ import annotations

import json
from typing import Any

from arq.connections import ArqRedis
from redis.asyncio import ConnectionPool

from settings import Settings


def serialize_job(data: dict[str, Any]) -> bytes:
    # arq's default serializer is pickle: anyone able to write to Redis could run code in a worker.
    # JSON carries data only; a forged pickle payload fails to decode and the job fails unexecuted.
    return json.dumps(data, separators=(",", ":")).encode()


def deserialize_job(raw: bytes) -> dict[str, Any]:
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("an arq job payload must be a JSON object")
    return data


def redis_client(settings: Settings, *, socket_timeout_s: float | None = 5.0) -> ArqRedis:
    """A client that fails fast: an unreachable Redis is a 503 within seconds, never a hung request."""
    options: dict[str, Any] = {
        "socket_connect_timeout": 2.0,
        "socket_timeout": socket_timeout_s,
        "health_check_interval": 15,
    }
    if settings.effective_redis_url.startswith("rediss://") and not settings.redis_ssl_verify:
        options |= {"ssl_cert_reqs": "none", "ssl_check_hostname": False}
    pool = ConnectionPool.from_url(settings.effective_redis_url, **options)
    return ArqRedis(pool, job_serializer=serialize_job, job_deserializer=deserialize_job)
