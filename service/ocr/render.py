"""Rendering a page to a grayscale pixel array at the resolution OCR needs, and no more.

A page that is one JPEG scan and nothing else (most scanned PDFs, and JPEG photos uploaded upright) is not
drawn by MuPDF but decoded straight to gray by libjpeg (OpenCV's imdecode), at 1/2, 1/4 or 1/8 of its
size when the render needs no more: MuPDF decodes it in colour first, 212 MB for a scan of 8,400 x
8,400 pixels where the gray decode takes 71 MB (BENCHMARKS.md section 13), and it does so in about
half the time. The pixels are MuPDF's within a few levels (the gray of a colour JPEG is its own luma
channel; a scan brought down in size is averaged by area). Anything else, an image turned or flipped,
masked, clipped, in other colours, drawn through a form or with a graphics state (opacity, blending), only
partly covering the page or with anything drawn over it, is drawn by MuPDF as before.
"""

# PyMuPDF ships only partial annotations: calls into it are untyped.
# mypy: disable-error-code="no-untyped-call"
from __future__ import annotations

import io
import math
import re
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
import pymupdf
from PIL import Image

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
# What MuPDF draws for a page that is one JPEG scan: the image and, where it carries an OCR layer, text it
# does not show (render mode 3).
_SCAN_ONLY = ["fill-image"]
_UNSEEN = "ignore-text"
# The colour spaces whose gray is the JPEG's own luma; keys of the image's dictionary that change what it shows.
_GRAY_OR_RGB = ("DeviceGray", "DeviceRGB", "ICCBased(Gray", "ICCBased(RGB")
_ALTERING_KEYS = ("Decode", "DecodeParms", "SMask", "Mask", "ImageMask", "SMaskInData")
# The content stream's operator that sets a graphics state from the resources (`/GS0 gs`).
_GRAPHICS_STATE = re.compile(rb"(?:^|\s)gs(?:\s|$)")
# libjpeg decodes at 1/1, 1/2, 1/4 or 1/8 of the size, OpenCV's flag for each (its luma only, as stored,
# the EXIF orientation left to the caller: MuPDF shows an oriented JPEG turned, and that page is MuPDF's).
_GRAY_DECODE = {
    8: cv2.IMREAD_REDUCED_GRAYSCALE_8,
    4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
    2: cv2.IMREAD_REDUCED_GRAYSCALE_2,
    1: cv2.IMREAD_GRAYSCALE,
}


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


def render_page(
    page: pymupdf.Page, *, dpi: int, max_pixels: int, is_image: bool, jpeg: bytes | None = None
) -> RenderedPage:
    """The page rendered for OCR. `jpeg`: the document's bytes when the document is itself a JPEG."""
    scale = choose_scale(page, dpi=dpi, max_pixels=max_pixels, is_image=is_image)
    pixels = decode_scan(page, scale, jpeg)
    if pixels is None:
        pixels = render_gray(page, scale)
    return RenderedPage(pixels, dpi=max(1, round(scale * 72)), scale=scale)


def decode_scan(page: pymupdf.Page, scale: float, jpeg: bytes | None = None) -> np.ndarray | None:
    """What render_gray(page, scale) draws, decoded from the page's JPEG when the page is one JPEG scan
    shown upright over all of it and no larger than it is stored; else None."""
    size = (page.rect * pymupdf.Matrix(scale, scale)).irect
    data = _scan_jpeg(page, scale, jpeg)
    # Looking at the page put its image in the store, compressed (8 MB for the 8,400-pixel scan): not kept.
    release_decoded_images()
    if data is None:
        return None
    try:
        with warnings.catch_warnings():
            # Past Pillow's bomb limit (179 MP) the header is not read, and MuPDF draws it, as it always did.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as header:  # reads the header: no pixel is decoded here
                stored, mode = header.size, header.mode
    except (Image.DecompressionBombError, OSError, SyntaxError, ValueError):
        return None
    if mode not in ("L", "RGB") or size.width > stored[0] or size.height > stored[1]:
        return None  # CMYK, or to be enlarged: MuPDF's
    factor = max(f for f in _GRAY_DECODE if -(-stored[0] // f) >= size.width and -(-stored[1] // f) >= size.height)
    try:
        pixels = cv2.imdecode(np.frombuffer(data, np.uint8), _GRAY_DECODE[factor] | cv2.IMREAD_IGNORE_ORIENTATION)
        if pixels is not None and pixels.shape != (size.height, size.width):
            pixels = cv2.resize(pixels, (size.width, size.height), interpolation=cv2.INTER_AREA)
    except cv2.error:
        return None  # out of memory: MuPDF says so; broken: MuPDF shows what it can, as ever
    return pixels


def _scan_jpeg(page: pymupdf.Page, scale: float, jpeg: bytes | None) -> bytes | None:
    """The JPEG bytes of the one image the page shows, when that image covers the page exactly (to half a
    pixel at `scale`), upright, in gray or RGB, unclipped, with nothing that alters its pixels; else None."""
    if not page.parent.is_pdf and jpeg is None:
        return None  # a PNG or a TIFF
    if page.rotation or page.first_annot is not None or page.first_widget is not None:
        return None
    if [kind for kind, _ in page.get_bboxlog() if kind != _UNSEEN] != _SCAN_ONLY:
        return None
    for drawing in page.get_cdrawings(extended=True):  # what the bboxlog leaves out: clips
        if drawing["type"] != "clip" or not pymupdf.Rect(drawing["scissor"]).contains(page.rect):
            return None
    # Not xrefs=True: that decodes every image to match it with its xref; get_images() below names it.
    infos = page.get_image_info()
    if len(infos) != 1:
        return None
    info = infos[0]
    a, b, c, d, _, _ = info["transform"]
    edges = zip(tuple(info["bbox"]), tuple(page.rect), strict=True)
    if b or c or a <= 0 or d <= 0 or any(abs(got - want) * scale > 0.5 for got, want in edges):
        return None
    if info["bpc"] != 8 or info["has-mask"] or not str(info["cs-name"]).startswith(_GRAY_OR_RGB):
        return None
    if not page.parent.is_pdf:
        return jpeg
    images = page.get_images(full=True)
    if len(images) != 1 or images[0][-1] != 0:
        return None  # drawn through a form XObject, with resources of its own
    if _GRAPHICS_STATE.search(page.read_contents()):
        return None  # an opacity, a blend mode or a soft mask may apply to it
    doc, xref = page.parent, images[0][0]
    if doc.xref_get_key(xref, "Filter") != ("name", "/DCTDecode"):
        return None
    if any(doc.xref_get_key(xref, key)[0] != "null" for key in _ALTERING_KEYS):
        return None
    raw: bytes = doc.xref_stream_raw(xref)
    return raw
