"""What every handler reaches through the request: the web process's clients and settings."""

from __future__ import annotations

from dataclasses import dataclass

from arq.connections import ArqRedis
from starlette.requests import Request

from service.jobs.cache import ContentCache
from service.jobs.events import EventHub
from service.jobs.pdf_builder import PdfBuilder
from service.jobs.store import JobStore
from settings import Settings


@dataclass(frozen=True)
class Services:
    """Made once by the app's lifespan (service/api/app.py)."""

    settings: Settings
    redis: ArqRedis
    store: JobStore
    cache: ContentCache
    hub: EventHub
    installed_langs: frozenset[str]
    pdf_builder: PdfBuilder


def services_of(request: Request) -> Services:
    services: Services = request.state.services
    return services
