"""The Starlette application: lifespan (Redis, the event hub), middleware, error mapping, routes."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import routes
from service.cache import ContentCache
from service.connections import redis_client
from service.errors import ServiceError, ServiceUnavailable
from service.events import EventHub
from service.jobs import JobStore
from service.metrics import metrics_endpoint
from service.ocr import installed_languages
from service.openapi import openapi_endpoint
from service.operations import Services
from settings import Settings, get_settings

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("service.access")

STATIC_DIR = Path(__file__).parent / "static"
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


async def service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    return routes.error_response(exc)


async def redis_unavailable(request: Request, exc: Exception) -> Response:
    logger.warning("Redis unavailable during %s %s: %s", request.method, request.url.path, exc)
    return routes.error_response(ServiceUnavailable("Redis is not reachable; retry shortly.", retry_after_s=5))


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed", 400: "bad_request", 413: "payload_too_large"}
    error = ServiceError(exc.detail or "Request failed.", code=codes.get(exc.status_code, "bad_request"))
    error.status_code = exc.status_code
    response = routes.error_response(error)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def unexpected_error(request: Request, exc: Exception) -> Response:
    logger.exception("unexpected error in %s %s", request.method, request.url.path)
    error = ServiceError("The server failed to handle this request.")
    return routes.error_response(error)


async def index(request: Request) -> Response:
    return FileResponse(STATIC_DIR / "index.html", headers={"Content-Security-Policy": PAGE_CSP})


async def dashboard(request: Request) -> Response:
    return FileResponse(STATIC_DIR / "dashboard.html", headers={"Content-Security-Policy": PAGE_CSP})


class RevalidatedStaticFiles(StaticFiles):
    """The page's assets, revalidated on every load: after a deploy a browser must never pair a new
    index.html with an old app.js from its cache."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        return response


class SecurityHeaders:
    """nosniff everywhere, and one access-log line per request with its duration."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-content-type-options", b"nosniff"))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            access_logger.info(
                "%s %s %d %.1fms",
                scope["method"],
                scope["path"],
                status,
                (time.perf_counter() - started) * 1000,
            )


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        redis = redis_client(settings)
        # The hub's connection waits on pub/sub messages: it must not time out while idle.
        hub_redis = redis_client(settings, socket_timeout_s=None)
        store = JobStore(redis, ttl_s=settings.result_ttl_s)
        hub = EventHub(hub_redis)
        await hub.start()
        if settings.open_mode:
            logger.warning("API_KEYS is unset: open mode, every caller is the tenant 'public'")
        services = Services(
            settings=settings,
            redis=redis,
            store=store,
            cache=ContentCache(redis, store),
            hub=hub,
            installed_langs=installed_languages(),
        )
        app.state.services = services
        try:
            yield {"services": services}
        finally:
            await hub.stop()
            await hub_redis.aclose()
            await redis.aclose()

    middleware = [Middleware(SecurityHeaders)]
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_methods=["GET", "POST", "DELETE"],
                allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
                expose_headers=["Location", "Retry-After"],
            )
        )

    app_routes = [
        Route("/", index, methods=["GET"]),
        Route("/dashboard", dashboard, methods=["GET"]),
        Route("/ops/events", routes.ops_events, methods=["GET"]),
        Route("/jobs", routes.create_job, methods=["POST"]),
        Route("/jobs", routes.list_jobs, methods=["GET"]),
        Route("/jobs/{job_id}", routes.get_job, methods=["GET"]),
        Route("/jobs/{job_id}", routes.delete_job, methods=["DELETE"]),
        Route("/jobs/{job_id}/events", routes.job_events, methods=["GET"]),
        Route("/jobs/{job_id}/result", routes.get_result, methods=["GET"]),
        Route("/events", routes.tenant_events, methods=["GET"]),
        Route("/events/link", routes.feed_link, methods=["GET"]),
        Route("/cache/stats", routes.cache_stats, methods=["GET"]),
        Route("/cache", routes.clear_cache, methods=["DELETE"]),
        Route("/healthz", routes.healthz, methods=["GET"]),
        Route("/readyz", routes.readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/openapi.json", openapi_endpoint, methods=["GET"]),
        Mount("/static", RevalidatedStaticFiles(directory=STATIC_DIR), name="static"),
    ]
    return Starlette(
        routes=app_routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={
            ServiceError: service_error,
            RedisConnectionError: redis_unavailable,
            RedisTimeoutError: redis_unavailable,
            HTTPException: http_error,
            Exception: unexpected_error,
        },
    )
