"""Which supported media type a document is, from its first bytes, and how large an image may be.

Kept apart from document.py, which opens documents with PyMuPDF, so that the web and the worker
recognise a document without importing PyMuPDF (a unit test in tests/unit/test_layout.py keeps it so).
"""

from __future__ import annotations

PDF = "application/pdf"
PNG = "image/png"
JPEG = "image/jpeg"
TIFF = "image/tiff"

# PDF readers accept a header preceded by some junk (Acrobat looks within the first 1024 bytes).
_PDF_HEADER_WINDOW = 1024


def sniff_media_type(head: bytes) -> str | None:
    """The supported media type of a document from its first bytes, or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return TIFF
    if b"%PDF-" in head[:_PDF_HEADER_WINDOW]:
        return PDF
    return None


# An image is decoded whole before any scaling, so its size is checked from its header first: a
# 40,000 x 40,000 1-bit PNG is a few KB on disk and 1.6 GB once decoded (a decompression bomb). The
# cap is the renderer's own (MAX_PAGE_PIXELS): a larger frame would only be decoded to be scaled down.
MAX_IMAGE_PIXELS = 40_000_000
