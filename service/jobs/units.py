"""Units of work: the arq functions the worker runs, and which pages of a document a job processes.

The web enqueues the arq units and the worker defines them; both name them from here, so a renamed
function cannot leave a queue of jobs that nothing runs. Pages are not arq jobs: they wait in the fair
scheduler (service/jobs/schedule.py), one entry per page.
"""

from __future__ import annotations

from service.params import parse_pages, select_pages

# arq function names (service/worker/ defines them; worker.py registers them under these names)
FETCH_DOCUMENT = "fetch_document"
DELIVER_WEBHOOK = "deliver_webhook"

# arq drops a unit still waiting when its queue entry expires (a day by default), and the cleanup cron
# would then re-queue it, at the back, and count that towards MAX_TRIES: a long queue must not do that to
# a live job. Enqueue every unit with this instead (ms, arq's `_expires`).
UNIT_EXPIRES_MS = 30 * 24 * 3600 * 1000


def job_page_indices(meta: dict[str, str], pages_total: int) -> list[int]:
    """The 0-based indices, ascending, of the document's pages the job processes: the ones its `pages=`
    selection names (meta `pages`, written at submit), or all of them.

    `pages_total` is the document's page count. Once the document was checked its meta records that
    count (`document_pages`), and the record wins: so the job's own `pages_total` (the number of
    selected pages) may be passed too.
    """
    document_pages = int(meta.get("document_pages") or pages_total)
    spec = meta.get("pages")
    if not spec:
        return list(range(document_pages))
    return select_pages(parse_pages(spec), document_pages)


def nothing_selected(spec: str, document_pages: int) -> str:
    """Why a selection is refused once the document's page count is known."""
    return f"pages {spec} selects none of the document's {document_pages} pages."


def download_arq_id(job_id: str) -> str:
    return job_id


def webhook_arq_id(job_id: str) -> str:
    return f"{job_id}:webhook"
