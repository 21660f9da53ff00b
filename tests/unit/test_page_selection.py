"""`pages=`: the strict parser of page selections, and the one function saying which pages a job reads."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.errors import BadRequest
from service.jobs.units import job_page_indices
from service.params import format_pages, parse_pages, select_pages


@pytest.mark.parametrize(
    ("raw", "written", "of_12"),
    [
        ("1-3,7,10-", "1-3,7,10-", [0, 1, 2, 6, 9, 10, 11]),
        (" 1 - 3 , 7 ,10 - ", "1-3,7,10-", [0, 1, 2, 6, 9, 10, 11]),
        ("7,3,1-2", "1-3,7", [0, 1, 2, 6]),
        ("2-4,3-6,8-8", "2-6,8", [1, 2, 3, 4, 5, 7]),
        ("5-,2,9-11", "2,5-", [1, 4, 5, 6, 7, 8, 9, 10, 11]),
        ("11-40", "11-40", [10, 11]),
        ("1", "1", [0]),
        ("13-", "13-", []),
        ("007", "7", [6]),
    ],
)
def test_selections_are_read_merged_and_written_one_way(raw: str, written: str, of_12: list[int]) -> None:
    spans = parse_pages(raw)
    assert format_pages(spans) == written
    assert select_pages(spans, 12) == of_12
    assert parse_pages(written) == spans


@pytest.mark.parametrize(
    "raw",
    ["", " ", "0", "0-3", "3-1", "1,,2", "1,", ",1", "-3", "1-2-3", "a", "1-x", "1.5", "²", "١", "1 2", "--", "9" * 10,
     "1," * 600],
)
def test_malformed_zero_and_backwards_selections_are_400(raw: str) -> None:
    with pytest.raises(BadRequest) as refused:
        parse_pages(raw)
    assert refused.value.status_code == 400 and "pages" in refused.value.message


@given(st.text(max_size=30))
def test_any_text_is_a_selection_or_bad_request(raw: str) -> None:
    try:
        spans = parse_pages(raw)
    except BadRequest:
        return
    indices = select_pages(spans, 50)
    assert indices == sorted(set(indices)) and all(0 <= i < 50 for i in indices)


def test_job_page_indices_reads_the_meta_and_prefers_its_document_count() -> None:
    assert job_page_indices({}, 4) == [0, 1, 2, 3]
    assert job_page_indices({"pages": "2,4-"}, 6) == [1, 3, 4, 5]
    # Once the document was checked, its count is in the meta: the job's own pages_total (the selected
    # count) gives the same answer.
    meta = {"pages": "2,4-", "document_pages": "6"}
    assert job_page_indices(meta, 4) == job_page_indices(meta, 6) == [1, 3, 4, 5]


def test_the_scheduled_pages_are_the_selection() -> None:
    # The scheduler is given exactly these indices (service/jobs/submit.py): the selected pages, once each.
    selected = job_page_indices({"pages": "1-3,7,10-", "document_pages": "12"}, 12)
    assert selected == [0, 1, 2, 6, 9, 10, 11]
