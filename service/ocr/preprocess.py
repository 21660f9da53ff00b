"""Making photographed and poorly copied pages readable: background normalisation, denoising, binarisation.

Tesseract binarises a page with one global (Otsu) threshold. That holds for a scan, whose paper is
evenly lit, and for each defect of a phone photo alone; it breaks when they come together. Light
falling off across the page puts the paper of the dark side below the ink of the bright side, so no
single threshold separates them, and sensor noise, multiplied by the same fall-off, turns the dark
side to speckle. A clean 300-dpi page degraded that way read at 37% CER; dividing the page by an
estimate of its background alone brought it back to 1.1%.

So a page that needs it is:

1. divided by its background (the paper as lit), estimated on a copy at about 75 dpi by a grey-level
   closing (which fills in strokes thinner than a tenth of an inch) and a median: the paper comes out
   white however the light fell, stains and coloured paper included;
2. cleared of salt-and-pepper specks by a 3x3 median, where it has them, and smoothed by a small
   Gaussian (sigma 1 px at 300 dpi) always: the division multiplies the noise of the darkest paper
   as much as it brightens it (three times under a third of the light), and JPEG hides that noise
   from a pixel-level estimate in blotches of 8x8; the median keeps strokes of two pixels and more,
   the Gaussian blurs them less than the noise would break them;
3. binarised with Sauvola's local threshold, which follows ink whose contrast varies across the page
   (faded toner, a shadow's remaining gradient, blur) where one global threshold does not.

Which pages need it is decided up front, before any OCR, from the same background estimate and a
sample of the page's rows: how unevenly the paper is lit, how many isolated specks lie on it, and how
strong the noise is against the ink. A clean scan passes all three and goes to Tesseract untouched, so
pages that read well today read exactly as before. The check costs about 20 ms of CPU on a 300-dpi
letter page and the cleaning, where it runs, about 40 ms more (BENCHMARKS.md section 9), against 1.6 s
for reading the page; finding a bad reading afterwards would have cost a second reading.

The filters are OpenCV's (opencv-python-headless): closing, median, Gaussian and box filters are
vectorised C++, a few milliseconds each on a 300-dpi page. scikit-image has Sauvola ready-made but
computes in float64 through scipy, several times slower here, and brings scipy with it; the Sauvola
threshold itself is three lines over OpenCV's box filters.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

logger = logging.getLogger(__name__)

# OpenCV would start a thread per core for each filter; pages already run one process per core
# (tesseract.py says the same of OpenMP), so threads would only fight over the cores.
cv2.setNumThreads(1)

# The background is estimated at about this resolution: low enough to be cheap and to average the noise
# away, high enough to follow a shadow's edge.
_BACKGROUND_DPI = 75
# The closing fills in dark features narrower than this: strokes of text up to bold 24 pt.
_STROKE_FILL_IN = 0.12
# Paper whose darkest part gets less than this share of the light of its brightest is unevenly lit.
UNEVEN_LIGHT = 0.8
# More isolated dark specks on the paper than this share of its pixels is salt and pepper.
MAX_SPECK_SHARE = 0.001
# Noise (standard deviation on the paper) stronger than this share of the ink's contrast needs cleaning:
# noise of 20 grey levels on black-on-white text reads (0.08); on faded ink (0.2 and more) it does not.
MAX_NOISE_TO_CONTRAST = 0.1
# Sauvola's window: about three letters of 11 pt text.
_SAUVOLA_WINDOW_IN = 0.14
# Sauvola's sensitivity: 0.3 leaves out the speckle that amplified noise leaves in a page's darkest
# corner (a photo under a shadow, with light falling off, read at 3.9-9.3% CER with 0.2 and 0% with
# 0.3), but drops faded ink, which keeps only with 0.2; the ink's measured contrast chooses.
_SAUVOLA_K = 0.3
_FADED_SAUVOLA_K = 0.2
FADED_CONTRAST = 0.55
_SAUVOLA_R = 128.0
# The rows sampled for the check: every this many rows, a band of three (a speck needs its neighbours).
_SAMPLE_EVERY_ROWS = 12
# Rows worked on at once where a whole page of floats would be large: sampled rows divided by the
# background (a 300-dpi letter page samples 275), rows of Sauvola's threshold.
_ROWS_AT_ONCE = 64
# Normalised levels: a pixel this light is paper, this dark is ink.
_PAPER = 0.75
_INK = 0.4


@dataclass(frozen=True)
class Condition:
    """What the check found on a page; every figure is after dividing by the background."""

    light: float  # the darkest paper's light over the brightest's: 1.0 evenly lit
    specks: float  # share of paper pixels that are isolated dark specks
    noise: float  # standard deviation of the paper's pixels over the ink's contrast
    contrast: float  # paper minus ink, as a share of the paper: 1.0 black on white

    @property
    def reasons(self) -> tuple[str, ...]:
        """Why the page needs cleaning; empty when it does not."""
        reasons = []
        if self.light < UNEVEN_LIGHT:
            reasons.append("uneven light")
        if self.specks > MAX_SPECK_SHARE:
            reasons.append("specks")
        if self.noise > MAX_NOISE_TO_CONTRAST:
            reasons.append("noise")
        return tuple(reasons)


@dataclass(frozen=True)
class Prepared:
    pixels: np.ndarray  # what to read: the page as it came, or cleaned and binarised (0 or 255)
    condition: Condition
    cleaned: bool


def prepare(pixels: np.ndarray, dpi: int) -> Prepared:
    """The page as Tesseract should read it: cleaned when the check finds it needs it, else as it came."""
    background = estimate_background(pixels, dpi)
    condition = assess(pixels, background)
    reasons = condition.reasons
    if not reasons:
        return Prepared(pixels, condition, cleaned=False)
    logger.debug("cleaning the page for %s: %s", ", ".join(reasons), condition)
    return Prepared(clean(pixels, dpi, background, condition), condition, cleaned=True)


@dataclass(frozen=True)
class Background:
    small: np.ndarray  # uint8, the paper as lit, at 1/factor of the page's size
    factor: int


def estimate_background(pixels: np.ndarray, dpi: int) -> Background:
    """The paper as lit, without the ink, at about _BACKGROUND_DPI."""
    height, width = pixels.shape
    factor = max(1, min(round(dpi / _BACKGROUND_DPI), height // 8, width // 8))
    small = _shrink(pixels, factor)
    side = 2 * round(_STROKE_FILL_IN * dpi / factor / 2) + 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))
    paper = cv2.morphologyEx(small, cv2.MORPH_CLOSE, kernel)
    # The closing keeps the brightest noise of each window; the median evens it out.
    paper = cv2.medianBlur(paper, 5)
    return Background(np.maximum(paper, 1), factor)


def _shrink(pixels: np.ndarray, factor: int) -> np.ndarray:
    """`pixels` averaged over blocks of `factor` x `factor` (the last rows and columns short of a whole block
    left out). Over whole blocks OpenCV's area resize takes its fast paths: a page's width is rarely a
    multiple of the factor, and at the fraction it gives (2550 / 637 = 4.003) the resize of a 300-dpi
    letter page took 11 ms, half of the check every page gets; halved twice it takes 0.4 ms."""
    height, width = pixels.shape
    small = pixels[: height // factor * factor, : width // factor * factor]
    while factor % 2 == 0:
        small = cv2.resize(small, (small.shape[1] // 2, small.shape[0] // 2), interpolation=cv2.INTER_AREA)
        factor //= 2
    if factor > 1:
        small = cv2.resize(small, (small.shape[1] // factor, small.shape[0] // factor), interpolation=cv2.INTER_AREA)
    return small


def assess(pixels: np.ndarray, background: Background) -> Condition:
    """How the page is lit, specked and noisy, from the background and bands of sampled rows."""
    paper = background.small
    bright, dark = np.percentile(paper, [98, 2])
    light = float(dark) / max(float(bright), 1.0)
    height, width = pixels.shape
    centres = np.arange(1, height - 1, _SAMPLE_EVERY_ROWS)
    if centres.size == 0 or width < 3:
        return Condition(light=light, specks=0.0, noise=0.0, contrast=1.0)
    # Each sampled row with the rows above and below it, divided by the background (nearest, by block),
    # a few hundred sampled rows at a time: all at once, a 40-megapixel page's bands took 100 MB of floats.
    columns = np.minimum(np.arange(width) // background.factor, paper.shape[1] - 1)
    paper_pixels, speck_pixels = 0, 0
    deviations, inks = [], []
    for chunk in np.array_split(centres, -(-centres.size // _ROWS_AT_ONCE)):
        bands = []
        for offset in (-1, 0, 1):
            rows = chunk + offset
            lit = paper[np.minimum(rows // background.factor, paper.shape[0] - 1)][:, columns]
            bands.append(pixels[rows].astype(np.float32) / lit.astype(np.float32))
        above, centre, below = bands
        middle = centre[:, 1:-1]
        left, right, up, down = centre[:, :-2], centre[:, 2:], above[:, 1:-1], below[:, 1:-1]
        neighbours = np.minimum(np.minimum(left, right), np.minimum(up, down))
        on_paper = neighbours > _PAPER
        paper_pixels += int(np.count_nonzero(on_paper))
        speck_pixels += int(np.count_nonzero(on_paper & (middle < _INK)))
        # Against the mean of its four neighbours a pixel of iid noise deviates by sigma * sqrt(1 + 1/4).
        deviations.append((middle - (left + right + up + down) / 4)[on_paper & (middle > _PAPER)])
        inks.append(middle[(middle < _INK + 0.2) & ~on_paper])
    if paper_pixels == 0:
        return Condition(light=light, specks=0.0, noise=0.0, contrast=1.0)
    specks = speck_pixels / paper_pixels
    # The median absolute deviation ignores the specks and the odd stroke edge.
    deviation = np.concatenate(deviations)
    sigma = 1.4826 * float(np.median(np.abs(deviation))) / np.sqrt(1.25) if deviation.size else 0.0
    ink = np.concatenate(inks)
    contrast = 1.0 - float(np.median(ink)) if ink.size > 100 else 1.0
    return Condition(light=light, specks=float(specks), noise=sigma / max(contrast, 0.05), contrast=contrast)


def clean(pixels: np.ndarray, dpi: int, background: Background, condition: Condition) -> np.ndarray:
    """`pixels` divided by the background, despeckled where `condition` says so, smoothed, binarised.
    Each step writes over the last one's page: a 40-megapixel page holds two page-sized arrays at most."""
    height, width = pixels.shape
    page = cv2.resize(background.small, (width, height), interpolation=cv2.INTER_LINEAR)
    cv2.divide(pixels, page, dst=page, scale=255)
    if condition.specks > MAX_SPECK_SHARE:
        page = cv2.medianBlur(page, 3)
    cv2.GaussianBlur(page, (0, 0), max(0.5, dpi / 300), dst=page)
    return sauvola(page, dpi, k=_FADED_SAUVOLA_K if condition.contrast < FADED_CONTRAST else _SAUVOLA_K)


