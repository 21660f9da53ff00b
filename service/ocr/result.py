"""What a page's work is asked (PageOptions) and what it gives back (PageResult), apart from the work itself.

Light on purpose: the worker and the web hold pages without rendering or reading any, so importing this
module must not load PyMuPDF, OpenCV or numpy (page.py does, in the page processes only; a unit test
in tests/unit/test_layout.py keeps it so).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from service.ocr.layer import text_layer_pdf
from service.ocr.words import Frame, PageWords

# What separates paragraphs in a page's text: a blank line between Tesseract's paragraphs, a line
# break between a text layer's blocks.
PARAGRAPH_GAP = {"ocr": "\n\n", "text-layer": "\n"}


@dataclass(frozen=True)
class PageOptions:
    lang: str = "eng"  # tesseract languages joined with "+"
    dpi: int = 300
    force_ocr: bool = False
    max_pixels: int = 40_000_000  # cap on rendered pixels per page: lower the scale to fit
    timeout_s: float = 120.0  # one page's tesseract run; killed when exceeded -> TransientOcrError


@dataclass
class PageResult:
    number: int  # 1-based
    text: str  # made from `words` (PageWords.text), which the page stores in its place
    source: str  # "text-layer" | "ocr"
    confidence: float | None  # mean word confidence 0..100 for OCR pages, None for text-layer pages
    rotation: int  # 0|90|180|270: degrees clockwise the page was turned to read it upright
    width: float  # of the page turned upright: PDF points for PDFs, pixels for images
    height: float
    # The page was cleaned before OCR (preprocess.py: background divided out, despeckled, binarised)
    # because its light, specks or noise would have defeated Tesseract's own binarisation.
    preprocessed: bool = False
    # The page's words and where they are (words.py): what the page stores, and what its text, its
    # `detail=words`, hOCR, ALTO and searchable-PDF text layer are made from.
    words: PageWords = field(default_factory=lambda: PageWords(Frame(72, (0, 0), (0, 0))), repr=False)

    def to_dict(self, *, with_words: bool = False) -> dict[str, Any]:
        """The API's page object, with its words when asked (`?detail=words`)."""
        page: dict[str, Any] = {
            "number": self.number,
            "text": self.text,
            "source": self.source,
            "confidence": self.confidence,
            "rotation": self.rotation,
            "width": self.width,
            "height": self.height,
            "preprocessed": self.preprocessed,
        }
        if with_words:
            page["words"] = self.words.words(self.width, self.height)
        return page

    @property
    def text_pdf(self) -> bytes | None:
        """The page's invisible text as a one-page PDF (layer.py), for searchable_pdf(); None for
        text-layer pages, which keep their own text."""
        if self.source != "ocr":
            return None
        frame = self.words.frame
        return text_layer_pdf(
            self.words.tsv_words(), dpi=frame.dpi, read_size=frame.read, page_size=frame.page, turned_deg=frame.skew_deg
        )
