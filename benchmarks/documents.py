"""Generated benchmark inputs: scanned and born-digital documents with known, varied text.

A scan is made the way a scanner makes one: the text is typeset on a US-letter PDF page, rasterised to
8-bit grayscale at `dpi`, and embedded as one full-page image, so the service renders it back at its
native resolution. Page text comes from a seeded word generator, so every page and every document
differs (the service's content cache never answers) and every run makes the same bytes.
"""

from __future__ import annotations

import io
import random

import pymupdf
from PIL import Image

LETTER_PT = (612.0, 792.0)
WORDS = [
    "invoice", "order", "payment", "account", "customer", "delivery", "office", "meeting", "review",
    "application", "schedule", "contract", "report", "budget", "quarter", "revenue", "service", "support",
    "request", "document", "signature", "approval", "deadline", "project", "manager", "department", "employee",
    "training", "policy", "insurance", "claim", "balance", "statement", "transfer", "shipment", "warehouse",
    "supplier", "product", "quality", "inspection", "maintenance", "equipment", "facility", "security",
    "access", "record", "the", "of", "and", "to", "in", "for", "with", "on", "by", "at", "from", "that", "this",
    "will", "be", "are", "was", "have", "has", "not", "please", "thank", "you", "we", "our", "your", "their",
    "all", "any", "each", "every", "must", "should", "could", "would", "may", "might", "next", "last", "first",
    "final", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "January", "February", "March", "April",
    "September", "October", "November",
]


def sentence_lines(seed: int, count: int, words_per_line: int = 11) -> list[str]:
    rng = random.Random(seed)
    lines = []
    for _ in range(count):
        words = [rng.choice(WORDS) for _ in range(words_per_line)]
        words[0] = words[0].capitalize()
        if rng.random() < 0.3:
            words.append(str(rng.randint(1, 99999)))
        lines.append(" ".join(words) + rng.choice(".,;:"))
    return lines


