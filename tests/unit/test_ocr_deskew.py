from __future__ import annotations

import numpy as np
import pytest

from service.ocr.deskew import MIN_SKEW_DEG, deskew, find_skew
from tests.unit import ocr_samples


@pytest.mark.parametrize("skew_deg", [-5.0, -2.5, -1.0, 0.0, 0.7, 2.0, 4.0, 5.5])
def test_find_skew(skew_deg: float) -> None:
    pixels = np.asarray(ocr_samples.scan(skew_deg=skew_deg, dpi=150))
    assert find_skew(pixels) == pytest.approx(skew_deg, abs=0.15)


def test_straight_page_is_left_alone() -> None:
    pixels = np.asarray(ocr_samples.scan(dpi=150))
    result, angle_deg = deskew(pixels)
    assert angle_deg == 0.0
    assert result is pixels


def test_skewed_page_is_levelled() -> None:
    pixels = np.asarray(ocr_samples.scan(skew_deg=4.0, dpi=150))
    result, angle_deg = deskew(pixels)
    assert angle_deg == pytest.approx(-4.0, abs=0.15)
    assert abs(find_skew(result)) < MIN_SKEW_DEG
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
    assert deskew(pixels)[1] == 0.0


def test_beyond_max_skew_is_not_guessed_wildly() -> None:
    # A page turned 20 degrees is not scanner skew: whatever is found stays within the search range.
    pixels = np.asarray(ocr_samples.scan(skew_deg=20.0, dpi=100))
    assert abs(find_skew(pixels)) <= 6.0
