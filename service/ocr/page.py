"""One page from document bytes to text: its text layer when it has a real one, else OCR."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import pymupdf

from service.errors import UnprocessableDocument
from service.ocr import tesseract
from service.ocr.cancel import CancelToken
from service.ocr.deskew import deskew
from service.ocr.document import MUPDF_ERRORS, open_document
from service.ocr.orientation import detect_rotation, turn
from service.ocr.render import native_scale, render_page
from service.ocr.tsv import parse_tsv

logger = logging.getLogger(__name__)

# Fewer non-whitespace characters than this is a page number or a scanner's stamp, not a text layer.
MIN_TEXT_LAYER_CHARS = 16
# Text extracted through fonts without a Unicode mapping comes out as U+FFFD; such a layer is useless.
_MAX_UNMAPPED_SHARE = 0.1


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
    text: str
    source: str  # "text-layer" | "ocr"
    confidence: float | None  # mean word confidence 0..100 for OCR pages, None for text-layer pages
    rotation: int  # 0|90|180|270: degrees clockwise the page was turned to read it upright
    width: float  # PDF points for PDFs, pixels for images
    height: float
    # Tesseract's text-only PDF of the page, for searchable_pdf(); None for text-layer pages.
    text_pdf: bytes | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The API's page object; text_pdf stays internal."""
        page = asdict(self)
        del page["text_pdf"]
        return page


def text_layer(page: pymupdf.Page) -> str | None:
    """The page's own text when it is a real text layer, else None."""
    text = page.get_text("text", sort=True)
    visible = "".join(text.split())
    if len(visible) < MIN_TEXT_LAYER_CHARS:
        return None
    if visible.count("\ufffd") > _MAX_UNMAPPED_SHARE * len(visible):
        return None
    return text.strip()


def process_page(
    data: bytes, media_type: str, index: int, options: PageOptions, cancel: CancelToken
) -> PageResult:
    """Text of the page at 0-based `index`. Safe to call from several threads at once."""
    cancel.raise_if_cancelled()
    started = time.perf_counter()
    # A Document per call: PyMuPDF objects must not be shared across threads.
    doc = open_document(data, media_type)
    try:
        if not 0 <= index < doc.page_count:
            raise IndexError(f"page index {index} out of range for {doc.page_count} pages")
        try:
            page = doc.load_page(index)
        except MUPDF_ERRORS as exc:
            raise UnprocessableDocument(f"page {index + 1} cannot be loaded: {exc}") from None
        is_image = not doc.is_pdf
        if not is_image and not options.force_ocr:
            text = text_layer(page)
            if text is not None:
                return PageResult(
                    number=index + 1,
                    text=text,
                    source="text-layer",
                    confidence=None,
                    rotation=0,
                    width=page.rect.width,
                    height=page.rect.height,
                )
        rendered = render_page(
            page, dpi=options.dpi, max_pixels=options.max_pixels, is_image=is_image
        )
        width, height = page.rect.width, page.rect.height
        native = native_scale(page) if is_image else None
        if native is not None:
            width, height = float(round(width * native)), float(round(height * native))
    finally:
        doc.close()

    rotation = detect_rotation(
        rendered.pixels, dpi=rendered.dpi, timeout_s=options.timeout_s, cancel=cancel
    )
    pixels = turn(rendered.pixels, rotation)
    pixels = deskew(pixels)
    output = tesseract.recognise(
        tesseract.encode_pgm(pixels),
        lang=options.lang,
        dpi=rendered.dpi,
        timeout_s=options.timeout_s,
        cancel=cancel,
    )
    parsed = parse_tsv(output.tsv)
    logger.debug(
        "page %d: OCR of %dx%d px, rotation %d, %d words, %.2f s",
        index + 1,
        pixels.shape[1],
        pixels.shape[0],
        rotation,
        parsed.word_count,
        time.perf_counter() - started,
    )
    return PageResult(
        number=index + 1,
        text=parsed.text,
        source="ocr",
        confidence=parsed.confidence,
        rotation=rotation,
        width=width,
        height=height,
        text_pdf=output.text_pdf,
    )
