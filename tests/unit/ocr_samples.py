"""Generators of small test documents with known text, for the OCR tests and anyone else's.

Every scan is made the way a scanner would: the text is typeset on a PDF page, rasterised to
grayscale at `dpi`, then turned, skewed or re-encoded as asked. Pages are small (a few lines of
large text) so that OCR tests stay fast.
"""

# PyMuPDF ships only partial annotations: calls into it are untyped.
# mypy: disable-error-code="no-untyped-call"
from __future__ import annotations

import io
import re

import numpy as np
import pymupdf
from PIL import Image

LINES = [
    "The quick brown fox jumps over the lazy dog",
    "Please send the invoice to our office today",
    "We will review your application next week",
    "Thank you for your order and your patience",
    "The meeting starts at nine in the morning",
    "All documents must be signed before Friday",
]
TEXT = "\n".join(LINES)

PAGE_WIDTH_PT = 612.0  # US letter width, a short page: six lines fit
PAGE_HEIGHT_PT = 396.0
FONT_SIZE = 18.0


def cer(expected: str, actual: str) -> float:
    """Character error rate: Levenshtein distance over the expected length, whitespace normalised.

    Row by row, vectorised: in a row, the cost through an insertion is the running minimum of
    (cost - column) plus the column, so a page of ten thousand characters takes a second, not minutes."""
    a, b = _normalise(expected), _normalise(actual)
    if not a:
        return 0.0 if not b else 1.0
    columns = np.arange(len(b) + 1)
    codes = np.frombuffer(b.encode("utf-32-le"), dtype=np.uint32)
    previous = columns.copy()
    for i, char_a in enumerate(a, 1):
        current = np.empty_like(previous)
        current[0] = i
        current[1:] = np.minimum(previous[1:] + 1, previous[:-1] + (codes != ord(char_a)))
        previous = np.minimum.accumulate(current - columns) + columns
    return int(previous[-1]) / len(a)


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _typeset(page: pymupdf.Page, lines: list[str], fontsize: float) -> None:
    y = 36.0 + fontsize * 1.5  # the first baseline, leaving room for ascenders
    for line in lines:
        page.insert_text((54, y), line, fontsize=fontsize, fontname="helv")
        y += fontsize * 2.2


def text_pdf(pages: int = 1, lines: list[str] = LINES) -> bytes:
    """A born-digital PDF: every page has a real text layer."""
    doc = pymupdf.open()
    for _ in range(pages):
        _typeset(doc.new_page(width=PAGE_WIDTH_PT, height=PAGE_HEIGHT_PT), lines, FONT_SIZE)
    return bytes(doc.tobytes())


def scan(
    lines: list[str] = LINES,
    *,
    dpi: int = 200,
    rotate: int = 0,
    skew_deg: float = 0.0,
    width_pt: float = PAGE_WIDTH_PT,
    height_pt: float = PAGE_HEIGHT_PT,
    fontsize: float = FONT_SIZE,
) -> Image.Image:
    """A grayscale scan of typeset `lines`, turned `rotate` degrees clockwise and skewed
    `skew_deg` degrees counter-clockwise (the page size grows to hold the skewed page)."""
    doc = pymupdf.open()
    page = doc.new_page(width=width_pt, height=height_pt)
    _typeset(page, lines, fontsize)
    pixmap = page.get_pixmap(dpi=dpi, colorspace=pymupdf.csGRAY, alpha=False)
    image = Image.frombytes("L", (pixmap.width, pixmap.height), pixmap.samples)
    if skew_deg:
        image = image.rotate(skew_deg, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)
    if rotate:
        # PIL's rotate turns counter-clockwise.
        image = image.rotate(-rotate, expand=True)
    image.info["dpi"] = (dpi, dpi)
    return image


