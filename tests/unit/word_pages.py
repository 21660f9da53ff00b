"""Pages with known words, built without OCR, for the tests of what is made from words (hOCR, ALTO)."""

from __future__ import annotations

from service.ocr import PageResult
from service.ocr.result import PARAGRAPH_GAP
from service.ocr.tsv import TsvWord
from service.ocr.words import Frame, from_text_layer, from_tsv

# Every kind of text markup must survive: markup characters, quotes, non-Latin scripts, and characters
# XML 1.0 cannot hold at all (they are dropped from words as pages are read).
HOSTILE_WORDS = ["<b>", "&amp;", '"quoted"', "it's", "Привет", "日本語", "a]]>b", "ctrl\x01\x1f\x7fdel", "\ufffe"]


def text_layer_page(number: int = 1, words: list[str] = HOSTILE_WORDS) -> PageResult:
    """A text-layer page (points) with `words` on lines of three, in two blocks."""
    rows = []
    for index, text in enumerate(words):
        line, column = divmod(index, 3)
        x, y = 50.0 + 120 * column, 60.0 + 20 * line
        rows.append((x, y, x + 100, y + 14, text, 0 if line < 2 else 1, line, column))
    page = from_text_layer(rows, (612.0, 792.0))
    return PageResult(number, page.text(PARAGRAPH_GAP["text-layer"]), "text-layer", None, 0, 612.0, 792.0, words=page)


def ocr_page(number: int = 2) -> PageResult:
    """An OCR page read at 300 dpi on a copy levelled by 2 degrees, its confidences Tesseract's."""
    words = [
        TsvWord("Invoice", 300, 300, 400, 80, 290, 390, False, 96.4, 1, 1),
        TsvWord("№&<42>", 740, 300, 300, 80, 290, 390, True, 71.0, 1, 1),
        TsvWord("Total", 300, 600, 260, 80, 590, 690, True, None, 2, 2),
    ]
    page = from_tsv(words, Frame(300, (2600, 3400), (2550, 3300), skew_deg=2.0))
    text = page.text(PARAGRAPH_GAP["ocr"])
    return PageResult(number, text, "ocr", 83.7, 0, 612.0, 792.0, words=page)
