"""One page from document bytes to text: its text layer when it has a real one, else OCR."""

# PyMuPDF ships only partial annotations: calls into it are untyped.
# mypy: disable-error-code="no-untyped-call"
from __future__ import annotations

import logging
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pymupdf
from PIL import Image

from service.errors import UnprocessableDocument
from service.ocr import tesseract
from service.ocr.cancel import CancelToken
from service.ocr.deskew import TextLines, find_lines, level
from service.ocr.document import MUPDF_ERRORS, open_document
from service.ocr.media import JPEG
from service.ocr.orientation import detect_rotation, turn
from service.ocr.preprocess import prepare
from service.ocr.render import native_scale, render_page
from service.ocr.result import PARAGRAPH_GAP, PageOptions, PageResult
from service.ocr.tsv import TsvText, parse_tsv
from service.ocr.words import Frame, PageWords, from_text_layer, from_tsv

logger = logging.getLogger(__name__)

# Fewer non-whitespace characters than this is a page number or a scanner's stamp, not a text layer.
MIN_TEXT_LAYER_CHARS = 16
# A page read with less mean word confidence than this may be turned: its orientation is checked.
DOUBTFUL_CONFIDENCE = 75.0
# Text extracted through fonts without a Unicode mapping comes out as U+FFFD; such a layer is useless.
_MAX_UNMAPPED_SHARE = 0.1


def text_layer(page: pymupdf.Page) -> PageWords | None:
    """The page's own words when it has a real text layer, else None."""
    # The words as the page is shown (its /Rotate applied), put in reading order by from_text_layer():
    # sorting whole blocks costs about a millisecond a page, where sorting every line cost sixteen.
    rows = page.get_text("words")
    if page.rotation:
        # Turned with the page as it is shown; plain arithmetic, since a Rect per word cost more than
        # reading the words.
        m = page.rotation_matrix
        a, b, c, d, e, f = float(m.a), float(m.b), float(m.c), float(m.d), float(m.e), float(m.f)
        turned = []
        for x0, y0, x1, y1, text, block, line, word in rows:
            xs = (a * x0 + c * y0 + e, a * x1 + c * y1 + e)
            ys = (b * x0 + d * y0 + f, b * x1 + d * y1 + f)
            turned.append((min(xs), min(ys), max(xs), max(ys), text, block, line, word))
        rows = turned
    words = from_text_layer(rows, (page.rect.width, page.rect.height))
    visible = "".join("".join(line.texts) for line in words.lines)
    if len(visible) < MIN_TEXT_LAYER_CHARS:
        return None
    if visible.count("\ufffd") > _MAX_UNMAPPED_SHARE * len(visible):
        return None
    return words


_open = threading.local()


def _document(data: bytes, media_type: str) -> pymupdf.Document:
    """The document `data` opened once per thread and kept for the next page of the same bytes: reopening
    a large PDF for every page cost more than reading its text. PyMuPDF objects are never shared across
    threads, so each thread keeps its own."""
    cached = getattr(_open, "document", None)
    if cached is not None and cached[0] is data:
        kept: pymupdf.Document = cached[1]
        return kept
    if cached is not None:
        cached[1].close()
        _open.document = None
    doc = open_document(data, media_type)
    _open.document = (data, doc)
    return doc


def _load_page(data: bytes, media_type: str, index: int) -> tuple[pymupdf.Page, bool]:
    """The page at 0-based `index`, and whether the document is an image (it has no text layer)."""
    doc = _document(data, media_type)
    if not 0 <= index < doc.page_count:
        raise IndexError(f"page index {index} out of range for {doc.page_count} pages")
    try:
        page = doc.load_page(index)
    except MUPDF_ERRORS as exc:
        raise UnprocessableDocument(f"page {index + 1} cannot be loaded: {exc}") from None
    return page, not doc.is_pdf


def _from_text_layer(page: pymupdf.Page, index: int) -> PageResult | None:
    words = text_layer(page)
    if words is None:
        return None
    return PageResult(
        number=index + 1,
        text=words.text(PARAGRAPH_GAP["text-layer"]),
        source="text-layer",
        confidence=None,
        rotation=0,
        width=page.rect.width,
        height=page.rect.height,
        words=words,
    )


