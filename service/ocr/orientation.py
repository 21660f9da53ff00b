"""Finding how far a page must be turned (0/90/180/270) to read it upright, with Tesseract's OSD.

OSD (`--psm 0` with osd.traineddata) classifies the orientation of the glyphs it finds. It is run on
a downscaled copy: orientation needs shapes, not detail, and the run costs about half as much. Its
answer is only trusted above a confidence threshold, and pages with too little text (where OSD gives
up) are left as they are.
"""

from __future__ import annotations

import logging
import re

import numpy as np
from PIL import Image

from service.ocr import tesseract
from service.ocr.cancel import CancelToken

logger = logging.getLogger(__name__)

# Below this OSD's answer on short or noisy pages is close to a coin toss; see the measurements in
# tests/unit/test_ocr_orientation.py.
MIN_OSD_CONFIDENCE = 2.0
# OSD sees orientation at ~150 dpi as well as at 300 dpi, in about half the time.
_OSD_LONG_SIDE_PX = 1700

_ROTATE = re.compile(rb"^Rotate:\s*(\d+)", re.MULTILINE)
_CONFIDENCE = re.compile(rb"^Orientation confidence:\s*([\d.]+)", re.MULTILINE)


def detect_rotation(
    pixels: np.ndarray, *, dpi: int, timeout_s: float, cancel: CancelToken
) -> int:
    """Degrees clockwise (0, 90, 180 or 270) to turn `pixels` so that its text reads upright."""
    height, width = pixels.shape
    factor = min(1.0, _OSD_LONG_SIDE_PX / max(height, width))
    small = pixels
    if factor < 1.0:
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        small = np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BOX))
    run = tesseract.run(
        tesseract.encode_pgm(small),
        ["--dpi", str(max(70, round(dpi * factor))), "--psm", "0", "-l", "osd"],
        output_exts=(),
        timeout_s=timeout_s,
        cancel=cancel,
    )
    rotate, confidence = _ROTATE.search(run.stdout), _CONFIDENCE.search(run.stdout)
    if run.returncode != 0 or rotate is None or confidence is None:
        # Too few characters: nothing to orient by, so keep the page as it is.
        logger.debug("OSD found no orientation (exit code %d)", run.returncode)
        return 0
    degrees, score = int(rotate.group(1)) % 360, float(confidence.group(1))
    if score < MIN_OSD_CONFIDENCE:
        logger.debug("OSD suggests %d degrees at confidence %.2f, too low to trust", degrees, score)
        return 0
    return degrees


def turn(pixels: np.ndarray, degrees_cw: int) -> np.ndarray:
    """`pixels` turned clockwise by a multiple of 90 degrees."""
    # np.rot90 turns counter-clockwise for positive k.
    return np.ascontiguousarray(np.rot90(pixels, k=-(degrees_cw // 90) % 4))
