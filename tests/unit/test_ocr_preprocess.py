from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image

from service.ocr import CancelToken, PageOptions, PageResult, process_page
from service.ocr.preprocess import prepare
from tests.unit import ocr_degraded, ocr_samples
from tests.unit.ocr_samples import TEXT, cer

# Issue #18: every degraded variant is held to this per page (the goal is 1.5%).
DEGRADED_MAX_CER = 0.03
DPI = 300
FONT_SIZE = 12.0
# Variants that plain Tesseract reads badly (measured on this page: 11-100% CER) and that the check must
# therefore clean; the others read within the bound as they come, and may or may not be cleaned.
MUST_CLEAN = {
    "light-right", "light-bottom", "vignette", "shadow", "salt-and-pepper", "phone-shadow",
    "phone-vignette-yellow", "coffee-copy", "faded-coloured-uneven", "everything",
}  # fmt: skip


def read(data: bytes, media_type: str) -> PageResult:
    return process_page(data, media_type, 0, PageOptions(), CancelToken())


@pytest.fixture(scope="module")
def clean_page() -> Image.Image:
    return ocr_samples.scan(dpi=DPI, fontsize=FONT_SIZE)


@pytest.mark.parametrize("variant", list(ocr_degraded.VARIANTS))
def test_degraded_page_reads_within_the_bound(variant: str, clean_page: Image.Image) -> None:
    data, media_type = ocr_degraded.degrade(clean_page, ocr_degraded.VARIANTS[variant], seed=1, dpi=DPI)
    result = read(data, media_type)
    assert cer(TEXT, result.text) <= DEGRADED_MAX_CER, result.text
    assert result.rotation == 0
    if variant in MUST_CLEAN:
        assert result.preprocessed


@pytest.mark.slow
@pytest.mark.parametrize("seed", [2, 3])
@pytest.mark.parametrize("variant", list(ocr_degraded.VARIANTS))
def test_degraded_page_reads_within_the_bound_other_draws(variant: str, seed: int, clean_page: Image.Image) -> None:
    # The same recipes with other draws of their randomness: other sides, depths, rings and noise.
    data, media_type = ocr_degraded.degrade(clean_page, ocr_degraded.VARIANTS[variant], seed=seed, dpi=DPI)
    assert cer(TEXT, read(data, media_type).text) <= DEGRADED_MAX_CER


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["phone", "phone-shadow", "coffee-copy", "faded-coloured-uneven"])
def test_degraded_page_at_200_dpi(variant: str) -> None:
    image = ocr_samples.scan(dpi=200, fontsize=FONT_SIZE)
    data, media_type = ocr_degraded.degrade(image, ocr_degraded.VARIANTS[variant], seed=1, dpi=200)
    assert cer(TEXT, read(data, media_type).text) <= DEGRADED_MAX_CER


@pytest.mark.parametrize(
    ("image", "dpi"),
    [
        pytest.param(lambda: ocr_samples.scan(), 200, id="200-dpi"),
        pytest.param(lambda: ocr_samples.scan(dpi=DPI, fontsize=FONT_SIZE), DPI, id="300-dpi"),
        pytest.param(lambda: ocr_samples.scan(dpi=DPI, height_pt=792.0, fontsize=8.0), DPI, id="small-print"),
        pytest.param(lambda: ocr_samples.scan(skew_deg=4.0), 200, id="skewed"),
        pytest.param(lambda: ocr_samples.scan(rotate=90), 200, id="turned"),
        pytest.param(lambda: ocr_samples.scan(dpi=72, fontsize=12.0), 72, id="72-dpi"),
    ],
)
def test_clean_scan_is_not_preprocessed(image: Callable[[], Image.Image], dpi: int) -> None:
    # A clean scan goes to Tesseract as it came: whatever reads well today reads exactly as before.
    pixels = np.asarray(image())
    prepared = prepare(pixels, dpi)
    assert not prepared.cleaned
    assert prepared.pixels is pixels
    assert prepared.condition.reasons == ()


def test_clean_scan_read_says_it_was_not_preprocessed() -> None:
    result = read(ocr_samples.scanned_pdf([ocr_samples.scan()]), "application/pdf")
    assert result.source == "ocr"
    assert result.preprocessed is False
    assert result.to_dict()["preprocessed"] is False


def test_text_layer_page_is_not_preprocessed() -> None:
    result = read(ocr_samples.text_pdf(), "application/pdf")
    assert result.source == "text-layer"
    assert result.preprocessed is False


def test_degraded_read_says_it_was_preprocessed(clean_page: Image.Image) -> None:
    data, media_type = ocr_degraded.degrade(clean_page, ocr_degraded.VARIANTS["phone"], seed=1, dpi=DPI)
    result = read(data, media_type)
    assert result.preprocessed is True
    assert result.to_dict()["preprocessed"] is True


@pytest.mark.parametrize(
    ("variant", "reason"),
    [("light-left", "uneven light"), ("shadow", "uneven light"), ("salt-and-pepper", "specks")],
)
def test_the_check_names_what_it_found(variant: str, reason: str, clean_page: Image.Image) -> None:
    data, _ = ocr_degraded.degrade(clean_page, ocr_degraded.VARIANTS[variant], seed=1, dpi=DPI)
    pixels = _gray(data)
    prepared = prepare(pixels, DPI)
    assert reason in prepared.condition.reasons
    assert prepared.cleaned
    assert prepared.pixels.shape == pixels.shape
    assert set(np.unique(prepared.pixels).tolist()) <= {0, 255}  # binarised


def test_faded_noisy_ink_is_noise_against_its_contrast(clean_page: Image.Image) -> None:
    # Noise of 20 grey levels on black ink reads; on ink faded to half the contrast it does not.
    noisy, _ = ocr_degraded.degrade(clean_page, ("gaussian-noise",), seed=1, dpi=DPI)
    faded, _ = ocr_degraded.degrade(clean_page, ("low-contrast", "gaussian-noise"), seed=1, dpi=DPI)
    assert "noise" not in prepare(_gray(noisy), DPI).condition.reasons
    assert "noise" in prepare(_gray(faded), DPI).condition.reasons


def test_degradations_are_reproducible(clean_page: Image.Image) -> None:
    recipe = ocr_degraded.VARIANTS["everything"]
    first = ocr_degraded.degrade(clean_page, recipe, seed=7, dpi=DPI)
    assert ocr_degraded.degrade(clean_page, recipe, seed=7, dpi=DPI) == first
    assert ocr_degraded.degrade(clean_page, recipe, seed=8, dpi=DPI) != first


def test_unknown_degradation_is_refused(clean_page: Image.Image) -> None:
    with pytest.raises(ValueError, match="unknown"):
        ocr_degraded.degrade(clean_page, ("fog",), seed=1, dpi=DPI)


def test_blank_and_tiny_pages_pass_the_check() -> None:
    for pixels in (np.full((550, 850), 255, np.uint8), np.full((5, 7), 255, np.uint8), np.zeros((40, 40), np.uint8)):
        prepared = prepare(pixels, 100)
        assert prepared.pixels.shape == pixels.shape


def _gray(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("L"))
