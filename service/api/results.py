"""`GET /jobs/<id>/result`: the result as JSON, plain text or a searchable PDF."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from service.api.auth import tenant_from_header
from service.api.context import Services, services_of
from service.api.present import NO_STORE, json_response, present
from service.errors import JobFailure, NotReady, OcrCancelled, failed_job_status
from service.jobs.record import CANCELLED, COMPLETED, FAILED
from service.jobs.results import StoredResult, open_result, searchable_pdf_input
from service.params import parse_choice

FORMATS = ("json", "text", "pdf")


async def get_result(request: Request) -> Response:
    services = services_of(request)
    tenant = tenant_from_header(request, services.settings)
    ref = await services.store.get_for_tenant(request.path_params["job_id"], tenant)
    fmt = parse_choice(
        request.query_params.get("format", "json"), "format", FORMATS, message="format must be json, text or pdf."
    )
    job = ref.job
    if job["status"] == FAILED:
        error = job["error"] or {"code": JobFailure.code, "message": "The job failed."}
        status_code = failed_job_status(error["code"])
        return json_response({"error": error, "job": present(services, tenant, job)}, status_code, NO_STORE)
    if job["status"] != COMPLETED:
        unfinished = (
            OcrCancelled("The job was cancelled; it has no result.")
            if job["status"] == CANCELLED
            else NotReady(f"The job is {job['status']}; its result is not ready.")
        )
        body = {"error": unfinished.to_dict(), "job": present(services, tenant, job)}
        return json_response(body, unfinished.status_code, NO_STORE)
    result = await open_result(services.redis, job["id"])
    if fmt == "text":
        return StreamingResponse(result.text(), media_type="text/plain; charset=utf-8", headers=NO_STORE)
    if fmt == "pdf":
        pdf = await _searchable_pdf(services, result, ref.meta["media_type"])
        stem = job["filename"].rsplit(".", 1)[0] or "document"
        headers = NO_STORE | {"Content-Disposition": f'attachment; filename="{_ascii(stem)}.searchable.pdf"'}
        return Response(pdf, media_type="application/pdf", headers=headers)
    return StreamingResponse(result.json(), media_type="application/json", headers=NO_STORE)


async def _searchable_pdf(services: Services, result: StoredResult, media_type: str) -> bytes:
    async with services.pdf_builder.turn():
        document, pages = await searchable_pdf_input(services.redis, result)
        return await services.pdf_builder.build(document, media_type, pages)


def _ascii(name: str) -> str:
    return "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)
