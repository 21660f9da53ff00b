"""Webhooks: the final job object POSTed to `webhook_url`, signed, by its own arq job.

Delivery never blocks OCR: the change that ends the job enqueues `deliver_webhook` (arq id
`<job>:webhook`, service/jobs/scripts.py), once per job however it ends, with the job as it ended: a
job deleted before its delivery ran is still POSTed. A failed delivery is retried
with exponential backoff; its state is kept on the job (`webhook`) so clients can see it, and a
delivery run again after its outcome was recorded does not POST again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Any

import httpx
from arq import Retry

from service.errors import ServiceError, UnitFailed
from service.jobs.record import JobRef
from service.netguard import post
from service.ops import metrics
from service.worker.guard import ends_its_job
from service.worker.state import WorkerState, retry_delay_s

logger = logging.getLogger(__name__)

MAX_DELIVERY_TRIES = 8
SIGNATURE_HEADER = "X-Signature-256"


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def give_up_delivery(state: WorkerState, ref: JobRef, error: UnitFailed) -> str:
    await _record(state, ref.tenant, ref.job["id"], {"status": "failed", "error": error.message})
    await metrics.record_webhook(state.redis, "failed")
    return "failed"


@ends_its_job("webhook", give_up=give_up_delivery)
async def deliver_webhook(
    ctx: dict[str, Any], job_id: str, ended: dict[str, Any] | None = None, url: str | None = None
) -> str:
    """POST `ended` (the job as it ended) to `url`; both travel with the delivery (service/jobs/scripts.py),
    so a job deleted before its delivery ran still gets it. The outcome is recorded on the job while it exists."""
    state: WorkerState = ctx["state"]
    ref = await state.store.get(job_id)
    if ended is None or url is None:
        # Queued before deliveries carried their job: read it from the store.
        if ref is None or not ref.meta.get("webhook_url"):
            return "gone"
        ended, url = ref.job, ref.meta["webhook_url"]
    if ref is not None and (ref.job.get("webhook") or {}).get("status") in ("delivered", "failed"):
        # Run again after its worker died having recorded the outcome: the receiver has its one POST.
        return "done-already"
    tenant = ref.tenant if ref is not None else None
    job = ended | {"links": {"self": f"/jobs/{job_id}", "result": f"/jobs/{job_id}/result"}}
    job.pop("webhook", None)
    body = json.dumps(job, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "ocr-service-webhook"}
    if state.settings.webhook_secret:
        headers[SIGNATURE_HEADER] = sign(body, state.settings.webhook_secret)
    attempt = ctx["job_try"]
    error: str | None = None
    try:
        async with httpx.AsyncClient(timeout=10.0, follow_redirects=False, trust_env=False) as client:
            response = await post(
                client,
                url,
                content=body,
                headers=headers,
                allow_private=state.settings.allow_private_networks,
            )
        if not 200 <= response.status_code < 300:
            error = f"the receiver answered HTTP {response.status_code}"
    except ServiceError as exc:
        # netguard refused the URL (an internal address, no usable host): it will not become acceptable.
        error = exc.message
        attempt = MAX_DELIVERY_TRIES
    except (httpx.HTTPError, OSError) as exc:
        error = f"{exc.__class__.__name__}: {exc}"
    if error is None:
        await _record(state, tenant, job_id, {"status": "delivered", "attempts": attempt, "error": None})
        await metrics.record_webhook(state.redis, "delivered")
        logger.info("job %s tenant=%s webhook delivered (attempt %d)", job_id, tenant, attempt)
        return "delivered"
    if attempt >= MAX_DELIVERY_TRIES:
        await _record(state, tenant, job_id, {"status": "failed", "attempts": attempt, "error": error})
        await metrics.record_webhook(state.redis, "failed")
        logger.warning("job %s tenant=%s webhook failed for good: %s", job_id, tenant, error)
        return "failed"
    await _record(state, tenant, job_id, {"status": "retrying", "attempts": attempt, "error": error})
    await metrics.record_webhook(state.redis, "retried")
    raise Retry(defer=retry_delay_s(state.settings, attempt))


async def _record(state: WorkerState, tenant: str | None, job_id: str, webhook: dict[str, Any]) -> None:
    """The delivery's state on the job, for clients to see; nothing to record once the job is deleted."""
    if tenant is not None:
        await state.store.change(job_id, tenant, {"webhook": webhook})
