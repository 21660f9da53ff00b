"""The web process: `python -m service.web` (the Procfile's `web`), uvicorn serving the app on $PORT."""

from __future__ import annotations

import resource

import uvicorn

from service.logs import configure_logging
from service.ops.startup_checks import check_web_environment
from settings import load_or_exit


def raise_open_file_limit() -> None:
    """Each SSE client holds a socket: lift the soft descriptor limit (often 1024) to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard))


def main() -> None:
    settings = load_or_exit()
    configure_logging(settings)
    raise_open_file_limit()
    check_web_environment(settings)
    uvicorn.run(
        "service.api.app:create_app",
        factory=True,
        host="0.0.0.0",
        port=settings.port,
        # Behind Heroku's router or a compose proxy: trust X-Forwarded-* so client addresses are real.
        proxy_headers=True,
        forwarded_allow_ips="*",
        # Heroku sends SIGKILL 30 s after SIGTERM; leave room to close streams cleanly.
        timeout_graceful_shutdown=10,
        log_config=None,
    )


if __name__ == "__main__":
    main()
