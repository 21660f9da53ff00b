"""The Starlette application: lifespan (Redis, the event hub), middleware, error mapping, routes."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from contextvars import ContextVar
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

from service.api import cache, jobs, ops, pages, results, streams
from service.api.context import Services, StreamSlots
from service.api.openapi import openapi_endpoint
from service.api.present import error_response
from service.api.sse import HANDOFF, EventStream
from service.connections import redis_client
from service.errors import AnswerCut, ServiceError, ServiceUnavailable
from service.jobs.backlog import Backlogs
from service.jobs.cache import ContentCache
from service.jobs.events import EventHub
from service.jobs.pdf_builder import PdfBuilder
from service.jobs.store import JobStore
from service.ocr import installed_languages
from service.ops.dashboard import SharedFigures
from service.ops.stream_counts import StreamCounts
from settings import Settings, get_settings

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("service.access")

STATIC_DIR = Path(__file__).parent.parent / "static"
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


async def service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    return error_response(exc)


async def redis_unavailable(request: Request, exc: Exception) -> Response:
    logger.warning("Redis unavailable during %s %s: %s", request.method, request.url.path, exc)
    return error_response(ServiceUnavailable("Redis is not reachable; retry shortly.", retry_after_s=5))


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed", 400: "bad_request", 413: "payload_too_large"}
    error = ServiceError(exc.detail or "Request failed.", code=codes.get(exc.status_code, "bad_request"))
    error.status_code = exc.status_code
    response = error_response(error)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def unexpected_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, AnswerCut):
        # Its answer began already, so nothing made here is sent; it goes on to the edge, which cuts it.
        return Response(status_code=500)
    logger.exception("unexpected error in %s %s", request.method, request.url.path)
    error = ServiceError("The server failed to handle this request.")
    return error_response(error)


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


# What uvicorn logs, as an error, when the app returns with its answer's body unfinished; it then closes
# the connection. That is how the edge cuts an answer (AnswerCut), so for those it is not an error.
UNFINISHED_ANSWER = "ASGI callable returned without completing response."
_cut_here: ContextVar[bool] = ContextVar("answer_cut", default=False)


class _CutAnswersAreNotErrors(logging.Filter):
    """Drops uvicorn's UNFINISHED_ANSWER for an answer the edge cut on purpose (and logged why). uvicorn
    logs it in the request's own task, just after the app returns, so the mark set there is seen."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (_cut_here.get() and record.getMessage() == UNFINISHED_ANSWER)


CUT_ANSWERS_ARE_NOT_ERRORS = _CutAnswersAreNotErrors()


