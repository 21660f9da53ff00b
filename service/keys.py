"""The Redis key layout: every key the service writes, in one place.

Per job (none expires while the job is queued or running; all expire RESULT_TTL after its end, set by
the very change that ends it, see service/jobs/scripts.py):
    ocr:job:<id>          the public job object, JSON
    ocr:meta:<id>         hash: tenant, media_type, content_key, webhook_url, ...
    ocr:seq:<id>          the job's event counter (the SSE `id`)
    ocr:events:<id>       list of the job's recent events, for Last-Event-ID resume (a page event only
                          names its page: the page is in ocr:pages:<id>)
    ocr:doc:<id>          the document bytes, readable by every worker
    ocr:pages:<id>        hash: page number -> the page's record, its fields and words (service/ocr/record.py;
                          one field per page: retries never redo a page); its text, words, hOCR, ALTO and
                          searchable-PDF text layer are all made from it
    ocr:text-bytes:<id>   bytes the job's pages store, against MAX_DOCUMENT_TEXT_MB
    ocr:result:<id>       the result's own fields (id, pages_total, lang, duration_ms), JSON; its text and
                          pages are served from ocr:pages:<id> in page order, never joined in one value
    ocr:sched:pages:<id>  sorted set of the job's pages waiting for a worker (service/jobs/schedule.py);
                          taken out, not expired, by the change that ends the job
    ocr:finalize:<id>     set once by whichever range assembles the result
    ocr:cancel:<id>       present once the job was asked to stop
    ocr:attempts:<id>     hash: unit -> how often it failed unexpectedly, or was re-queued by the cron;
                          try:<index> -> how often a page went back to wait (a lapsed lease, a hand-back, a retry)

Per tenant:
    ocr:tenant-jobs:<t>    sorted set of job ids by creation time (listing); pruned by the cleanup cron
    ocr:tenant-active:<t>  set of queued + running job ids (quota); never expires, empty (gone) when idle
    ocr:feed:<t>           list of recent events of all the tenant's jobs (the /events feed)
    ocr:feed-seq:<t>       the feed's event counter
    (tenant-jobs, feed and feed-seq never expire while the tenant has a live job; they get their TTL
    when its last live job ends)
    ocr:cache:<t>:<hash>   job id of the earlier result for the same bytes and options
    ocr:cache-stats:<t>    hash: hits, misses
    ocr:idempotency:<t>:<sha256 of the key>  "<job id> <fingerprint of the submission>" for an
                           Idempotency-Key: lives exactly as long as that job (its meta names it, so the
                           change that ends the job expires it and deleting the job deletes it)

The scheduler (service/jobs/schedule.py; its scripts spell these keys through the functions below):
    ocr:sched:tenants:<priority>         sorted set: the turn of tenants with waiting pages
    ocr:sched:jobs:<priority>:<tenant>   sorted set: the turn of the tenant's jobs with waiting pages
    ocr:sched:since                      hash: job id -> ms since it has had waiting pages
    ocr:sched:turn                       counter of claims, the turns' clock (gone when nothing waits)
    ocr:sched:leases                     sorted set: "<job id>:<page index>" -> ms its worker's claim lapses
    ocr:sched:batch                      hash: job id -> pages a claim takes of it at once (text-layer jobs)
    ocr:sched:wake                       channel: pages are waiting (idle workers claim)
    (a job's entries leave with its end; a tenant's lists are gone when it has nothing waiting)

Process-wide:
    ocr:workers            sorted set: worker id -> time of its last heartbeat
    ocr:metrics            hash of counters shared by web and workers (jobs by status, pages by source,
                           OCR seconds histogram buckets, webhook deliveries), read by /metrics
"""

from __future__ import annotations

import hashlib

PREFIX = "ocr:"
EVENTS_CHANNEL = PREFIX + "events"
CANCEL_CHANNEL = PREFIX + "cancel"
WORKERS = PREFIX + "workers"
METRICS = PREFIX + "metrics"
SCHED_LEASES = PREFIX + "sched:leases"
SCHED_SINCE = PREFIX + "sched:since"
SCHED_TURN = PREFIX + "sched:turn"
SCHED_BATCH = PREFIX + "sched:batch"
SCHED_WAKE_CHANNEL = PREFIX + "sched:wake"


def job(job_id: str) -> str:
    return f"{PREFIX}job:{job_id}"


def meta(job_id: str) -> str:
    return f"{PREFIX}meta:{job_id}"


def seq(job_id: str) -> str:
    return f"{PREFIX}seq:{job_id}"


def events(job_id: str) -> str:
    return f"{PREFIX}events:{job_id}"


def document(job_id: str) -> str:
    return f"{PREFIX}doc:{job_id}"


def pages(job_id: str) -> str:
    return f"{PREFIX}pages:{job_id}"


def text_bytes(job_id: str) -> str:
    return f"{PREFIX}text-bytes:{job_id}"


def result(job_id: str) -> str:
    return f"{PREFIX}result:{job_id}"


def sched_pages(job_id: str) -> str:
    return f"{PREFIX}sched:pages:{job_id}"


def finalize(job_id: str) -> str:
    return f"{PREFIX}finalize:{job_id}"


def cancel(job_id: str) -> str:
    return f"{PREFIX}cancel:{job_id}"


def attempts(job_id: str) -> str:
    return f"{PREFIX}attempts:{job_id}"


def job_keys(job_id: str) -> list[str]:
    """Every per-job key: expired together at the job's end, deleted together with the job."""
    return [
        f(job_id)
        for f in (
            job,
            meta,
            seq,
            events,
            document,
            pages,
            text_bytes,
            result,
            sched_pages,
            finalize,
            cancel,
            attempts,
        )
    ]


def sched_tenants(priority: str) -> str:
    return f"{PREFIX}sched:tenants:{priority}"


def sched_jobs(priority: str, tenant: str) -> str:
    return f"{PREFIX}sched:jobs:{priority}:{tenant}"


def tenant_jobs(tenant: str) -> str:
    return f"{PREFIX}tenant-jobs:{tenant}"


def tenant_active(tenant: str) -> str:
    return f"{PREFIX}tenant-active:{tenant}"


def feed(tenant: str) -> str:
    return f"{PREFIX}feed:{tenant}"


def feed_seq(tenant: str) -> str:
    return f"{PREFIX}feed-seq:{tenant}"


def cache_entry(tenant: str, content_hash: str) -> str:
    return f"{PREFIX}cache:{tenant}:{content_hash}"


def cache_pattern(tenant: str) -> str:
    return f"{PREFIX}cache:{tenant}:*"


def idempotency(tenant: str, key: str) -> str:
    # Hashed: the key is the client's text (up to 200 characters); the name stays short and plain.
    return f"{PREFIX}idempotency:{tenant}:{hashlib.sha256(key.encode()).hexdigest()}"


def cache_stats(tenant: str) -> str:
    return f"{PREFIX}cache-stats:{tenant}"
