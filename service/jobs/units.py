"""Units of work: the arq functions the worker runs, and how a document is cut into them.

The web enqueues these and the worker defines them; both name them from here, so a renamed
function cannot leave a queue of jobs that nothing runs.
"""

from __future__ import annotations

# arq function names (service/worker/ defines them; worker.py registers them under these names)
OCR_PAGES = "ocr_pages"
FETCH_DOCUMENT = "fetch_document"
DELIVER_WEBHOOK = "deliver_webhook"

# arq drops a unit still waiting when its queue entry expires (a day by default), and the cleanup cron
# would then re-queue it, at the back, and count that towards MAX_TRIES: a long queue must not do that to
# a live job. Enqueue every unit with this instead (ms, arq's `_expires`).
UNIT_EXPIRES_MS = 30 * 24 * 3600 * 1000


def page_ranges(pages_total: int, split_pages: int) -> list[tuple[int, int]]:
    """0-based [first, last) ranges of at most `split_pages` pages, each run as its own arq job."""
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


def job_page_indices(meta: dict[str, str], pages_total: int) -> list[int]:
    """The 0-based indices of the document's pages that a job processes, ascending."""
    return list(range(pages_total))