def text_layer_page(data: bytes, media_type: str, index: int) -> PageResult | None:
    """The page at 0-based `index` read from its text layer, as process_page() reads it; None when it
    has no real one (it needs OCR)."""
    page, is_image = _load_page(data, media_type, index)
    return None if is_image else _from_text_layer(page, index)


def process_page(data: bytes, media_type: str, index: int, options: PageOptions, cancel: CancelToken) -> PageResult:
    """Text of the page at 0-based `index`. Safe to call from several threads at once."""
    cancel.raise_if_cancelled()
    started = time.perf_counter()
    page, is_image = _load_page(data, media_type, index)
    if not is_image and not options.force_ocr:
        found = _from_text_layer(page, index)
        if found is not None:
            return found
    rendered = render_page(
        page,
        dpi=options.dpi,
        max_pixels=options.max_pixels,
        is_image=is_image,
        jpeg=data if media_type == JPEG else None,
    )
    width, height = page.rect.width, page.rect.height
    native = native_scale(page) if is_image else None
    if native is not None:
        width, height = float(round(width * native)), float(round(height * native))

    # Cleaned before the line search too: under uneven light its own threshold finds shadows, not lines.
    prepared = prepare(rendered.pixels, rendered.dpi)
    dpi, condition, cleaned = rendered.dpi, prepared.condition, prepared.cleaned
    with tempfile.TemporaryDirectory(prefix="ocr-") as scratch:
        image = PageImage(prepared.pixels, dpi, Path(scratch))
        del rendered, prepared  # the pixels are `image`'s alone now, for it to let go of while Tesseract runs
        lines = find_lines(image.pixels)
        rotation, reading = _read_upright(image, lines, options, cancel)
    parsed = reading.parsed
    logger.debug(
        "page %d: OCR at %d dpi%s, rotation %d, skew %.2f deg, %d words, %.2f s",
        index + 1,
        dpi,
        f", cleaned for {', '.join(condition.reasons)}" if cleaned else "",
        rotation,
        reading.skew_deg,
        parsed.word_count,
        time.perf_counter() - started,
    )
    if rotation in (90, 270):
        # Read upright, the page is as wide as it was high: its words lie on the upright page.
        width, height = height, width
    return PageResult(
        number=index + 1,
        text=reading.words.text(PARAGRAPH_GAP["ocr"]),
        source="ocr",
        confidence=parsed.confidence,
        rotation=rotation,
        width=width,
        height=height,
        preprocessed=cleaned,
        words=reading.words,
    )


class PageImage:
    """The page's pixels as Tesseract is to read them, rendered and cleaned: in memory, except while
    Tesseract runs. Then they are in a file of the page's scratch directory, and loaded back from it should
    another reading need them; so a 40-megapixel page (40 MB) is not held beside the Tesseract reading it
    (225 MB, BENCHMARKS.md section 13). Read as it is, the page is the file Tesseract reads; read turned or
    levelled, it is kept as a raw array (.npy), which costs a fifth of a TIFF to write and read."""

    def __init__(self, pixels: np.ndarray, dpi: int, scratch: Path) -> None:
        self.dpi = dpi
        self._pixels: np.ndarray | None = pixels
        self._scratch = scratch
        self._stored: Path | None = None

    @property
    def pixels(self) -> np.ndarray:
        if self._pixels is None:
            assert self._stored is not None
            if self._stored.suffix == ".npy":
                self._pixels = np.load(self._stored)
            else:
                with Image.open(self._stored) as stored:
                    self._pixels = np.asarray(stored)
        return self._pixels

    def file_for_tesseract(self, pixels: np.ndarray, *, as_is: bool) -> Path:
        """A file of `pixels` for Tesseract to read; `as_is`: they are the page's own, neither turned nor
        levelled. The page lets go of its pixels: the caller drops its own references to them before
        Tesseract starts."""
        if as_is:
            if self._stored is None or self._stored.suffix != ".tif":
                self._stored = self._scratch / "page.tif"
                tesseract.write_image(pixels, self._stored)
            self._pixels = None
            return self._stored
        if self._stored is None:
            self._stored = self._scratch / "page.npy"
            np.save(self._stored, self.pixels)
        self._pixels = None
        turned = self._scratch / "turned.tif"
        tesseract.write_image(pixels, turned)
        return turned


