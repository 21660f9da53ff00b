from __future__ import annotations

import numpy as np
import pytest

from service.ocr.deskew import MAX_SKEW_DEG, MIN_SKEW_DEG, TextLines, find_lines, level
from tests.unit import ocr_samples


@pytest.mark.parametrize("skew_deg", [-5.0, -2.5, -1.0, 0.0, 0.7, 2.0, 4.0, 5.5])
def test_find_skew(skew_deg: float) -> None:
    pixels = np.asarray(ocr_samples.scan(skew_deg=skew_deg, dpi=150))
    lines = find_lines(pixels)
    assert not lines.sideways
    assert lines.skew_deg == pytest.approx(skew_deg, abs=0.15)


@pytest.mark.parametrize("turned", [90, 180, 270])
@pytest.mark.parametrize("skew_deg", [-4.0, 0.0, 3.0])
def test_turned_pages(turned: int, skew_deg: float) -> None:
    # A quarter turn makes the lines run down the page; the lean is the same either way up.
    pixels = np.asarray(ocr_samples.scan(skew_deg=skew_deg, rotate=turned, dpi=150))
    lines = find_lines(pixels)
    assert lines.sideways == (turned != 180)
    assert lines.skew_deg == pytest.approx(skew_deg, abs=0.15)


def test_levelled_sideways_page_has_no_skew_left() -> None:
    pixels = np.asarray(ocr_samples.scan(skew_deg=4.0, rotate=90, dpi=150))
    result, angle_deg = level(pixels, find_lines(pixels).skew_deg)
    assert angle_deg == pytest.approx(-4.0, abs=0.15)
    assert abs(find_lines(result).skew_deg) < MIN_SKEW_DEG


def test_straight_page_is_left_alone() -> None:
    pixels = np.asarray(ocr_samples.scan(dpi=150))
    result, angle_deg = level(pixels, find_lines(pixels).skew_deg)
    assert angle_deg == 0.0
    assert result is pixels


def test_skewed_page_is_levelled() -> None:
    pixels = np.asarray(ocr_samples.scan(skew_deg=4.0, dpi=150))
    result, angle_deg = level(pixels, find_lines(pixels).skew_deg)
    assert angle_deg == pytest.approx(-4.0, abs=0.15)
    assert abs(find_lines(result).skew_deg) < MIN_SKEW_DEG
    assert result.dtype == np.uint8 and result.ndim == 2
    # The image grew to keep its corners, on a white background.
    assert result.shape[0] > pixels.shape[0] and result.shape[1] > pixels.shape[1]
    assert result[0, 0] == 255


@pytest.mark.parametrize(
    "pixels",
    [np.full((600, 900), 255, np.uint8), np.zeros((600, 900), np.uint8)],
    ids=["blank", "black"],
)
def test_no_text_means_no_skew(pixels: np.ndarray) -> None:
    lines = find_lines(pixels)
    assert not lines.sideways
    assert level(pixels, lines.skew_deg)[1] == 0.0


def test_too_little_ink_to_tell() -> None:
    pixels = np.full((600, 900), 255, np.uint8)
    pixels[300:303, 400:410] = 0
    assert find_lines(pixels) == TextLines(sideways=False, skew_deg=0.0)


def test_beyond_max_skew_is_not_guessed_wildly() -> None:
    # A page turned 20 degrees is not scanner skew: whatever is found stays within the search range.
    pixels = np.asarray(ocr_samples.scan(skew_deg=20.0, dpi=100))
    assert abs(find_lines(pixels).skew_deg) <= MAX_SKEW_DEG
