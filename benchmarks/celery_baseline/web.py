"""The baseline's HTTP side: `python -m benchmarks.celery_baseline.web` (env PORT, REDIS_URL).

POST /jobs (raw body) stores the document and enqueues the task: 202 {"id"}; GET /jobs/<id> answers the
task's state from Celery's result backend, which clients poll.
"""

from __future__ import annotations

import os
import uuid

import uvicorn
from celery.result import AsyncResult
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from benchmarks.celery_baseline.tasks import DOCUMENT_TTL_S, _redis, document_key, ocr_document
from benchmarks.celery_baseline.tasks import app as celery_app

STATES = {"PENDING": "queued", "STARTED": "running", "PROGRESS": "running", "SUCCESS": "completed",
          "FAILURE": "failed", "RETRY": "running", "REVOKED": "cancelled"}


async def create_job(request: Request) -> JSONResponse:
    body = await request.body()
    if not body:
        return JSONResponse({"error": {"code": "bad_request", "message": "empty body"}}, 400)
    upload_id = uuid.uuid4().hex
    options = {"lang": request.query_params.get("lang", "eng"), "dpi": request.query_params.get("dpi", "300")}

    def enqueue() -> str:
        _redis().set(document_key(upload_id), body, ex=DOCUMENT_TTL_S)
        return str(ocr_document.delay(upload_id, options).id)

    task_id = await run_in_threadpool(enqueue)
    return JSONResponse({"id": task_id, "status": "queued"}, 202, headers={"Location": f"/jobs/{task_id}"})


async def get_job(request: Request) -> JSONResponse:
    task_id = request.path_params["task_id"]

    def read() -> dict[str, object]:
        result = AsyncResult(task_id, app=celery_app)
        state = result.state
        job: dict[str, object] = {"id": task_id, "status": STATES.get(state, state.lower())}
        info = result.info
        if state == "PROGRESS" and isinstance(info, dict):
            job |= {"pages_done": info.get("pages_done"), "pages_total": info.get("pages_total")}
        if state == "SUCCESS" and isinstance(info, dict):
            job["pages_total"] = info.get("pages_total")
        if result.date_done is not None:
            job["finished_at"] = result.date_done.isoformat()
        return job

    return JSONResponse(await run_in_threadpool(read))


routes = [
    Route("/jobs", create_job, methods=["POST"]),
    Route("/jobs/{task_id}", get_job, methods=["GET"]),
]
application = Starlette(routes=routes)


def main() -> None:
    uvicorn.run(application, host="127.0.0.1", port=int(os.environ.get("PORT", "8001")), log_level="warning")


if __name__ == "__main__":
    main()
