"""The web: `python -m service.web` (the Procfile's `web`), uvicorn serving the app on $PORT.

WEB_CONCURRENCY > 1 runs that many web processes on the one port (uvicorn's supervisor starts them and
the kernel spreads connections among them). Each process is whole: its own event hub (one Redis
subscription), its own Redis pool of REDIS_MAX_CONNECTIONS, its own streams; they share nothing but
Redis, through which every one of them gets every event.
"""

from __future__ import annotations

import gc
import resource

import uvicorn

from service.api.app import Edge, create_app
from service.logs import configure_logging
from service.ops.startup_checks import check_web_environment
from settings import load_or_exit


def raise_open_file_limit() -> None:
    """Each SSE client holds a socket: lift the soft descriptor limit (often 1024) to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard))


def create_web_app() -> Edge:
    """One web process's app: uvicorn calls this in each of the WEB_CONCURRENCY processes, which start
    with a fresh interpreter and so set up their own logging."""
    settings = load_or_exit()
    configure_logging(settings)
    app = create_app(settings)
    tune_garbage_collector()
    return app


# A web process holding 10,000 streams has half a million objects that live as long as their streams,
# and each event sent to all of them makes tens of thousands that live for one loop turn: with the
# default thresholds (700, 10, 10) the collector kept walking the long-lived ones. These cut the web's
# CPU per event per stream by about a fifth (29-31 us against 35-44 us, BENCHMARKS.md section 12).
GC_THRESHOLDS = (20_000, 50, 100)


def tune_garbage_collector() -> None:
    """What exists once the app is built (modules, routes, settings) is never garbage: leave it out of
    every collection (`gc.freeze`), and collect the young generations less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def main() -> None:
    settings = load_or_exit()
    configure_logging(settings)
    raise_open_file_limit()
    check_web_environment(settings)
    uvicorn.run(
        "service.web:create_web_app",
        factory=True,
        # Given explicitly: uvicorn would otherwise read WEB_CONCURRENCY itself, unvalidated.
        workers=settings.web_concurrency,
        host="0.0.0.0",
        port=settings.port,
        # Behind Heroku's router or a compose proxy: trust X-Forwarded-* so client addresses are real.
        proxy_headers=True,
        forwarded_allow_ips="*",
        # httptools (uvicorn[standard]): its per-connection state is smaller than h11's, which matters
        # at 10,000 streams. No `limit_concurrency`: past it uvicorn answers 503, and a 503 here means
        # Redis is down; a busy process makes clients wait. The listen backlog stays uvicorn's 2048
        # (capped by the kernel's somaxconn): a burst of 5,000 connecting at once is served.
        http="httptools",
        # Heroku sends SIGKILL 30 s after SIGTERM; leave room to close streams cleanly.
        timeout_graceful_shutdown=10,
        log_config=None,
    )


if __name__ == "__main__":
    main()
