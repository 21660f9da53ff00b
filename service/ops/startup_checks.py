"""Checks both processes run before serving: each failure ends the process with one clear line."""

from __future__ import annotations

import asyncio
import shutil
import sys

from redis.exceptions import RedisError

from service.connections import redis_client
from service.ocr import installed_languages
from settings import Settings

REQUIRED_LANGUAGES = ("eng",)


def _stop(message: str) -> None:
    print(f"startup check failed: {message}", file=sys.stderr)
    raise SystemExit(3)


def check_tesseract() -> None:
    if shutil.which("tesseract") is None:
        _stop("the tesseract command is not installed (apt-get install tesseract-ocr)")
    missing = [lang for lang in REQUIRED_LANGUAGES if lang not in installed_languages()]
    if missing:
        _stop(f"Tesseract language data missing: {', '.join(missing)} (apt-get install tesseract-ocr-eng)")


def check_redis(settings: Settings) -> None:
    async def ping() -> None:
        client = redis_client(settings)
        try:
            await client.ping()
        finally:
            await client.aclose()

    try:
        asyncio.run(asyncio.wait_for(ping(), timeout=10))
    except (RedisError, OSError, TimeoutError) as exc:
        _stop(f"Redis at {_redacted(settings.effective_redis_url)} is not reachable: {exc.__class__.__name__}: {exc}")


def check_web_environment(settings: Settings) -> None:
    check_redis(settings)


def check_worker_environment(settings: Settings) -> None:
    check_tesseract()
    check_redis(settings)


def _redacted(url: str) -> str:
    """The URL without its password, which must never reach a log."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return f"{scheme}{sep}{rest}"