class Edge:
    """Outside every other layer: nosniff on every response, one access-log line per request with its
    duration, the life of the event streams once opened (service/api/sse.py, `HANDOFF`), and the end
    of an answer that cannot be finished (AnswerCut): the server closes its connection."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        logging.getLogger("uvicorn.error").addFilter(CUT_ANSWERS_ARE_NOT_ERRORS)  # once: it is one object

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0
        handoff: list[EventStream] = []
        scope[HANDOFF] = handoff

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-content-type-options", b"nosniff"))
                message["headers"] = headers
            await send(message)

        try:
            try:
                await self.app(scope, receive, send_with_headers)
            finally:
                del scope[HANDOFF], send_with_headers  # neither is kept for a stream's life
            if handoff:
                await handoff.pop().stream(scope, receive, send)
        except AnswerCut as exc:
            # Returning with the body unfinished: uvicorn closes the connection without the body's end.
            _cut_here.set(True)
            logger.info("cut the answer to %s %s: %s", scope["method"], scope["path"], exc)
        finally:
            for stream in handoff:  # opened, but the app failed after: its slot and subscription go back
                stream.release()
            access_logger.info(
                "%s %s %d %.1fms",
                scope["method"],
                scope["path"],
                status,
                (time.perf_counter() - started) * 1000,
            )


ROUTES = [
    Route("/", index, methods=["GET"]),
    Route("/dashboard", dashboard, methods=["GET"]),
    Route("/ops/events", ops.ops_events, methods=["GET"]),
    Route("/jobs", jobs.create_job, methods=["POST"]),
    Route("/jobs", jobs.list_jobs, methods=["GET"]),
    Route("/jobs/{job_id}", jobs.get_job, methods=["GET"]),
    Route("/jobs/{job_id}", jobs.delete_job, methods=["DELETE"]),
    Route("/jobs/{job_id}/events", streams.job_events, methods=["GET"]),
    Route("/jobs/{job_id}/result", results.get_result, methods=["GET"]),
    Route("/jobs/{job_id}/pages", pages.list_pages, methods=["GET"]),
    Route("/jobs/{job_id}/pages/{number}", pages.get_page, methods=["GET"]),
    Route("/events", streams.tenant_events, methods=["GET"]),
    Route("/events/link", streams.feed_link, methods=["GET"]),
    Route("/cache/stats", cache.cache_stats, methods=["GET"]),
    Route("/cache", cache.clear_cache, methods=["DELETE"]),
    Route("/healthz", ops.healthz, methods=["GET"]),
    Route("/readyz", ops.readyz, methods=["GET"]),
    Route("/metrics", ops.metrics, methods=["GET"]),
    Route("/openapi.json", openapi_endpoint, methods=["GET"]),
    Mount("/static", RevalidatedStaticFiles(directory=STATIC_DIR), name="static"),
]

EXCEPTION_HANDLERS = {
    ServiceError: service_error,
    RedisConnectionError: redis_unavailable,
    RedisTimeoutError: redis_unavailable,
    HTTPException: http_error,
    Exception: unexpected_error,
}


def lifespan_for(settings: Settings) -> Callable[[Starlette], AbstractAsyncContextManager[dict[str, Any]]]:
    """The web process's clients (Redis, the event hub), made at start and closed at shutdown."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        redis = redis_client(settings)
        # The hub's connection waits on pub/sub messages: it must not time out while idle.
        hub_redis = redis_client(settings, socket_timeout_s=None)
        store = JobStore(redis, ttl_s=settings.result_ttl_s)
        hub = EventHub(hub_redis)
        await hub.start()
        stream_counts = StreamCounts(redis, lambda: hub.clients)
        await stream_counts.start()
        if settings.open_mode:
            logger.warning("API_KEYS is unset: open mode, every caller is the tenant 'public'")
        services = Services(
            settings=settings,
            redis=redis,
            store=store,
            cache=ContentCache(redis, store),
            hub=hub,
            backlogs=Backlogs(redis, hub.connected.is_set),
            installed_langs=installed_languages(),
            streams=StreamSlots(settings.max_streams_per_tenant),
            stream_counts=stream_counts,
            dashboard=SharedFigures(redis, stream_counts),
            # A build gets the time and memory a worker gives one page's whole run.
            pdf_builder=PdfBuilder(
                timeout_s=settings.page_timeout_s, memory_bytes=settings.page_memory_mb * 1024 * 1024
            ),
        )
        app.state.services = services
        try:
            yield {"services": services}
        finally:
            services.dashboard.close()
            await stream_counts.stop()
            await hub.stop()
            await hub_redis.aclose()
            await redis.aclose()

    return lifespan


def middleware_for(settings: Settings) -> list[Middleware]:
    middleware = []
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
    return middleware


def create_app(settings: Settings | None = None) -> Edge:
    """The Starlette app (its error handling, CORS, router) behind `Edge`, which uvicorn calls."""
    settings = settings or get_settings()
    return Edge(
        Starlette(
            routes=ROUTES,
            middleware=middleware_for(settings),
            lifespan=lifespan_for(settings),
            exception_handlers=EXCEPTION_HANDLERS,
        )
    )