def sauvola(pixels: np.ndarray, dpi: int, *, k: float = _SAUVOLA_K) -> np.ndarray:
    """Sauvola's binarisation: ink (0) where a pixel is no lighter than m * (1 + k * (s / R - 1)), with m and s
    the mean and standard deviation of its window, else paper (255).

    The window's statistics are taken on a copy at half the resolution and the threshold scaled back up:
    over a window of 40-odd pixels it barely changes from one pixel to the next (99.9% of pixels come out
    the same), and it costs a third of the full-resolution computation (35 ms rather than 110 ms on a
    300-dpi letter page). It is scaled up as 8-bit levels rather than floats (below); against a threshold
    scaled up as floats, 99.99% of the pixels of the degraded pages of BENCHMARKS.md section 9 come out
    the same."""
    height, width = pixels.shape
    factor = 2 if min(height, width) >= 64 else 1
    small = pixels
    if factor > 1:
        small = cv2.resize(pixels, (width // factor, height // factor), interpolation=cv2.INTER_AREA)
    side = 2 * round(_SAUVOLA_WINDOW_IN * dpi / factor / 2) + 1
    # A pixel's integer level is above the threshold exactly when it is above the threshold's integer
    # part, so the threshold is kept in 8 bits, and worked out a band of rows at a time (each band's box
    # filters reach `side // 2` rows beyond it, so every row sees its whole window): a 40-megapixel page
    # needs no page of floats at all, where the whole-page filters took 160 MB of them.
    levels: np.ndarray = np.empty(small.shape, dtype=np.uint8)
    reach = side // 2
    for top in range(0, small.shape[0], _ROWS_AT_ONCE):
        bottom = min(top + _ROWS_AT_ONCE, small.shape[0])
        above, rows = max(0, top - reach), slice(top - max(0, top - reach), bottom - max(0, top - reach))
        window = small[above : min(small.shape[0], bottom + reach)]
        mean: np.ndarray = cv2.boxFilter(window, cv2.CV_32F, (side, side))[rows]
        threshold: np.ndarray = cv2.sqrBoxFilter(window, cv2.CV_32F, (side, side))[rows]
        threshold -= mean * mean
        cv2.sqrt(np.maximum(threshold, 0.0, out=threshold), dst=threshold)
        threshold *= np.float32(k / _SAUVOLA_R)
        threshold += np.float32(1.0 - k)
        threshold *= mean
        levels[top:bottom] = np.clip(threshold, 0, 255, out=threshold)  # truncated: floor
    if factor > 1:
        levels = cv2.resize(levels, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.asarray(cv2.compare(pixels, levels, cv2.CMP_GT, dst=levels))
