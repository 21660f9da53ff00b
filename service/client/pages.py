"""Pages in page order, however they arrive: `ocr-service submit --follow` prints each page's text as
soon as every page before it has been printed.

Pages finish out of order (several at once on a worker, ranges on several workers), and a stream that
reconnected past the server's kept history misses some (they are fetched again from `/pages?after=` or
the result). So pages wait in a buffer until the pages before them have come. Which pages come at all
is the job's selection (`options.pages`, `1-3,7,10-` as the server writes it): a page the selection
skips is never waited for.
"""

from __future__ import annotations

from typing import Any

Page = dict[str, Any]


def selection(spec: str | None) -> list[tuple[int, int | None]]:
    """The spans (first, last or None for "to the end") of a job's `options.pages`; all pages without one."""
    if not spec:
        return [(1, None)]
    spans: list[tuple[int, int | None]] = []
    for item in spec.split(","):
        first, _, last = item.partition("-")
        spans.append((int(first), None if item.endswith("-") else int(last or first)))
    return spans


class PagesInOrder:
    """Takes pages in any order (each once; repeats are ignored) and gives them back in page order."""

    def __init__(self, spec: str | None = None) -> None:
        self._spans = selection(spec)
        self._waiting: dict[int, Page] = {}
        self._seen: set[int] = set()
        self.last_number = 0  # the last page given back

    @property
    def seen(self) -> int:
        """How many distinct pages were taken, given back or not."""
        return len(self._seen)

    def add(self, page: Page) -> list[Page]:
        """Take a page; the pages now ready, in order (none while an earlier page is missing)."""
        number = int(page["number"])
        if number in self._seen or number <= self.last_number:
            return []
        self._seen.add(number)
        self._waiting[number] = page
        ready = []
        while (following := self._next_after(self.last_number)) in self._waiting:
            ready.append(self._waiting.pop(following))
            self.last_number = following
        return ready

    def rest(self) -> list[Page]:
        """Every page still waiting, in order: the job has ended, nothing earlier will come."""
        ready = [self._waiting[n] for n in sorted(self._waiting)]
        self._waiting.clear()
        if ready:
            self.last_number = int(ready[-1]["number"])
        return ready

    def _next_after(self, number: int) -> int:
        """The smallest selected page number above `number`."""
        for first, last in self._spans:
            if last is None or number < last:
                return max(first, number + 1)
        return -1  # past the selection: nothing more is waited for
