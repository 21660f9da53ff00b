from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from service.ocr import CancelToken, PageOptions, PageResult, process_page, tesseract
from service.ocr.deskew import TextLines
from service.ocr.page import PageImage, _read_upright
from tests.unit import ocr_samples
from tests.unit.ocr_samples import TEXT, cer

PDF = "application/pdf"
STRAIGHT_MAX_CER = 0.05


def ocr(data: bytes, media_type: str = PDF, index: int = 0, **options: object) -> PageResult:
    return process_page(data, media_type, index, PageOptions(**options), CancelToken())  # type: ignore[arg-type]


@pytest.fixture
def no_tesseract(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("tesseract was started")

    monkeypatch.setattr(subprocess, "Popen", refuse)


def test_straight_scan() -> None:
    result = ocr(ocr_samples.scanned_pdf([ocr_samples.scan()]))
    assert result.source == "ocr"
    assert result.number == 1
    assert result.rotation == 0
    assert cer(TEXT, result.text) < STRAIGHT_MAX_CER
    assert result.confidence is not None and result.confidence > 80
    assert (result.width, result.height) == pytest.approx((612, 396), abs=0.5)
    assert result.text_pdf is not None and result.text_pdf.startswith(b"%PDF-")


def test_text_layer_page_never_starts_tesseract(no_tesseract: None) -> None:
    # How fast a text-layer page is read is benchmark 3's figure, not a unit test's.
    result = ocr(ocr_samples.text_pdf())
    assert result.source == "text-layer"
    assert result.confidence is None
    assert result.text_pdf is None
    assert cer(TEXT, result.text) == 0


def test_force_ocr_reads_a_text_layer_page_with_tesseract() -> None:
    result = ocr(ocr_samples.text_pdf(), force_ocr=True)
    assert result.source == "ocr"
    assert cer(TEXT, result.text) < STRAIGHT_MAX_CER


def test_mixed_pdf_read_concurrently() -> None:
    # As the worker runs it: pages of one document in flight at once on a thread pool.
    data = ocr_samples.mixed_pdf()
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda i: ocr(data, index=i), range(4)))
    assert [r.source for r in results] == ["text-layer", "ocr", "text-layer", "ocr"]
    assert [r.number for r in results] == [1, 2, 3, 4]
    assert all(cer(TEXT, r.text) < STRAIGHT_MAX_CER for r in results)


@pytest.mark.parametrize("turned", [90, 180, 270])
def test_turned_scan_is_read_upright(turned: int) -> None:
    result = ocr(ocr_samples.scanned_pdf([ocr_samples.scan(rotate=turned)]))
    # Turned `turned` degrees clockwise, it reads upright after turning the rest of the way round.
    assert result.rotation == (360 - turned) % 360
    assert cer(TEXT, result.text) < STRAIGHT_MAX_CER


