"""Opening uploaded documents with PyMuPDF, and counting their pages (media.py recognises their type).

PyMuPDF is not thread-safe and a Document must never be shared between threads, so every caller opens
its own with open_document().
"""

# PyMuPDF ships only partial annotations: calls into it are untyped.
# mypy: disable-error-code="no-untyped-call"
from __future__ import annotations

import io
import logging
import warnings

import pymupdf
from PIL import Image

from service.errors import EncryptedDocument, ImageTooLarge, UnprocessableDocument, UnsupportedMediaType
from service.ocr.media import JPEG, MAX_IMAGE_PIXELS, PDF, PNG, TIFF

logger = logging.getLogger(__name__)

# The filetype hint PyMuPDF needs to open a stream of each supported media type.
FILETYPES = {PDF: "pdf", PNG: "png", JPEG: "jpeg", TIFF: "tiff"}

# A complete PDF ends with %%EOF, possibly followed by a few bytes of trailing garbage.
_PDF_EOF_WINDOW = 1024

# What PyMuPDF raises for a broken document: its own FileDataError (a RuntimeError), ValueError, and
# the MuPDF C errors, which surface as FzErrorBase subclasses when a page is loaded or drawn.
MUPDF_ERRORS: tuple[type[Exception], ...] = (RuntimeError, ValueError, pymupdf.mupdf.FzErrorBase)


def open_document(data: bytes, media_type: str) -> pymupdf.Document:
    """Open `data` with PyMuPDF; the caller owns (and should close) the Document.

    Raises UnsupportedMediaType, UnprocessableDocument (corrupt, empty, truncated, no pages) and
    EncryptedDocument (a user password is needed; owner-password-only PDFs open fine).
    """
    filetype = FILETYPES.get(media_type)
    if filetype is None:
        raise UnsupportedMediaType(f"unsupported media type {media_type!r}")
    if not data:
        raise UnprocessableDocument("the document is empty")
    try:
        doc = pymupdf.open(stream=data, filetype=filetype)
    except MUPDF_ERRORS as exc:
        raise UnprocessableDocument(f"the document cannot be opened: {exc}") from None
    try:
        if doc.needs_pass:
            raise EncryptedDocument("the document is encrypted and needs a password")
        if doc.page_count < 1:
            raise UnprocessableDocument("the document has no pages")
        # MuPDF rebuilds a broken xref by scanning the file, which "repairs" a PDF cut off mid-upload
        # into something that opens; a missing %%EOF tells the two apart.
        if doc.is_pdf and doc.is_repaired and b"%%EOF" not in data[-_PDF_EOF_WINDOW:]:
            raise UnprocessableDocument("the PDF is truncated")
    except BaseException:
        doc.close()
        raise
    return doc


def check_image_size(data: bytes, max_pixels: int = MAX_IMAGE_PIXELS, *, max_frames: int | None = None) -> None:
    """Refuse images (every frame of a TIFF, up to `max_frames`) larger than `max_pixels`, reading
    headers only: seeking a TIFF frame reads its directory, it decodes nothing."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                frame = 0
                while max_frames is None or frame < max_frames:
                    width, height = image.size
                    if width * height > max_pixels:
                        raise ImageTooLarge(
                            f"the image is {width} x {height} pixels; at most {max_pixels // 1_000_000} "
                            "megapixels are accepted"
                        )
                    frame += 1
                    try:
                        image.seek(frame)
                    except EOFError:
                        return
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"the image is too large: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise UnprocessableDocument(f"the image cannot be read: {exc}") from None


def count_pages(
    data: bytes, media_type: str, *, max_pixels: int = MAX_IMAGE_PIXELS, max_pages: int | None = None
) -> int:
    """The number of pages (or image frames), from headers alone: nothing is decoded or rendered.

    An image's frames are checked against `max_pixels` from their headers (the first `max_pages` + 1 at
    most: a document with more is refused anyway). Whether the pixel data itself decodes is found out
    by the worker's page process, which fails a broken image with `unprocessable_document`.
    """
    if media_type in (PNG, JPEG, TIFF):
        check_image_size(data, max_pixels, max_frames=None if max_pages is None else max_pages + 1)
    doc = open_document(data, media_type)
    try:
        return int(doc.page_count)
    finally:
        doc.close()