def scanned_pdf(images: list[Image.Image], *, dpi: int = 200, fmt: str = "PNG", mode: str | None = None) -> bytes:
    """An image-only PDF: one full-page image per page, sized as printed at `dpi`, stored as `fmt` in `mode`."""
    doc = pymupdf.open()
    for image in images:
        page = doc.new_page(width=image.width * 72 / dpi, height=image.height * 72 / dpi)
        page.insert_image(page.rect, stream=image_bytes(image, fmt, mode=mode))
    return bytes(doc.tobytes())


def image_bytes(image: Image.Image, fmt: str, *, mode: str | None = None, **save: object) -> bytes:
    """`image` encoded as PNG/JPEG/TIFF, converted to `mode` first ("1", "L", "P", "RGB", "RGBA", "CMYK")."""
    if mode == "RGBA":
        # A transparent background, as screenshots and cut-outs have: the ink is in the alpha channel.
        alpha = image.convert("L").point(lambda v: 255 - v)
        image = Image.new("RGBA", image.size, (0, 0, 0, 0))
        image.putalpha(alpha)
    elif mode == "P":
        image = image.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    elif mode is not None:
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save)
    return buffer.getvalue()


def multipage_tiff(images: list[Image.Image]) -> bytes:
    buffer = io.BytesIO()
    images[0].save(buffer, "TIFF", save_all=True, append_images=images[1:], compression="tiff_lzw")
    return buffer.getvalue()


def jpeg_with_exif_orientation(image: Image.Image, orientation: int) -> bytes:
    """A JPEG whose pixels are stored turned and whose EXIF orientation tag says how to undo it.

    Orientation 6 means "turn 90 degrees clockwise to display", so the pixels are stored turned 90
    degrees counter-clockwise; 8 the opposite; 3 upside down.
    """
    # PIL's rotate turns counter-clockwise.
    turn_ccw = {3: 180, 6: 90, 8: -90}[orientation]
    stored = image.rotate(turn_ccw, expand=True)
    exif = Image.Exif()
    exif[0x0112] = orientation
    return image_bytes(stored, "JPEG", quality=90, exif=exif.tobytes())


def rotated_text_pdf(rotate: int, *, shown_turned: int = 0) -> bytes:
    """A scanned page stored turned, with a /Rotate of `rotate`; as a viewer shows it the text is
    turned `shown_turned` degrees clockwise (0: /Rotate makes it upright, as scanners often write)."""
    image = scan(rotate=(shown_turned - rotate) % 360)
    doc = pymupdf.open(stream=scanned_pdf([image]), filetype="pdf")
    doc[0].set_rotation(rotate)
    return bytes(doc.tobytes())


def huge_pdf(size_in: float = 100.0) -> bytes:
    """One page `size_in` inches square with two lines of 200 pt text: rendering it at 300 dpi would
    take (size_in * 300)² pixels. It has a text layer, so OCR it with force_ocr."""
    doc = pymupdf.open()
    page = doc.new_page(width=size_in * 72, height=size_in * 72)
    _typeset(page, LINES[:2], 200.0)
    return bytes(doc.tobytes())


def mixed_pdf() -> bytes:
    """Four pages: text layer, scan, text layer, scan."""
    doc = pymupdf.open()
    scans = pymupdf.open(stream=scanned_pdf([scan(), scan()]), filetype="pdf")
    texts = pymupdf.open(stream=text_pdf(pages=2), filetype="pdf")
    for i in range(2):
        doc.insert_pdf(texts, from_page=i, to_page=i)
        doc.insert_pdf(scans, from_page=i, to_page=i)
    return bytes(doc.tobytes())


def encrypted_pdf() -> bytes:
    doc = pymupdf.open(stream=text_pdf(), filetype="pdf")
    # PyMuPDF defines its PDF_* constants at import time, out of mypy's sight.
    aes_256 = pymupdf.PDF_ENCRYPT_AES_256  # type: ignore[attr-defined]
    return bytes(doc.tobytes(encryption=aes_256, user_pw="user", owner_pw="owner"))
