"""Every setting of the service, read from the environment once and validated.

A bad value stops the process at start with one clear line (see `load_or_exit`), never halfway
through a job. The names and defaults are the table in the README and in shared/API.md.
"""

from __future__ import annotations

import os
import re
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from arq.connections import RedisSettings

TENANT_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
OPEN_MODE_TENANT = "public"


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    port: int = 8000
    # Web processes serving $PORT in one dyno or container, each with its own event hub and Redis pool.
    web_concurrency: int = 1
    redis_url: str | None = None
    # REDIS_SSL_VERIFY=false accepts rediss:// servers with self-signed certificates (Heroku Redis).
    redis_ssl_verify: bool = True
    # Connections one web process opens to Redis at most (Heroku Redis plans allow from 20 up).
    redis_max_connections: int = 16
    api_keys: Mapping[str, str] = field(default_factory=dict)  # key -> tenant
    secret_key: bytes = b""
    max_upload_mb: int = 50
    max_pages: int = 2000
    max_active_jobs: int = 100
    result_ttl_s: int = 3600
    job_timeout_s: int = 120
    # One page's whole run (rendering, orientation, Tesseract) in its process; past it the process is killed.
    page_timeout_s: float = 245.0
    ocr_concurrency: int = 1
    max_page_pixels: int = 40_000_000
    # Address space one page's process may use (rendering and Tesseract); past it the page fails.
    page_memory_mb: int = 4096
    # What one page, and one whole document, may store of text (page objects and searchable-PDF text
    # layers); beyond either the job fails with `text_too_large`. A dense OCR page stores about 25 KB.
    max_page_text_kb: int = 1024
    max_document_text_mb: int = 100
    webhook_secret: str | None = None
    allow_private_networks: bool = False
    log_format: str = "plain"
    log_level: str = "INFO"
    cors_origins: tuple[str, ...] = ()
    worker_poll_delay_s: float = 0.01
    # arq units (downloads, webhook deliveries) one worker runs at once; pages are claimed one per OCR
    # slot by the worker's own page loop, not through arq.
    worker_max_jobs: int = 1
    # How long a worker's claim on a page lives without being renewed (every third of it): a worker
    # killed with SIGKILL hands its pages to others after at most this long.
    lease_s: int = 5
    # Transient failures (a Tesseract killed by the OS or by JOB_TIMEOUT) are retried this many times,
    # after 2, 4, 8 ... seconds (RETRY_DELAY_SECONDS doubling).
    max_tries: int = 5
    retry_delay_s: float = 2.0
    sse_ping_s: float = 15.0
    sse_retry_ms: int = 2000
    # A stream whose client stops reading is ended once one send has waited this long.
    sse_send_timeout_s: float = 30.0
    # Streams (job streams and feeds) one tenant may hold open on one web process.
    max_streams_per_tenant: int = 1000
    sse_token_ttl_s: int = 3600

    @property
    def open_mode(self) -> bool:
        return not self.api_keys

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @property
    def max_page_text_bytes(self) -> int:
        return self.max_page_text_kb * 1024

    @property
    def max_document_text_bytes(self) -> int:
        return self.max_document_text_mb * 1024 * 1024

    @property
    def effective_redis_url(self) -> str:
        return self.redis_url or "redis://127.0.0.1:6379/0"

    def redis_settings(self) -> RedisSettings:
        redis_settings = RedisSettings.from_dsn(self.effective_redis_url)
        redis_settings.conn_timeout = 2
        redis_settings.conn_retries = 1
        redis_settings.conn_retry_delay = 1
        if redis_settings.ssl and not self.redis_ssl_verify:
            redis_settings.ssl_cert_reqs = "none"
            redis_settings.ssl_check_hostname = False
        return redis_settings

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        api_keys = _api_keys(env.get("API_KEYS", ""))
        secret = env.get("SECRET_KEY", "")
        if api_keys and not secret:
            raise SettingsError("SECRET_KEY is required when API_KEYS is set (it signs the SSE tokens)")
        if secret and len(secret) < 16:
            raise SettingsError("SECRET_KEY must be at least 16 characters")
        redis_url = env.get("REDIS_URL") or env.get("REDIS_TLS_URL") or None
        if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise SettingsError(f"REDIS_URL must start with redis:// or rediss://, got {redis_url.split(':')[0]}:")
        log_format = env.get("LOG_FORMAT") or ("plain" if sys.stderr.isatty() else "json")
        if log_format not in ("plain", "json"):
            raise SettingsError(f"LOG_FORMAT must be plain or json, got {log_format!r}")
        ocr_concurrency = _int(env, "OCR_CONCURRENCY", os.cpu_count() or 1, 1, 256)
        job_timeout_s = _int(env, "JOB_TIMEOUT", 120, 1, 24 * 3600)
        return cls(
            port=_int(env, "PORT", 8000, 1, 65535),
            web_concurrency=_int(env, "WEB_CONCURRENCY", 1, 1, 64),
            redis_url=redis_url,
            redis_ssl_verify=_bool(env, "REDIS_SSL_VERIFY", True),
            redis_max_connections=_int(env, "REDIS_MAX_CONNECTIONS", 16, 2, 10_000),
            api_keys=api_keys,
            secret_key=secret.encode() if secret else secrets.token_bytes(32),
            max_upload_mb=_int(env, "MAX_UPLOAD_MB", 50, 1, 1024),
            max_pages=_int(env, "MAX_PAGES", 2000, 1, 100_000),
            max_active_jobs=_int(env, "MAX_ACTIVE_JOBS", 100, 1, 1_000_000),
            result_ttl_s=_int(env, "RESULT_TTL", 3600, 10, 30 * 24 * 3600),
            job_timeout_s=job_timeout_s,
            page_timeout_s=_float(env, "PAGE_TIMEOUT", job_timeout_s * 2 + 5, 1, 48 * 3600),
            ocr_concurrency=ocr_concurrency,
            max_page_pixels=_int(env, "MAX_PAGE_PIXELS", 40_000_000, 1_000_000, 400_000_000),
            page_memory_mb=_int(env, "PAGE_MEMORY_MB", 4096, 256, 1_048_576),
            max_page_text_kb=_int(env, "MAX_PAGE_TEXT_KB", 1024, 1, 1_048_576),
            max_document_text_mb=_int(env, "MAX_DOCUMENT_TEXT_MB", 100, 1, 65_536),
            webhook_secret=env.get("WEBHOOK_SECRET") or None,
            allow_private_networks=_bool(env, "ALLOW_PRIVATE_NETWORKS", False),
            log_format=log_format,
            log_level=_choice(env, "LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")),
            cors_origins=tuple(o.strip() for o in env.get("CORS_ORIGINS", "").split(",") if o.strip()),
            worker_poll_delay_s=_float(env, "WORKER_POLL_DELAY", 0.01, 0.001, 10.0),
            worker_max_jobs=_int(env, "WORKER_MAX_JOBS", ocr_concurrency, 1, 1000),
            lease_s=_int(env, "LEASE_SECONDS", 5, 3, 3600),
            max_tries=_int(env, "MAX_TRIES", 5, 1, 50),
            retry_delay_s=_float(env, "RETRY_DELAY_SECONDS", 2.0, 0.1, 600.0),
            sse_ping_s=_float(env, "SSE_PING_SECONDS", 15.0, 0.1, 50.0),
            sse_retry_ms=_int(env, "SSE_RETRY_MS", 2000, 100, 600_000),
            sse_send_timeout_s=_float(env, "SSE_SEND_TIMEOUT_SECONDS", 30.0, 0.1, 3600.0),
            max_streams_per_tenant=_int(env, "MAX_STREAMS_PER_TENANT", 1000, 1, 1_000_000),
            sse_token_ttl_s=_int(env, "SSE_TOKEN_TTL", 3600, 10, 7 * 24 * 3600),
        )


def _api_keys(raw: str) -> dict[str, str]:
    keys: dict[str, str] = {}
    for entry in (e.strip() for e in raw.split(",")):
        if not entry:
            continue
        tenant, sep, key = entry.partition(":")
        if not sep or not TENANT_NAME.match(tenant) or len(key) < 8:
            raise SettingsError(
                "API_KEYS must be tenant:key pairs separated by commas, tenant names of letters, digits, '_.-', "
                "keys of at least 8 characters"
            )
        if key in keys:
            raise SettingsError(f"API_KEYS gives the same key to two tenants ({keys[key]}, {tenant})")
        keys[key] = tenant
    return keys


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = env.get(name, "").strip().upper() or default
    if raw not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()


def load_or_exit() -> Settings:
    """Settings for a process entry point: a bad value ends the process with one line, no traceback."""
    try:
        return get_settings()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
