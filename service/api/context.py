"""What every handler reaches through the request: the web process's clients and settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from arq.connections import ArqRedis
from starlette.requests import Request

from service.errors import TooManyStreams
from service.jobs.backlog import Backlogs
from service.jobs.cache import ContentCache
from service.jobs.events import EventHub
from service.jobs.pdf_builder import PdfBuilder
from service.jobs.store import JobStore
from service.ops.dashboard import SharedFigures
from service.ops.stream_counts import StreamCounts
from settings import Settings


class StreamSlots:
    """How many streams each tenant holds open on this process, against MAX_STREAMS_PER_TENANT: one
    tenant's runaway client must not take every connection the process can hold."""

    def __init__(self, per_tenant: int) -> None:
        self.per_tenant = per_tenant
        self._open: dict[str, int] = {}

    def take(self, tenant: str) -> Callable[[], None]:
        """Take a slot (or refuse with 429); returns what gives it back, once however often it is called."""
        if self._open.get(tenant, 0) >= self.per_tenant:
            raise TooManyStreams(
                f"This tenant already has {self.per_tenant} streams open here; close some first.", retry_after_s=5
            )
        self._open[tenant] = self._open.get(tenant, 0) + 1
        return _Slot(self._open, tenant)


class _Slot:
    """One stream's slot; calling it gives it back. An object of two fields, not a closure: a process
    holds one per open stream."""

    __slots__ = ("_open", "_tenant")

    def __init__(self, open_: dict[str, int], tenant: str) -> None:
        self._open = open_
        self._tenant: str | None = tenant

    def __call__(self) -> None:
        tenant, self._tenant = self._tenant, None
        if tenant is not None:
            self._open[tenant] -= 1
            if not self._open[tenant]:
                del self._open[tenant]


@dataclass(frozen=True)
class Services:
    """Made once by the app's lifespan (service/api/app.py)."""

    settings: Settings
    redis: ArqRedis
    store: JobStore
    cache: ContentCache
    hub: EventHub
    backlogs: Backlogs
    installed_langs: frozenset[str]
    streams: StreamSlots
    stream_counts: StreamCounts
    dashboard: SharedFigures
    pdf_builder: PdfBuilder


def services_of(request: Request) -> Services:
    services: Services = request.state.services
    return services
