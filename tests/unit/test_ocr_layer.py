# PyMuPDF ships only partial annotations: calls into it are untyped.
# mypy: disable-error-code="no-untyped-call"
from __future__ import annotations

import math

import pymupdf
import pytest

from service.ocr.layer import glyphless_font, text_layer_pdf
from service.ocr.tsv import TsvWord

# Two lines at 144 dpi (2 pixels a point): words 40 px high on lines 55 px high.
WORDS = [
    TsvWord("Hello", 100, 100, 200, 40, 95, 150, last_in_line=False),
    TsvWord("wörld", 320, 100, 200, 40, 95, 150, last_in_line=True),
    TsvWord("Привет", 100, 200, 260, 40, 195, 250, last_in_line=False),
    TsvWord("日本語", 380, 200, 150, 40, 195, 250, last_in_line=True),
]


def words_of(pdf: bytes) -> dict[str, pymupdf.Rect]:
    with pymupdf.open(stream=pdf, filetype="pdf") as doc:
        return {w[4]: pymupdf.Rect(w[:4]) for w in doc[0].get_text("words")}


def test_words_cover_their_boxes_on_their_lines() -> None:
    pdf = text_layer_pdf(WORDS, dpi=144, read_size=(1000, 600), page_size=(1000, 600))
    with pymupdf.open(stream=pdf, filetype="pdf") as doc:
        assert doc[0].rect == pymupdf.Rect(0, 0, 500, 300)
        assert doc[0].get_text() == "Hello wörld\nПривет 日本語\n"
        assert doc[0].search_for("wörld")
    boxes = words_of(pdf)
    for word in WORDS:
        # Across: the word's own box; down: its line's, so that a selection is one even band.
        expected = pymupdf.Rect(word.left, word.line_top, word.left + word.width, word.line_bottom) / 2
        assert tuple(boxes[word.text]) == pytest.approx(tuple(expected), abs=0.5)


def test_text_is_invisible() -> None:
    pdf = text_layer_pdf(WORDS, dpi=144, read_size=(1000, 600), page_size=(1000, 600))
    with pymupdf.open(stream=pdf, filetype="pdf") as doc:
        assert set(doc[0].get_pixmap(dpi=36).samples) == {255}


def test_words_read_on_a_levelled_copy_go_back_onto_the_page() -> None:
    # The page was turned 5 degrees counter-clockwise and grew from 1000 x 600 to 1100 x 700 to be read.
    pdf = text_layer_pdf(WORDS, dpi=144, read_size=(1100, 700), page_size=(1000, 600), turned_deg=5.0)
    boxes = words_of(pdf)
    a = math.radians(5.0)
    for word in WORDS:
        dx = word.left + word.width / 2 - 550
        dy = (word.line_top + word.line_bottom) / 2 - 350
        # Turned back clockwise about the centre, in the page's pixels (y grows down), then to points.
        x, y = 500 + dx * math.cos(a) - dy * math.sin(a), 300 + dx * math.sin(a) + dy * math.cos(a)
        centre = boxes[word.text].tl + (boxes[word.text].br - boxes[word.text].tl) / 2
        assert (centre.x, centre.y) == pytest.approx((x / 2, y / 2), abs=2)


def test_no_words_is_an_empty_page() -> None:
    pdf = text_layer_pdf([], dpi=300, read_size=(2550, 3300), page_size=(2550, 3300))
    with pymupdf.open(stream=pdf, filetype="pdf") as doc:
        assert doc[0].rect == pymupdf.Rect(0, 0, 612, 792)
        assert doc[0].get_text() == ""


def test_tesseract_blank_font_is_embedded() -> None:
    font = glyphless_font()
    assert font is not None, "tesseract's pdf.ttf is installed with tesseract-ocr"
    pdf = text_layer_pdf(WORDS, dpi=144, read_size=(1000, 600), page_size=(1000, 600))
    with pymupdf.open(stream=pdf, filetype="pdf") as doc:
        ((_, ext, _, basefont, _, encoding),) = doc[0].get_fonts()
        assert (ext, basefont, encoding) == ("ttf", "GlyphLessFont", "Identity-H")


def test_a_word_with_an_empty_box_keeps_its_text() -> None:
    pdf = text_layer_pdf(
        [TsvWord("dot", 10, 10, 0, 0, 10, 10, last_in_line=True)], dpi=72, read_size=(100, 100), page_size=(100, 100)
    )
    with pymupdf.open(stream=pdf, filetype="pdf") as doc:
        assert doc[0].get_text().strip() == "dot"
