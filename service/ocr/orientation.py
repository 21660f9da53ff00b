"""Finding how far a page must be turned (0/90/180/270) to read it upright, with Tesseract's OSD.

OSD (`--psm 0` with osd.traineddata) classifies the orientation of the glyphs it finds. Measured on
typeset pages (tests/unit/ocr_samples.py, letter size, 7-18 pt, turned 0/90/180/270):

- at 200 dpi and above every answer was right, 8-21 confidence for a full page, 1.3-4 for one or
  two lines; ambiguous text (all capitals, digits like 0 1 8) came back right but below 1.0;
- below ~150 dpi small glyphs blur and OSD turns upright pages over with confidence up to 2.2.

So OSD runs on a copy downscaled to no less than 200 dpi (about 30% cheaper than 300 dpi), its
answer is trusted from confidence 1.0, and pages with too little text (where OSD gives up) are left
as they are. Even so it costs about a third of a page's reading, so page.py asks it only about pages that
need it: those whose lines run down the page, and those that read badly as they came.
"""

from __future__ import annotations

import logging
import re

import numpy as np
from PIL import Image

from service.ocr import tesseract
from service.ocr.cancel import CancelToken

logger = logging.getLogger(__name__)

MIN_OSD_CONFIDENCE = 1.0
OSD_DPI = 200
# Tesseract refuses to believe a resolution below this.
_MIN_TESSERACT_DPI = 70

_ROTATE = re.compile(rb"^Rotate:\s*(\d+)", re.MULTILINE)
_CONFIDENCE = re.compile(rb"^Orientation confidence:\s*([\d.]+)", re.MULTILINE)


def detect_rotation(pixels: np.ndarray, *, dpi: int, timeout_s: float, cancel: CancelToken) -> int:
    """Degrees clockwise (0, 90, 180 or 270) to turn `pixels` so that its text reads upright."""
    height, width = pixels.shape
    factor = min(1.0, OSD_DPI / dpi)
    small = pixels
    if factor < 1.0:
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        small = np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BOX))
    run = tesseract.run(
        small,
        ["--dpi", str(max(_MIN_TESSERACT_DPI, round(dpi * factor))), "--psm", "0", "-l", "osd"],
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
