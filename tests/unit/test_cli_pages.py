"""`submit --follow`'s pages in page order (service/client/pages.py), whatever order they arrive in."""

from __future__ import annotations

import itertools

import pytest

from service.client.cli import build_parser
from service.client.pages import PagesInOrder, selection


def page(number: int) -> dict[str, object]:
    return {"number": number, "text": f"page {number}"}


def numbers(pages: list[dict[str, object]]) -> list[object]:
    return [p["number"] for p in pages]


def test_a_page_waits_for_the_pages_before_it() -> None:
    order = PagesInOrder()
    assert order.add(page(2)) == [] and order.add(page(3)) == []
    assert numbers(order.add(page(1))) == [1, 2, 3]
    assert numbers(order.add(page(4))) == [4]
    assert order.add(page(4)) == [] and order.add(page(2)) == [], "a page told twice is given once"
    assert order.seen == 4 and order.last_number == 4


@pytest.mark.parametrize("arrival", list(itertools.permutations([1, 2, 3, 4])))
def test_every_arrival_order_gives_page_order(arrival: tuple[int, ...]) -> None:
    order = PagesInOrder()
    out = [n for number in arrival for n in numbers(order.add(page(number)))]
    assert out == [1, 2, 3, 4]


def test_pages_the_selection_skips_are_not_waited_for() -> None:
    order = PagesInOrder("2-3,7,10-")
    assert order.add(page(3)) == []
    assert numbers(order.add(page(2))) == [2, 3]
    assert order.add(page(10)) == [] and numbers(order.add(page(7))) == [7, 10]
    assert numbers(order.add(page(11))) == [11]


def test_the_rest_comes_in_order_when_the_job_ends() -> None:
    order = PagesInOrder()
    order.add(page(5))
    order.add(page(3))
    assert numbers(order.rest()) == [3, 5] and order.last_number == 5 and order.rest() == []


def test_selection_reads_what_the_server_writes() -> None:
    assert selection(None) == selection("") == [(1, None)]
    assert selection("1-3,7,10-") == [(1, 3), (7, 7), (10, None)]


def test_submit_takes_pages_and_the_word_formats() -> None:
    args = build_parser().parse_args(["submit", "a.pdf", "--pages", "1-3,7", "--format", "hocr", "--follow"])
    assert (args.pages, args.format, args.follow) == ("1-3,7", "hocr", True)
    assert build_parser().parse_args(["result", "x", "--format", "alto"]).format == "alto"


class StubClient:
    """The client calls `_follow_pages` makes, answered from lists (pure logic: no server)."""

    def __init__(self, events: list[tuple[str, dict[str, object]]], pages: list[dict[str, object]] | None) -> None:
        self.events = events
        self.stored = pages
        self.asked_after: list[int] = []

    def job_events(self, job: object) -> list[tuple[str, dict[str, object]]]:
        return self.events

    def pages(self, job_id: str, after: int = 0) -> list[dict[str, object]] | None:
        self.asked_after.append(after)
        return None if self.stored is None else [p for p in self.stored if int(str(p["number"])) > after]

    def result(self, job_id: str, fmt: str) -> dict[str, object]:
        return {"pages": [page(n) for n in (1, 2, 3)]}


def job(status: str, done: int) -> dict[str, object]:
    return {"id": "j", "status": status, "pages_done": done, "pages_total": 3, "progress": done * 33, "options": {}}


@pytest.mark.parametrize("server_has_pages", [True, False])
def test_pages_missed_by_a_resumed_stream_are_fetched_and_printed_in_order(
    capsys: pytest.CaptureFixture[str], server_has_pages: bool
) -> None:
    from service.client.commands import _follow_pages
    from service.client.output import ProgressBar

    # Page 2's event was lost (the stream resumed past the kept history); page 3's came.
    events = [
        ("page", {"id": "j", "page": page(1)}),
        ("progress", job("running", 1)),
        ("page", {"id": "j", "page": page(3)}),
        ("progress", job("running", 3)),
        ("status", job("completed", 3)),
    ]
    client = StubClient(events, [page(n) for n in (1, 2, 3)] if server_has_pages else None)
    ended = _follow_pages(client, job("queued", 0), ProgressBar(None, "a"), header=None)  # type: ignore[arg-type]
    assert ended["status"] == "completed"
    assert capsys.readouterr().out == "page 1\fpage 2\fpage 3\n"
    assert client.asked_after == [1], "asked once, after the last page printed"
