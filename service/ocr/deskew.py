"""Straightening pages scanned a few degrees askew."""

from __future__ import annotations

import numpy as np


def deskew(pixels: np.ndarray) -> np.ndarray:
    return pixels
