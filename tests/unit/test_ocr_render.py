# PyMuPDF ships only partial annotations: calls into it are untyped.
# mypy: disable-error-code="no-untyped-call"
from __future__ import annotations

import pymupdf
import pytest
from PIL import Image

from service.ocr.render import MAX_SIDE_PX, MIN_OCR_DPI, choose_scale, fit_scale, render_page
from tests.unit import ocr_samples


def first_page(data: bytes, filetype: str = "pdf") -> pymupdf.Page:
    return pymupdf.open(stream=data, filetype=filetype)[0]


@pytest.mark.parametrize(
    ("scan_dpi", "requested_dpi", "expected_dpi"),
    [
        (150, 300, 150),  # an embedded 150 dpi scan is not blown up to 300
        (400, 300, 300),  # a finer scan is brought down to what was asked
        (72, 300, MIN_OCR_DPI),  # a coarse one is brought up, but only so far
        (300, 300, 300),
    ],
)
def test_embedded_scan_is_rendered_at_its_own_resolution(scan_dpi: int, requested_dpi: int, expected_dpi: int) -> None:
    blank = Image.new("L", (int(8.5 * scan_dpi), int(5.5 * scan_dpi)), 255)
    page = first_page(ocr_samples.scanned_pdf([blank], dpi=scan_dpi))
    scale = choose_scale(page, dpi=requested_dpi, max_pixels=40_000_000, is_image=False)
    assert scale * 72 == pytest.approx(expected_dpi, rel=0.01)


def test_vector_page_is_rendered_at_the_requested_dpi() -> None:
    page = first_page(ocr_samples.text_pdf())
    assert choose_scale(page, dpi=300, max_pixels=40_000_000, is_image=False) == pytest.approx(300 / 72)


@pytest.mark.parametrize("declared_dpi", [None, 72, 300])
def test_images_are_read_at_their_own_pixels(declared_dpi: int | None) -> None:
    image = ocr_samples.scan(dpi=200)
    if declared_dpi is None:
        data = ocr_samples.image_bytes(image, "PNG")
    else:
        data = ocr_samples.image_bytes(image, "PNG", dpi=(declared_dpi, declared_dpi))
    rendered = render_page(first_page(data, "png"), dpi=300, max_pixels=40_000_000, is_image=True)
    assert rendered.pixels.shape == (image.height, image.width)


def test_tiny_images_are_enlarged() -> None:
    image = Image.new("L", (400, 200), 255)
    page = first_page(ocr_samples.image_bytes(image, "PNG"), "png")
    rendered = render_page(page, dpi=300, max_pixels=40_000_000, is_image=True)
    assert rendered.pixels.shape == (400, 800)


def test_huge_page_renders_within_max_pixels() -> None:
    page = first_page(ocr_samples.huge_pdf())
    rendered = render_page(page, dpi=300, max_pixels=40_000_000, is_image=False)
    height, width = rendered.pixels.shape
    assert width * height <= 40_000_000
    assert width * height > 39_000_000  # lowered only as far as needed
    assert rendered.pixels.min() == 0 and rendered.pixels.max() == 255  # ink on white


@pytest.mark.parametrize("max_pixels", [1_000_000, 4_000_000, 40_000_000])
@pytest.mark.parametrize("size_pt", [(612, 792), (7200, 7200), (72, 72_000), (14_400, 10)])
def test_fit_scale(size_pt: tuple[float, float], max_pixels: int) -> None:
    rect = pymupdf.Rect(0, 0, *size_pt)
    scale = fit_scale(rect, 300 / 72, max_pixels=max_pixels)
    irect = (rect * pymupdf.Matrix(scale, scale)).irect
    assert irect.width * irect.height <= max_pixels
    assert max(irect.width, irect.height) <= MAX_SIDE_PX
    assert scale <= 300 / 72
