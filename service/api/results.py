"""`GET /jobs/<id>/result`: the result as JSON (optionally with every page's words), plain text, a
searchable PDF, hOCR or ALTO."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from service.api.auth import tenant_from_header
from service.api.context import Services, services_of
from service.api.present import NO_STORE, StreamedAnswer, json_response, present
from service.errors import JobFailure, NotReady, OcrCancelled, failed_job_status
from service.jobs.record import CANCELLED, COMPLETED, FAILED
from service.jobs.results import StoredResult, open_result, searchable_pdf_input
from service.ocr import alto, hocr
from service.params import parse_choice

FORMATS = ("json", "text", "pdf", "hocr", "alto")
DETAILS = ("words",)


def with_words(request: Request) -> bool:
    """`?detail=words`: each page object carries its words."""
    raw = request.query_params.get("detail")
    return raw is not None and parse_choice(raw, "detail", DETAILS, message="detail must be words.") == "words"


async def get_result(request: Request) -> Response:
    services = services_of(request)
    tenant = tenant_from_header(request, services.settings)
    ref = await services.store.get_for_tenant(request.path_params["job_id"], tenant)
    fmt = parse_choice(
        request.query_params.get("format", "json"),
        "format",
        FORMATS,
        message="format must be json, text, pdf, hocr or alto.",
    )
    words = with_words(request)
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
    media_type = ref.meta["media_type"]
    if fmt == "text":
        return StreamedAnswer(result.text(), media_type="text/plain; charset=utf-8", headers=NO_STORE)
    if fmt == "pdf":
        pdf = await _searchable_pdf(services, result, media_type)
        headers = NO_STORE | _attachment(job["filename"], "searchable.pdf")
        return Response(pdf, media_type="application/pdf", headers=headers)
    if fmt == "hocr":
        headers = NO_STORE | _attachment(job["filename"], "hocr.html")
        return StreamedAnswer(
            result.hocr(media_type=media_type, dpi=job["options"]["dpi"]),
            media_type=f"{hocr.MEDIA_TYPE}; charset=utf-8",
            headers=headers,
        )
    if fmt == "alto":
        headers = NO_STORE | _attachment(job["filename"], "alto.xml")
        return StreamedAnswer(
            result.alto(media_type=media_type, filename=job["filename"]),
            media_type=f"{alto.MEDIA_TYPE}; charset=utf-8",
            headers=headers,
        )
    return StreamedAnswer(result.json(with_words=words), media_type="application/json", headers=NO_STORE)


async def _searchable_pdf(services: Services, result: StoredResult, media_type: str) -> bytes:
    async with services.pdf_builder.turn():
        document, pages = await searchable_pdf_input(services.redis, result)
        return await services.pdf_builder.build(document, media_type, pages)


def _attachment(filename: str, suffix: str) -> dict[str, str]:
    stem = filename.rsplit(".", 1)[0] or "document"
    return {"Content-Disposition": f'attachment; filename="{_ascii(stem)}.{suffix}"'}


def _ascii(name: str) -> str:
    return "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)