def lines_that_fit(page_pt: tuple[float, float], fontsize: float, lines: list[str]) -> list[str]:
    """The first of `lines` that `_typeset` fits on a page of `page_pt` (54 pt margins)."""
    room = page_pt[1] - 108.0 - fontsize
    return lines[: max(0, int(room // (fontsize * 1.45)) + 1)]


def _typeset(page: pymupdf.Page, lines: list[str], fontsize: float) -> None:
    y = 54.0 + fontsize
    for line in lines:
        page.insert_text((54, y), line, fontsize=fontsize, fontname="helv")
        y += fontsize * 1.45


def page_lines(seed: int, *, dense: bool = True) -> list[str]:
    """A full letter page of 11 pt text (about 40 lines), or a short one (8 lines) for quick runs."""
    return sentence_lines(seed, 40 if dense else 8)


def scan_image(
    lines: list[str], *, dpi: int = 300, page_pt: tuple[float, float] = LETTER_PT, fontsize: float = 11.0
) -> Image.Image:
    doc = pymupdf.open()
    page = doc.new_page(width=page_pt[0], height=page_pt[1])
    _typeset(page, lines, fontsize)
    pixmap = page.get_pixmap(dpi=dpi, colorspace=pymupdf.csGRAY, alpha=False)
    image = Image.frombytes("L", (pixmap.width, pixmap.height), pixmap.samples)
    image.info["dpi"] = (dpi, dpi)
    return image


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", dpi=image.info.get("dpi", (300, 300)))
    return buffer.getvalue()


def scanned_pdf(pages: int, *, seed: int = 0, dpi: int = 300, dense: bool = True) -> bytes:
    """An image-only PDF of `pages` scans, each embedded at `dpi` so it is rendered back pixel for pixel."""
    doc = pymupdf.open()
    for number in range(pages):
        image = scan_image(page_lines(seed * 10_000 + number, dense=dense), dpi=dpi)
        page = doc.new_page(width=image.width * 72 / dpi, height=image.height * 72 / dpi)
        page.insert_image(page.rect, stream=png_bytes(image))
    return doc.tobytes(garbage=3, deflate=True)


def text_pdf(pages: int, *, seed: int = 0, lines_per_page: int = 40) -> bytes:
    """A born-digital PDF: every page carries a real text layer."""
    doc = pymupdf.open()
    for number in range(pages):
        page = doc.new_page(width=LETTER_PT[0], height=LETTER_PT[1])
        _typeset(page, sentence_lines(seed * 100_000 + number, lines_per_page), 11.0)
    # garbage=2, not 3: PyMuPDF 1.28's duplicate-object search takes minutes on 1,000 pages, and finds
    # nothing to merge here (the same bytes either way).
    return doc.tobytes(garbage=2, deflate=True)


def one_page_text_pdf(seed: int) -> bytes:
    """A small one-page text PDF whose text depends on `seed`: distinct bytes for every seed."""
    doc = pymupdf.open()
    page = doc.new_page(width=LETTER_PT[0], height=LETTER_PT[1] / 2)
    _typeset(page, [f"Benchmark document number {seed}", *sentence_lines(seed, 5)], 12.0)
    return doc.tobytes()


def render_pages_png(document: bytes, *, dpi: int = 300) -> list[bytes]:
    """The document's pages as grayscale PNGs at `dpi`: what the service's renderer produces for them."""
    doc = pymupdf.open(stream=document, filetype="pdf")
    try:
        out = []
        for page in doc:
            pixmap = page.get_pixmap(dpi=dpi, colorspace=pymupdf.csGRAY, alpha=False)
            out.append(pixmap.tobytes("png"))
        return out
    finally:
        doc.close()


# Small documents that carry a marker of their own on each page: the soak checks every result by it.
MARKER_PAGE_PT = (360.0, 90.0)


def marker_text_pdf(markers: list[str]) -> bytes:
    """A born-digital PDF of small pages, page n carrying `markers[n]` as its text layer."""
    doc = pymupdf.open()
    for marker in markers:
        page = doc.new_page(width=MARKER_PAGE_PT[0], height=MARKER_PAGE_PT[1])
        _typeset(page, [marker], 12.0)
    return doc.tobytes(garbage=3, deflate=True)


def marker_scan(marker: str, *, dpi: int = 150) -> Image.Image:
    """The marker typeset at 16 pt on a small page and rasterised at `dpi`: a scan that Tesseract reads in
    a fraction of a second (a 360 x 90 pt page is 750 x 188 pixels at 150 dpi)."""
    doc = pymupdf.open()
    page = doc.new_page(width=MARKER_PAGE_PT[0], height=MARKER_PAGE_PT[1])
    page.insert_text((24, 50), marker, fontsize=16.0, fontname="helv")
    pixmap = page.get_pixmap(dpi=dpi, colorspace=pymupdf.csGRAY, alpha=False)
    image = Image.frombytes("L", (pixmap.width, pixmap.height), pixmap.samples)
    image.info["dpi"] = (dpi, dpi)
    return image


def marker_scanned_pdf(markers: list[str], *, dpi: int = 150) -> bytes:
    """An image-only PDF of small scans, one marker each, embedded at `dpi` (submit with the same dpi)."""
    doc = pymupdf.open()
    for marker in markers:
        image = marker_scan(marker, dpi=dpi)
        page = doc.new_page(width=image.width * 72 / dpi, height=image.height * 72 / dpi)
        page.insert_image(page.rect, stream=png_bytes(image))
    return doc.tobytes(garbage=3, deflate=True)


def encrypted_pdf() -> bytes:
    doc = pymupdf.open()
    _typeset(doc.new_page(), ["A document nobody may read without the password"], 12.0)
    return doc.tobytes(encryption=pymupdf.PDF_ENCRYPT_AES_256, owner_pw="owner", user_pw="user")
