"""A finished job's stored result, and the searchable PDF made from it and the stored text layers."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from redis.asyncio import Redis

from service import keys
from service.errors import NotReady
from service.ocr import PageResult, searchable_pdf


async def load_result(redis: Redis, job_id: str) -> dict[str, Any]:
    raw = await redis.get(keys.result(job_id))
    if raw is None:
        raise NotReady("The result is no longer stored.", code="not_found")
    result: dict[str, Any] = json.loads(raw)
    return result


async def build_searchable_pdf(redis: Redis, job_id: str, media_type: str, result: dict[str, Any]) -> bytes:
    """The original document with each page's invisible text layer laid over it."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.get(keys.document(job_id))
        pipe.hgetall(keys.layers(job_id))
        document, layers = await pipe.execute()
    if document is None:
        raise NotReady("The document is no longer stored.", code="not_found")
    pages = [
        PageResult(
            number=p["number"],
            text=p["text"],
            source=p["source"],
            confidence=p["confidence"],
            rotation=p["rotation"],
            width=p["width"],
            height=p["height"],
            text_pdf=layers.get(str(p["number"]).encode()),
        )
        for p in result["pages"]
    ]
    return await asyncio.to_thread(searchable_pdf, document, media_type, pages)