@pytest.fixture
def osd_runs(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The orientation-detection runs of tesseract, recorded as they pass (they still run)."""
    runs: list[list[str]] = []
    real_run = tesseract.run

    def recording_run(pixels: object, args: list[str], **kwargs: object) -> object:
        if "osd" in args:
            runs.append(args)
        return real_run(pixels, args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(tesseract, "run", recording_run)
    return runs


@pytest.mark.parametrize(("turned", "osd_expected"), [(0, False), (90, True), (180, True), (270, True)])
def test_orientation_detection_runs_only_for_pages_that_need_it(
    turned: int, osd_expected: bool, osd_runs: list[list[str]]
) -> None:
    # An upright page that reads confidently is never given to OSD (a third of a reading's cost); a
    # sideways page is (its lines run down the page), and so is an upside-down one (it reads badly).
    result = ocr(ocr_samples.scanned_pdf([ocr_samples.scan(rotate=turned)]))
    assert result.rotation == (360 - turned) % 360
    assert bool(osd_runs) == osd_expected
    assert len(osd_runs) <= 1


@pytest.mark.parametrize("rotate", [90, 270])
def test_pdf_rotate_is_honoured(rotate: int) -> None:
    result = ocr(ocr_samples.rotated_text_pdf(rotate))
    assert result.rotation == 0  # /Rotate already shows it upright
    assert (result.width, result.height) == pytest.approx((612, 396), abs=0.5)
    assert cer(TEXT, result.text) < STRAIGHT_MAX_CER


@pytest.mark.parametrize("skew_deg", [-5.0, 2.0, 5.0])
def test_skewed_scan(skew_deg: float) -> None:
    # Without deskewing, Tesseract reads this page at 5 degrees with a CER of about 50%.
    result = ocr(ocr_samples.scanned_pdf([ocr_samples.scan(skew_deg=skew_deg)]))
    assert cer(TEXT, result.text) < STRAIGHT_MAX_CER


def test_turned_and_skewed_scan() -> None:
    result = ocr(ocr_samples.scanned_pdf([ocr_samples.scan(skew_deg=4.0, rotate=90)]))
    assert result.rotation == 270
    assert cer(TEXT, result.text) < STRAIGHT_MAX_CER


@pytest.mark.parametrize(
    ("mode", "fmt", "media_type"),
    [
        ("1", "PNG", "image/png"),
        ("L", "PNG", "image/png"),
        ("P", "PNG", "image/png"),
        ("RGBA", "PNG", "image/png"),
        ("RGB", "JPEG", "image/jpeg"),
        ("CMYK", "JPEG", "image/jpeg"),
        ("1", "TIFF", "image/tiff"),
    ],
)
def test_image_modes(mode: str, fmt: str, media_type: str) -> None:
    lines = ocr_samples.LINES[:3]  # a shorter page: seven OCR runs
    image = ocr_samples.scan(lines, height_pt=200)
    result = ocr(ocr_samples.image_bytes(image, fmt, mode=mode), media_type)
    assert result.source == "ocr"
    assert (result.width, result.height) == (image.width, image.height)  # native pixels
    assert cer("\n".join(lines), result.text) < STRAIGHT_MAX_CER


def test_jpeg_exif_orientation() -> None:
    image = ocr_samples.scan()
    result = ocr(ocr_samples.jpeg_with_exif_orientation(image, 6), "image/jpeg")
    assert result.rotation == 0  # the EXIF tag, not OSD, turned it upright
    assert (result.width, result.height) == (image.width, image.height)
    assert cer(TEXT, result.text) < STRAIGHT_MAX_CER


def test_multipage_tiff_pages_are_its_frames() -> None:
    frames = [ocr_samples.scan([line]) for line in ocr_samples.LINES[:2]]
    data = ocr_samples.multipage_tiff(frames)
    texts = [ocr(data, "image/tiff", index=i).text for i in range(2)]
    assert [cer(line, text) for line, text in zip(ocr_samples.LINES[:2], texts)] == [0, 0]


def test_huge_page_renders_within_max_pixels() -> None:
    # A 100 x 100 inch page would be 900 megapixels at 300 dpi.
    result = ocr(ocr_samples.huge_pdf(), force_ocr=True, max_pixels=4_000_000)
    assert (result.width, result.height) == (7200, 7200)
    assert cer("\n".join(ocr_samples.LINES[:2]), result.text) < STRAIGHT_MAX_CER


def test_blank_page() -> None:
    blank = Image.new("L", (850, 550), 255)
    result = ocr(ocr_samples.scanned_pdf([blank], dpi=100))
    assert result.text == ""
    assert result.confidence is None
    assert result.rotation == 0


def test_to_dict_is_the_api_page_object() -> None:
    result = PageResult(3, "text", "ocr", 91.5, 90, 612.0, 792.0)
    page = result.to_dict()
    assert page == {
        "number": 3,
        "text": "text",
        "source": "ocr",
        "confidence": 91.5,
        "rotation": 90,
        "width": 612.0,
        "height": 792.0,
        "preprocessed": False,
    }
    json.dumps(page)


def test_index_out_of_range() -> None:
    with pytest.raises(IndexError):
        ocr(ocr_samples.text_pdf(), index=1)


@pytest.mark.parametrize(("dpi", "fontsize"), [(72, 12.0), (120, 10.0)])
def test_small_images(dpi: int, fontsize: float) -> None:
    # On glyphs this small OSD has turned the 120 dpi page upside down with confidence 1.6; the OCR
    # confidence of the turned page overrules it.
    image = ocr_samples.scan(dpi=dpi, fontsize=fontsize)
    result = ocr(ocr_samples.image_bytes(image, "PNG"), "image/png")
    assert result.rotation == 0
    assert (result.width, result.height) == (image.width, image.height)
    assert cer(TEXT, result.text) < STRAIGHT_MAX_CER


def test_upright_page_taken_for_sideways_is_still_read_upright(tmp_path: Path) -> None:
    # Should something other than text lines (rules, a table's columns) make an upright page look
    # sideways, both sideways readings are garbage and the page as it came wins.
    pixels = np.asarray(ocr_samples.scan())
    image = PageImage(pixels, 200, tmp_path)
    rotation, reading = _read_upright(image, TextLines(sideways=True, skew_deg=0.0), PageOptions(), CancelToken())
    assert rotation == 0
    assert cer(TEXT, reading.parsed.text) < STRAIGHT_MAX_CER


def test_sideways_page_the_line_search_missed_is_still_turned(tmp_path: Path) -> None:
    # Tesseract reads lines running down the image as vertical writing, confidently: the reading is
    # not taken as upright for that, and OSD finds the turn.
    pixels = np.asarray(ocr_samples.scan(rotate=90))
    image = PageImage(pixels, 200, tmp_path)
    rotation, reading = _read_upright(image, TextLines(sideways=False, skew_deg=0.0), PageOptions(), CancelToken())
    assert rotation == 270
    assert cer(TEXT, reading.parsed.text) < STRAIGHT_MAX_CER


def test_page_image_lets_go_of_its_pixels_while_tesseract_runs(tmp_path: Path) -> None:
    pixels = np.asarray(ocr_samples.scan())
    image = PageImage(pixels.copy(), 200, tmp_path)
    turned = image.file_for_tesseract(np.rot90(image.pixels), as_is=False)
    assert image._pixels is None
    assert np.array_equal(np.asarray(Image.open(turned)), np.rot90(pixels))
    assert np.array_equal(image.pixels, pixels)  # loaded back, the same to the pixel
    page = image.file_for_tesseract(image.pixels, as_is=True)
    assert page != turned
    assert image._pixels is None
    assert np.array_equal(np.asarray(Image.open(page)), pixels)
    assert np.array_equal(image.pixels, pixels)
    assert image.file_for_tesseract(image.pixels, as_is=True) == page  # written once
