# PyMuPDF ships only partial annotations: calls into it are untyped.
# mypy: disable-error-code="no-untyped-call"
from __future__ import annotations

import numpy as np
import pymupdf
import pytest
from PIL import Image

from service.ocr import render
from service.ocr.render import MAX_SIDE_PX, MIN_OCR_DPI, choose_scale, decode_scan, fit_scale, render_gray, render_page
from tests.unit import ocr_samples
from tests.unit.test_ocr_page import STRAIGHT_MAX_CER, ocr


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


def assert_as_mupdf_draws(page: pymupdf.Page, scale: float, jpeg: bytes | None = None) -> None:
    decoded = decode_scan(page, scale, jpeg)
    drawn = render_gray(page, scale)
    assert decoded is not None
    assert decoded.shape == drawn.shape
    difference = np.abs(decoded.astype(np.int16) - drawn)
    # The luma against MuPDF's gray: a level or two. Brought down in size, averaged by area (or by libjpeg)
    # against MuPDF's wider filter: a stroke's edge comes out sharper by up to a few dozen levels.
    assert difference.mean() < 1.5
    assert np.percentile(difference, 99) <= 24


@pytest.mark.parametrize("mode", ["L", "RGB"])
@pytest.mark.parametrize("dpi", [200, 100, 150])  # as stored; halved (libjpeg decodes it at half); by 3/4
def test_jpeg_scan_is_decoded_to_the_pixels_mupdf_draws(mode: str, dpi: int) -> None:
    page = first_page(ocr_samples.scanned_pdf([ocr_samples.scan(dpi=200)], fmt="JPEG", mode=mode))
    assert_as_mupdf_draws(page, choose_scale(page, dpi=dpi, max_pixels=40_000_000, is_image=False))


def test_jpeg_photo_is_decoded_to_the_pixels_mupdf_draws() -> None:
    data = ocr_samples.image_bytes(ocr_samples.scan(dpi=200), "JPEG", mode="RGB")
    page = first_page(data, "jpeg")
    assert_as_mupdf_draws(page, choose_scale(page, dpi=300, max_pixels=40_000_000, is_image=True), data)


@pytest.mark.parametrize("dpi", [300, 100])  # at its own 200 dpi; halved
def test_jpeg_scan_reads_as_mupdf_drawn(monkeypatch: pytest.MonkeyPatch, dpi: int) -> None:
    data = ocr_samples.scanned_pdf([ocr_samples.scan(dpi=200)], fmt="JPEG", mode="RGB")
    decoded = ocr(data, dpi=dpi)
    monkeypatch.setattr(render, "decode_scan", lambda *args: None)
    drawn = ocr(data, dpi=dpi)
    assert decoded.text == drawn.text
    assert ocr_samples.cer(ocr_samples.TEXT, decoded.text) < STRAIGHT_MAX_CER


def test_what_is_not_one_upright_jpeg_scan_is_drawn_by_mupdf() -> None:
    scan = ocr_samples.scan(dpi=100)
    jpeg_pdf = ocr_samples.scanned_pdf([scan], dpi=100, fmt="JPEG")
    assert decode_scan(first_page(jpeg_pdf), 1.0) is not None  # as it is, it is decoded
    pages = {
        "PNG": first_page(ocr_samples.scanned_pdf([scan], dpi=100)),
        "CMYK": first_page(ocr_samples.scanned_pdf([scan], dpi=100, fmt="JPEG", mode="CMYK")),
        "enlarged": first_page(jpeg_pdf),
    }
    turned = pymupdf.open(stream=jpeg_pdf, filetype="pdf")
    turned[0].set_rotation(90)
    pages["/Rotate"] = turned[0]
    stamped = pymupdf.open(stream=jpeg_pdf, filetype="pdf")
    stamped[0].insert_text((20, 20), "PAID", fontsize=12)
    pages["text drawn over it"] = stamped[0]
    noted = pymupdf.open(stream=jpeg_pdf, filetype="pdf")
    noted[0].add_text_annot((20, 20), "a note")
    pages["annotation"] = noted[0]
    for name, prefix in {"clipped": b"q 0 0 100 100 re W n\n", "half opaque": b"q /Half gs\n"}.items():
        altered = pymupdf.open(stream=jpeg_pdf, filetype="pdf")
        contents = altered[0].get_contents()[0]
        altered.update_stream(contents, prefix + altered.xref_stream(contents) + b"\nQ")
        resources = int(altered.xref_get_key(altered[0].xref, "Resources")[1].split()[0])
        altered.xref_set_key(resources, "ExtGState", "<</Half <</ca 0.5>>>>")
        pages[name] = altered[0]
    nested = pymupdf.open()
    nested.new_page(width=scan.width * 0.72, height=scan.height * 0.72).show_pdf_page(
        nested[0].rect, pymupdf.open(stream=jpeg_pdf, filetype="pdf"), 0
    )
    pages["drawn through a form"] = nested[0]
    margin = pymupdf.open()
    margin.new_page(width=scan.width * 0.72 + 20, height=scan.height * 0.72).insert_image(
        pymupdf.Rect(0, 0, scan.width * 0.72, scan.height * 0.72), stream=ocr_samples.image_bytes(scan, "JPEG")
    )
    pages["white margin"] = margin[0]
    for what, page in pages.items():
        scale = 2.0 if what == "enlarged" else 1.0  # stored at 100 dpi: 1.39 pixels a point
        assert decode_scan(page, scale) is None, what
    oriented = ocr_samples.jpeg_with_exif_orientation(scan, 6)
    assert decode_scan(first_page(oriented, "jpeg"), 1.0, oriented) is None
