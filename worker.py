"""The arq worker: `python worker.py` (the Procfile's `worker`). `arq worker.WorkerSettings` runs arq's own
Worker class instead, without service/worker/queue_worker.py's lease on every unit (a unit taken by a
worker that dies stays blocked for its whole timeout), its riding out of Redis restarts, and its saving
on every poll."""

from __future__ import annotations

from typing import ClassVar

from arq import cron, func
from arq.connections import RedisSettings
from arq.cron import CronJob
from arq.worker import Function, get_kwargs

from service.connections import OUTAGE_ERRORS, deserialize_job, outage_retry, serialize_job
from service.jobs.units import DELIVER_WEBHOOK, FETCH_DOCUMENT
from service.logs import configure_logging
from service.ops.startup_checks import check_worker_environment
from service.worker.cleanup import cleanup
from service.worker.downloads import fetch_document
from service.worker.lifecycle import shutdown, startup
from service.worker.queue_worker import IDLE_POLL_S, Worker
from service.worker.webhooks import MAX_DELIVERY_TRIES, deliver_webhook
from settings import load_or_exit

settings = load_or_exit()


def _redis_settings() -> RedisSettings:
    """arq's own connection retries through a Redis outage instead of ending the worker."""
    redis_settings = settings.redis_settings()
    redis_settings.retry = outage_retry()
    redis_settings.retry_on_error = list(OUTAGE_ERRORS)
    return redis_settings


class WorkerSettings:
    functions: ClassVar[list[Function]] = [
        # Pages are not arq jobs: the worker's page loop claims them from the fair scheduler
        # (service/worker/claims.py, started by on_startup). max_tries leaves room beyond MAX_TRIES: a
        # download handed back on SIGTERM counts as a try too.
        func(fetch_document, name=FETCH_DOCUMENT, timeout=120, max_tries=settings.max_tries + 10),
        # Room for MAX_TRIES unforeseen failures too (service/worker/guard.py), which end the delivery themselves.
        func(
            deliver_webhook,
            name=DELIVER_WEBHOOK,
            timeout=60,
            max_tries=max(MAX_DELIVERY_TRIES, settings.max_tries) + 2,
        ),
    ]
    cron_jobs: ClassVar[list[CronJob]] = [cron(cleanup, second={0, 30}, run_at_startup=True, unique=True, timeout=60)]
    on_startup = startup
    on_shutdown = shutdown
    redis_settings = _redis_settings()
    job_serializer = serialize_job
    job_deserializer = deserialize_job
    max_jobs = settings.worker_max_jobs
    poll_delay = settings.worker_poll_delay_s
    # The web's /readyz reads the workers' own heartbeat (service/worker/lifecycle.py); arq's health-check
    # key is kept fresh too for `arq --check`.
    health_check_interval = 10
    # Job results live in our own keys; arq's result copies would only be more keys to expire.
    keep_result = 0
    # A download or delivery cancelled by SIGTERM goes straight back to the queue for the next worker.
    retry_jobs = True


def main() -> None:
    load_or_exit()
    configure_logging(settings)
    check_worker_environment(settings)
    Worker(**get_kwargs(WorkerSettings), lease_s=settings.lease_s, idle_poll_s=IDLE_POLL_S).run()  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
