"""Rendering a page to a grayscale pixel array at the resolution OCR needs, and no more."""

# PyMuPDF ships only partial annotations: calls into it are untyped.
# mypy: disable-error-code="no-untyped-call"
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pymupdf

from service.errors import UnprocessableDocument
from service.ocr.document import MUPDF_ERRORS

# An image must cover this share of the page to count as "the page is one scan".
_FULL_PAGE_COVERAGE = 0.85
# Never render an embedded scan below this, even when its own resolution is lower: Tesseract reads
# small glyphs badly and a modest upsample of a fax-quality scan helps it.
MIN_OCR_DPI = 150
# Image inputs are OCRed at their own pixels, unless so small that text is likely tiny on them.
_SMALL_IMAGE_SIDE_PX = 1000
_MAX_SMALL_IMAGE_UPSCALE = 2.0
# Leptonica and Tesseract refuse images wider or taller than this.
MAX_SIDE_PX = 30_000


@dataclass(frozen=True)
class RenderedPage:
    pixels: np.ndarray  # uint8, shape (height, width), 0 black .. 255 white
    dpi: int  # the resolution Tesseract should assume
    scale: float  # pixels per page unit (PDF point)


def native_scale(page: pymupdf.Page) -> float | None:
    """Pixels per point of the page's only image when that image fills the page, else None."""
    infos = page.get_image_info()
    if len(infos) != 1:
        return None
    info = infos[0]
    bbox = pymupdf.Rect(info["bbox"])
    page_area = page.rect.width * page.rect.height
    if page_area <= 0 or bbox.width * bbox.height < _FULL_PAGE_COVERAGE * page_area:
        return None
    # The transform maps the image's unit square onto the page: its first column is the direction of
    # the image's rows, its second the direction of its columns (swapped when the image is turned).
    a, b, c, d, _, _ = info["transform"]
    along_width, along_height = math.hypot(a, b), math.hypot(c, d)
    if along_width <= 0 or along_height <= 0:
        return None
    return float(max(info["width"] / along_width, info["height"] / along_height))


def choose_scale(page: pymupdf.Page, *, dpi: int, max_pixels: int, is_image: bool) -> float:
    """Pixels per point to render `page` at: the requested dpi, lowered to the native resolution of a
    page that is a single scan, and lowered again to fit `max_pixels`."""
    scale = dpi / 72
    native = native_scale(page)
    if is_image and native is not None:
        # An image's points are a fiction of its declared (often missing) resolution: use its pixels.
        scale = native
        long_side_px = max(page.rect.width, page.rect.height) * scale
        if long_side_px < _SMALL_IMAGE_SIDE_PX:
            scale *= min(_MAX_SMALL_IMAGE_UPSCALE, _SMALL_IMAGE_SIDE_PX / long_side_px)
    elif native is not None and native < scale:
        scale = max(native, min(scale, MIN_OCR_DPI / 72))
    return fit_scale(page.rect, scale, max_pixels=max_pixels)


def fit_scale(rect: pymupdf.Rect, scale: float, *, max_pixels: int) -> float:
    """`scale`, lowered until the rendered pixmap has at most max_pixels and no side over MAX_SIDE_PX."""
    width, height = rect.width, rect.height
    if width <= 0 or height <= 0:
        raise UnprocessableDocument("the page has an empty size")
    scale = min(
        scale,
        math.sqrt(max_pixels / (width * height)),
        MAX_SIDE_PX / width,
        MAX_SIDE_PX / height,
    )
    # The pixmap covers the rect rounded outwards, which can add a pixel on each side.
    while True:
        irect = (rect * pymupdf.Matrix(scale, scale)).irect
        if irect.width * irect.height <= max_pixels and max(irect.width, irect.height) <= MAX_SIDE_PX:
            return scale
        scale *= 0.999


def render_gray(page: pymupdf.Page, scale: float) -> np.ndarray:
    """The page (with its /Rotate applied, as a viewer shows it) as 8-bit grayscale on white."""
    try:
        pixmap = page.get_pixmap(matrix=pymupdf.Matrix(scale, scale), colorspace=pymupdf.csGRAY, alpha=False)
    except pymupdf.mupdf.FzErrorSystem as exc:
        # Out of memory (PAGE_MEMORY_MB), not a broken page: the page process answers it as such.
        raise MemoryError(f"page {page.number + 1} cannot be rendered: {exc}") from None
    except MUPDF_ERRORS as exc:
        raise UnprocessableDocument(f"page {page.number + 1} cannot be rendered: {exc}") from None
    release_decoded_images()
    pixels = np.frombuffer(pixmap.samples_mv, dtype=np.uint8)
    pixels = pixels.reshape(pixmap.height, pixmap.stride)[:, : pixmap.width]
    return pixels.copy()  # own the memory: the pixmap is freed with its page


def release_decoded_images() -> None:
    """Empty MuPDF's store of decoded images and fonts.

    MuPDF keeps what it decoded for the next render, and an open document keeps it for as long as it
    lives: a colour scan of 8,400 x 8,400 pixels is 212 MB there, held through the page's OCR and beyond.
    Emptied right after the render, before the pixels are copied out, so the copy never adds to that
    peak. A scanned document's pages each have their own image, so the next page loses nothing."""
    pymupdf.TOOLS.store_shrink(100)


def render_page(page: pymupdf.Page, *, dpi: int, max_pixels: int, is_image: bool) -> RenderedPage:
    scale = choose_scale(page, dpi=dpi, max_pixels=max_pixels, is_image=is_image)
    return RenderedPage(render_gray(page, scale), dpi=max(1, round(scale * 72)), scale=scale)