@dataclass(frozen=True)
class _Reading:
    parsed: TsvText
    words: PageWords  # in the frame they were read in: the page turned upright by `rotation`, levelled
    skew_deg: float


def _read_upright(
    image: PageImage, lines: TextLines, options: PageOptions, cancel: CancelToken
) -> tuple[int, _Reading]:
    """The page read the way up it reads best, and the degrees clockwise it was turned for that.

    Nearly every page comes upright, so it is read as it comes first, and orientation detection (OSD,
    a second Tesseract run costing a third of a reading) runs only for pages whose lines run down the
    page or whose reading is doubtful: upside down, a page reads as garbage at low confidence. OSD's
    answer is checked in turn against the confidence of the reading it leads to, since on small or odd
    glyphs it turns an upright page over with confidence it should not have.
    """
    if lines.sideways:
        # Lines run down the page: it is turned 90 or 270 degrees, and OSD says which. The page as it
        # came is the last resort, should something other than text lines have misled the search.
        osd = detect_rotation(image.pixels, dpi=image.dpi, timeout_s=options.timeout_s, cancel=cancel)
        first = osd if osd in (90, 270) else 90
        candidates = [first, (first + 180) % 360, 0]
    else:
        candidates = [0]
    rotation, reading = candidates[0], _read(image, candidates[0], lines.skew_deg, options, cancel)
    if not lines.sideways and not _trustworthy(reading) and reading.parsed.word_count:
        turned = detect_rotation(image.pixels, dpi=image.dpi, timeout_s=options.timeout_s, cancel=cancel)
        candidates += [turned] if turned else []
    for candidate in candidates[1:]:
        if _trustworthy(reading):
            break
        other = _read(image, candidate, lines.skew_deg, options, cancel)
        if _merit(other) > _merit(reading):
            logger.debug("read turned %d degrees rather than %d, at higher OCR confidence", candidate, rotation)
            rotation, reading = candidate, other
    return rotation, reading


def _trustworthy(reading: _Reading) -> bool:
    """Read with confidence, along lines that run across the image. Tesseract also reads lines that run
    down the image it is given (taking them for vertical writing), with as much confidence: that reading
    has the right text but leaves the page's turn unknown, so it is not taken as the answer while a turn
    that reads across is still to be tried."""
    return _across(reading) and (reading.parsed.confidence or 0.0) >= DOUBTFUL_CONFIDENCE


def _merit(reading: _Reading) -> tuple[bool, float]:
    return _across(reading), reading.parsed.confidence or 0.0


def _across(reading: _Reading) -> bool:
    # Words of three letters or more are wider than tall when read along a line across the image.
    words = [word for word in reading.parsed.words if len(word.text) >= 3]
    return not words or 2 * sum(word.width > word.height for word in words) > len(words)


def _read(image: PageImage, rotation: int, skew_deg: float, options: PageOptions, cancel: CancelToken) -> _Reading:
    """OCR of the page turned `rotation` degrees clockwise, then levelled by `skew_deg`."""
    upright = turn(image.pixels, rotation)
    page_size = (upright.shape[1], upright.shape[0])
    # A small turn and a quarter turn commute: the lean found on the page as it came levels it upright.
    pixels, skew_deg = level(upright, skew_deg)
    read_size = (pixels.shape[1], pixels.shape[0])
    path = image.file_for_tesseract(pixels, as_is=rotation == 0 and skew_deg == 0.0)
    # On disk now: neither the page nor its turned and levelled copies (40 MB each for a 40-megapixel page)
    # are held while Tesseract reads it.
    del upright, pixels
    tsv = tesseract.recognise(path, lang=options.lang, dpi=image.dpi, timeout_s=options.timeout_s, cancel=cancel)
    parsed = parse_tsv(tsv)
    frame = Frame(
        dpi=image.dpi,
        read=read_size,
        page=page_size,
        skew_deg=round(skew_deg, 4),
    )
    return _Reading(parsed, from_tsv(parsed.words, frame), skew_deg)
