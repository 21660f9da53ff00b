"""Word geometry from the OCR core: every page's words with boxes on the upright page, and the one
stored record they, the text and the searchable PDF's text layer are all made from."""

# PyMuPDF ships only partial annotations: calls into it are untyped.
# mypy: disable-error-code="no-untyped-call"
from __future__ import annotations

import math
from typing import Any

import pymupdf
import pytest

from service.ocr import CancelToken, PageOptions, PageResult, process_page
from service.ocr.record import page_record, read_page, record_json
from service.ocr.tsv import TsvWord
from service.ocr.words import Frame, from_tsv
from tests.unit import ocr_samples
from tests.unit.ocr_samples import LINES
from tests.unit.ocr_samples import PAGE_HEIGHT_PT as H
from tests.unit.ocr_samples import PAGE_WIDTH_PT as W

PDF = "application/pdf"


def read(data: bytes, media_type: str = PDF) -> PageResult:
    return process_page(data, media_type, 0, PageOptions(), CancelToken())


def centre(word: dict[str, Any]) -> tuple[float, float]:
    x0, y0, x1, y1 = word["bbox"]
    return (x0 + x1) / 2, (y0 + y1) / 2


def reference_centre(text: str) -> tuple[float, float]:
    """Where the word is typeset on the born-digital page the scans are made from (points)."""
    with pymupdf.open(stream=ocr_samples.text_pdf(), filetype="pdf") as doc:
        (box,) = [pymupdf.Rect(w[:4]) for w in doc[0].get_text("words") if w[4] == text]
    return (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2


def assert_inside(page: dict[str, Any]) -> None:
    for word in page["words"]:
        x0, y0, x1, y1 = word["bbox"]
        assert 0 <= x0 <= x1 <= page["width"] and 0 <= y0 <= y1 <= page["height"], word


@pytest.fixture(scope="module")
def scanned() -> PageResult:
    return read(ocr_samples.scanned_pdf([ocr_samples.scan()]))


@pytest.fixture(scope="module")
def turned() -> PageResult:
    # Turned 90 degrees clockwise on the scanner: it reads upright turned 270 degrees more.
    return read(ocr_samples.scanned_pdf([ocr_samples.scan(rotate=90)]))


def test_an_ocr_page_gives_every_word_with_its_box_line_block_and_confidence(scanned: PageResult) -> None:
    page = scanned.to_dict(with_words=True)
    words = page["words"]
    assert [w["text"] for w in words] == scanned.text.split()
    assert [w["line"] for w in words if w["text"] in ("quick", "invoice", "Friday")] == [1, 2, 6]
    blocks = [w["block"] for w in words]
    assert blocks[0] == 1 and blocks == sorted(blocks), "numbered from 1 in reading order"
    assert all(isinstance(w["confidence"], int) and 0 <= w["confidence"] <= 100 for w in words)
    assert_inside(page)
    # In points, like the page's width and height, where the word was typeset.
    for text in ("quick", "Friday", "morning"):
        (word,) = [w for w in words if w["text"] == text]
        assert centre(word) == pytest.approx(reference_centre(text), abs=3)


def test_a_turned_page_has_its_boxes_on_the_upright_page(turned: PageResult) -> None:
    assert turned.rotation == 270
    page = turned.to_dict(with_words=True)
    assert (page["width"], page["height"]) == pytest.approx((W, H), abs=0.5), "the upright page's size"
    assert_inside(page)
    for text in ("quick", "Friday"):
        (word,) = [w for w in page["words"] if w["text"] == text]
        assert centre(word) == pytest.approx(reference_centre(text), abs=3)
        x0, y0, x1, y1 = word["bbox"]
        assert x1 - x0 > y1 - y0, "read along the upright line: wider than tall"


def test_a_skewed_page_has_its_boxes_put_back_where_the_words_are() -> None:
    result = read(ocr_samples.scanned_pdf([ocr_samples.scan(skew_deg=4.0)]))
    page = result.to_dict(with_words=True)
    assert_inside(page)
    # The scan grew to hold the page turned 4 degrees counter-clockwise about its centre: the word's
    # centre went round with it (y grows down, so counter-clockwise lifts the right side).
    x, y = reference_centre("Friday")
    dx, dy = x - W / 2, y - H / 2
    a = math.radians(4.0)
    expected = (
        page["width"] / 2 + dx * math.cos(a) + dy * math.sin(a),
        page["height"] / 2 - dx * math.sin(a) + dy * math.cos(a),
    )
    (word,) = [w for w in page["words"] if w["text"] == "Friday"]
    assert centre(word) == pytest.approx(expected, abs=4)


def test_a_text_layer_page_gives_its_words_in_points_without_confidence() -> None:
    result = read(ocr_samples.text_pdf())
    page = result.to_dict(with_words=True)
    assert result.source == "text-layer"
    assert [w["text"] for w in page["words"]] == " ".join(LINES).split()
    assert {w["confidence"] for w in page["words"]} == {None}
    assert [w["line"] for w in page["words"] if w["text"] == "Friday"] == [6]
    assert_inside(page)
    for text in ("quick", "Friday"):
        (word,) = [w for w in page["words"] if w["text"] == text]
        assert centre(word) == pytest.approx(reference_centre(text), abs=0.1)
    assert result.text == "\n".join(LINES)


def test_a_text_layer_page_with_rotate_has_its_boxes_on_the_page_as_shown() -> None:
    doc = pymupdf.open(stream=ocr_samples.text_pdf(), filetype="pdf")
    doc[0].set_rotation(90)
    result = read(bytes(doc.tobytes()))
    page = result.to_dict(with_words=True)
    assert (page["width"], page["height"]) == (H, W)
    assert_inside(page)
    x, y = reference_centre("Friday")
    (word,) = [w for w in page["words"] if w["text"] == "Friday"]
    assert centre(word) == pytest.approx((H - y, x), abs=0.1), "turned clockwise with the page"
    x0, y0, x1, y1 = word["bbox"]
    assert y1 - y0 > x1 - x0, "the line runs down the page as shown"


def test_hostile_text_layer_words_keep_what_xml_can_hold() -> None:
    lines = ["Tags <b>&amp; \"quotes\" 'too'", "Kyrillisch Привет 日本語 text", "bell\x07here and\x1bescape"]
    result = read(ocr_samples.text_pdf(lines=lines))
    texts = [w["text"] for w in result.to_dict(with_words=True)["words"]]
    assert texts[:5] == ["Tags", "<b>&amp;", '"quotes"', "'too'", "Kyrillisch"]
    assert all(ord(c) >= 0x20 for text in texts for c in text), texts


@pytest.mark.parametrize("kind", ["scanned", "turned", "text-layer"])
def test_the_stored_record_gives_the_page_back(kind: str, scanned: PageResult, turned: PageResult) -> None:
    result = {"scanned": scanned, "turned": turned}.get(kind) or read(ocr_samples.text_pdf())
    back = read_page(page_record(result))
    assert back.to_dict(with_words=True) == result.to_dict(with_words=True)
    assert back.text_pdf == result.text_pdf, "the searchable PDF's layer is made from the stored words"
    assert len(page_record(result)) < len(record_json(result)), "compressed"


def test_words_read_in_paragraphs_give_the_text_tesseract_gave() -> None:
    words = [
        TsvWord("Hello", 10, 10, 50, 20, 8, 32, False, 90.0, 1, 1),
        TsvWord("world", 70, 10, 50, 20, 8, 32, True, 80.0, 1, 1),
        TsvWord("again", 10, 40, 50, 20, 38, 62, True, None, 1, 1),
        TsvWord("Second", 10, 80, 60, 20, 78, 102, True, 60.0, 1, 2),
        TsvWord("Block", 10, 120, 50, 20, 118, 142, True, 100.0, 2, 3),
    ]
    page = from_tsv(words, Frame(300, (200, 200), (200, 200)))
    assert page.text("\n\n") == "Hello world\nagain\n\nSecond\n\nBlock"
    assert [(w["line"], w["block"], w["confidence"]) for w in page.words(200, 200)] == [
        (1, 1, 90),
        (1, 1, 80),
        (2, 1, None),
        (3, 1, 60),
        (4, 2, 100),
    ]
    assert page.tsv_words() == [
        TsvWord(w.text, w.left, w.top, w.width, w.height, w.line_top, w.line_bottom, w.last_in_line) for w in words
    ]
