"""`/cache`: the tenant's content cache, its figures and emptying it."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from service.api.auth import tenant_from_header
from service.api.context import services_of
from service.api.present import json_response


async def cache_stats(request: Request) -> Response:
    services = services_of(request)
    tenant = tenant_from_header(request, services.settings)
    return json_response(await services.cache.stats(tenant))


async def clear_cache(request: Request) -> Response:
    services = services_of(request)
    tenant = tenant_from_header(request, services.settings)
    await services.cache.clear(tenant)
    return Response(status_code=204)
