# PyMuPDF ships only partial annotations: calls into it are untyped.
# mypy: disable-error-code="no-untyped-call"
from __future__ import annotations

import math

import pymupdf
import pytest

from service.ocr import CancelToken, PageOptions, PageResult, process_page, searchable_pdf
from tests.unit import ocr_samples
from tests.unit.ocr_samples import PAGE_HEIGHT_PT as H
from tests.unit.ocr_samples import PAGE_WIDTH_PT as W
from tests.unit.ocr_samples import TEXT, cer

PDF = "application/pdf"


def ocr_all(data: bytes, media_type: str, pages: int) -> list[PageResult]:
    return [process_page(data, media_type, i, PageOptions(), CancelToken()) for i in range(pages)]


def word_centre(page: pymupdf.Page, word: str) -> tuple[float, float]:
    """Where `word` is on the page as a viewer shows it (with /Rotate applied)."""
    # Words come in unrotated page space, clipped to the mediabox: no clip, then rotate.
    words = page.get_text("words", clip=pymupdf.INFINITE_RECT())
    (box,) = [pymupdf.Rect(w[:4]) * page.rotation_matrix for w in words if w[4] == word]
    return (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2


def reference_centre(word: str) -> tuple[float, float]:
    with pymupdf.open(stream=ocr_samples.text_pdf(), filetype="pdf") as doc:
        return word_centre(doc[0], word)


def test_mixed_pdf_becomes_searchable() -> None:
    data = ocr_samples.mixed_pdf()
    results = ocr_all(data, PDF, 4)
    output = searchable_pdf(data, PDF, results)
    with pymupdf.open(stream=output, filetype="pdf") as doc:
        assert doc.page_count == 4
        for page in doc:
            assert cer(TEXT, page.get_text()) < 0.05
        # The scanned pages look exactly as before: the text layer is invisible.
        with pymupdf.open(stream=data, filetype="pdf") as original:
            before = original[1].get_pixmap(dpi=50).samples
        assert doc[1].get_pixmap(dpi=50).samples == before


@pytest.mark.parametrize("turned", [90, 270])  # 0 and 180: see the mixed and image tests
def test_text_lands_on_the_words_of_a_turned_scan(turned: int) -> None:
    data = ocr_samples.scanned_pdf([ocr_samples.scan(rotate=turned)])
    output = searchable_pdf(data, PDF, ocr_all(data, PDF, 1))
    x, y = reference_centre("Friday")
    # Where the word's centre went when the page was turned clockwise.
    expected = {0: (x, y), 90: (H - y, x), 180: (W - x, H - y), 270: (y, W - x)}[turned]
    with pymupdf.open(stream=output, filetype="pdf") as doc:
        assert word_centre(doc[0], "Friday") == pytest.approx(expected, abs=6)


@pytest.mark.parametrize(("skew_deg", "turned"), [(5.0, 0), (-4.0, 180)])
def test_text_lands_on_the_words_of_a_skewed_scan(skew_deg: float, turned: int) -> None:
    data = ocr_samples.scanned_pdf([ocr_samples.scan(skew_deg=skew_deg, rotate=turned)])
    output = searchable_pdf(data, PDF, ocr_all(data, PDF, 1))
    with pymupdf.open(stream=output, filetype="pdf") as doc:
        page = doc[0]
        # The scan was turned counter-clockwise about its centre and grew to keep its corners.
        x, y = reference_centre("Friday")
        dx, dy = x - W / 2, y - H / 2
        a = math.radians(skew_deg)
        x, y = dx * math.cos(a) + dy * math.sin(a), -dx * math.sin(a) + dy * math.cos(a)
        if turned == 180:
            x, y = -x, -y
        expected = (page.rect.width / 2 + x, page.rect.height / 2 + y)
        assert word_centre(page, "Friday") == pytest.approx(expected, abs=6)


@pytest.mark.parametrize(("rotate", "shown_turned"), [(90, 0), (270, 90)])
def test_text_lands_on_the_words_of_a_page_with_rotate(rotate: int, shown_turned: int) -> None:
    data = ocr_samples.rotated_text_pdf(rotate, shown_turned=shown_turned)
    output = searchable_pdf(data, PDF, ocr_all(data, PDF, 1))
    x, y = reference_centre("Friday")
    expected = {0: (x, y), 90: (H - y, x), 180: (W - x, H - y), 270: (y, W - x)}[shown_turned]
    with pymupdf.open(stream=output, filetype="pdf") as doc:
        assert doc[0].rotation == rotate
        assert word_centre(doc[0], "Friday") == pytest.approx(expected, abs=6)


def test_images_become_pdf_pages() -> None:
    frames = [ocr_samples.scan(), ocr_samples.scan(rotate=180)]
    data = ocr_samples.multipage_tiff(frames)
    output = searchable_pdf(data, "image/tiff", ocr_all(data, "image/tiff", 2))
    with pymupdf.open(stream=output, filetype="pdf") as doc:
        assert doc.page_count == 2
        for page in doc:
            assert cer(TEXT, page.get_text()) < 0.05
        # Image pages are sized by the image's declared resolution, not the 200 dpi it was made at.
        zoom = doc[0].rect.width / W
        x, y = reference_centre("Friday")
        assert word_centre(doc[0], "Friday") == pytest.approx((x * zoom, y * zoom), abs=6)
        assert word_centre(doc[1], "Friday") == pytest.approx(((W - x) * zoom, (H - y) * zoom), abs=6)


def test_text_layer_pages_are_left_alone() -> None:
    data = ocr_samples.text_pdf()
    results = ocr_all(data, PDF, 1)
    with pymupdf.open(stream=searchable_pdf(data, PDF, results), filetype="pdf") as doc:
        assert doc[0].get_text() == pymupdf.open(stream=data, filetype="pdf")[0].get_text()
