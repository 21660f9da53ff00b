"""Units of work: the arq functions the worker runs, and how a document is cut into them.

The web enqueues these and the worker defines them; both name them from here, so a renamed
function cannot leave a queue of jobs that nothing runs.
"""

from __future__ import annotations

from service.params import parse_pages, select_pages

# arq function names (service/worker/ defines them; worker.py registers them under these names)
OCR_PAGES = "ocr_pages"
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


def page_ranges(pages_total: int, split_pages: int) -> list[tuple[int, int]]:
    """[first, last) ranges of at most `split_pages` of the job's `pages_total` pages, each run as its
    own arq job. They are positions in `job_page_indices`: with no selection, the pages' own indices."""
    return [(first, min(first + split_pages, pages_total)) for first in range(0, pages_total, split_pages)]


def encode_ranges(ranges: list[tuple[int, int]]) -> str:
    """How a job's ranges are kept in its meta hash: `0-40,40-80,...`."""
    return ",".join(f"{first}-{last}" for first, last in ranges)


def stored_ranges(meta: dict[str, str]) -> list[tuple[int, int]]:
    """The ranges a job was split into, read back from its meta hash (none before a download finished)."""
    return [(int(first), int(last)) for first, last in (r.split("-") for r in meta.get("ranges", "").split(",") if r)]


def range_arq_id(job_id: str, first: int) -> str:
    """The arq job id of the range starting at page `first`: one id per range, so enqueueing it twice is a no-op."""
    return f"{job_id}:{first}"


def download_arq_id(job_id: str) -> str:
    return job_id


def webhook_arq_id(job_id: str) -> str:
    return f"{job_id}:webhook"
