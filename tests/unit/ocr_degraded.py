"""Clean scans degraded the way phone photos and poor copies are, seeded and reproducible.

A page from ocr_samples.scan() (typeset text, known ground truth) is turned into what people actually
photograph: light falling off across the page, a shadow, coffee rings and stains, sensor noise, salt and
pepper, blur, JPEG at low quality, faded ink, coloured paper, and combinations of these. Every effect
draws its randomness from a generator seeded by the caller, so a variant is the same bytes on every run
and nothing needs committing. The tests (test_ocr_preprocess.py) and the benchmark
(benchmarks/bench_degraded.py) share these recipes.

Effects are applied in the order they happen in the world, whatever order a recipe names them in: the
paper and ink first, then the light falling on them, then the camera (blur, noise, compression).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import numpy as np
from PIL import Image

Rgb = np.ndarray  # float32, shape (height, width, 3), 0..255
Effect = Callable[[Rgb, np.random.Generator, int], Rgb]  # (pixels, rng, dpi) -> pixels

# Paper and ink: what the page itself is like.


def _low_contrast(rgb: Rgb, rng: np.random.Generator, dpi: int) -> Rgb:
    # Faded toner on greyish paper: ink no darker than ~120, paper no lighter than ~200.
    ink, paper = rng.uniform(110, 130), rng.uniform(195, 210)
    return ink + rgb * ((paper - ink) / 255)


def _coloured_paper(rgb: Rgb, rng: np.random.Generator, dpi: int) -> Rgb:
    tints = [(1.0, 0.92, 0.62), (1.0, 0.78, 0.82), (0.70, 0.84, 1.0), (0.78, 1.0, 0.74)]  # yellow pink blue green
    tint = np.array(tints[int(rng.integers(len(tints)))], dtype=np.float32)
    return rgb * tint


def _coffee_ring(rgb: Rgb, rng: np.random.Generator, dpi: int) -> Rgb:
    height, width = rgb.shape[:2]
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    for _ in range(2):
        radius = rng.uniform(0.8, 1.3) * dpi
        cy, cx = rng.uniform(0.2, 0.8) * height, rng.uniform(0.15, 0.85) * width
        distance = np.hypot(yy - cy, xx - cx)
        # A ring's rim is darker than the stain inside it, where the coffee dried thinner.
        rim = np.exp(-(((distance - radius) / (0.04 * dpi)) ** 2))
        inside = (distance < radius) * 0.25
        strength = rng.uniform(0.45, 0.6) * (rim + inside)
        brown = np.array([0.25, 0.45, 0.7], dtype=np.float32)  # how much each channel is absorbed
        rgb = rgb * (1 - strength[..., None] * brown)
    return np.asarray(rgb, dtype=np.float32)


def _stain(rgb: Rgb, rng: np.random.Generator, dpi: int) -> Rgb:
    height, width = rgb.shape[:2]
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    blot = np.zeros((height, width), dtype=np.float32)
    cy, cx = rng.uniform(0.25, 0.75) * height, rng.uniform(0.2, 0.8) * width
    for _ in range(6):  # an irregular blot: overlapping soft discs
        sigma = rng.uniform(0.25, 0.5) * dpi
        oy, ox = rng.normal(0, 0.3 * dpi, 2)
        blot += np.exp(-((yy - cy - oy) ** 2 + (xx - cx - ox) ** 2) / (2 * sigma**2))
    strength = np.clip(blot, 0, 1) * rng.uniform(0.35, 0.5)
    tint = np.array([0.3, 0.5, 0.8], dtype=np.float32)
    return np.asarray(rgb * (1 - strength[..., None] * tint), dtype=np.float32)


# Light: how the page is lit when photographed.


def _light_from(side: str) -> Effect:
    def effect(rgb: Rgb, rng: np.random.Generator, dpi: int) -> Rgb:
        height, width = rgb.shape[:2]
        y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
        x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
        sides: dict[str, np.ndarray] = {"left": x, "right": 1 - x, "top": y, "bottom": 1 - y}
        far = sides[side] if side in sides else np.hypot(x, y) / math.sqrt(2)
        darkest = rng.uniform(0.3, 0.4)  # the far side gets a third of the light
        falloff = 1 - (1 - darkest) * far**1.3
        return np.asarray(rgb * falloff[..., None], dtype=np.float32)

    return effect


def _vignette(rgb: Rgb, rng: np.random.Generator, dpi: int) -> Rgb:
    height, width = rgb.shape[:2]
    y = np.linspace(-1, 1, height, dtype=np.float32)[:, None]
    x = np.linspace(-1, 1, width, dtype=np.float32)[None, :]
    falloff = 1 - rng.uniform(0.45, 0.55) * np.clip((x**2 + y**2) / 2, 0, 1)
    return rgb * falloff[..., None]


def _shadow(rgb: Rgb, rng: np.random.Generator, dpi: int) -> Rgb:
    # The phone's or the hand's shadow: a straight-edged region with a soft edge, across part of the text.
    height, width = rgb.shape[:2]
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(-0.6, 0.6) + (math.pi / 2 if rng.random() < 0.5 else 0.0)
    along = (xx - width * rng.uniform(0.35, 0.65)) * math.cos(angle) + (yy - height * 0.5) * math.sin(angle)
    softness_px = rng.uniform(0.03, 0.08) * dpi
    # A logistic step written with tanh, which cannot overflow far from the edge.
    mask = 0.5 * (1 + np.tanh(along / (2 * softness_px)))
    depth = rng.uniform(0.45, 0.55)
    return np.asarray(rgb * (1 - depth * mask)[..., None], dtype=np.float32)


# Camera: blur, sensor noise, compression.


def _blur(rgb: Rgb, rng: np.random.Generator, dpi: int) -> Rgb:
    import cv2

    sigma_px = rng.uniform(1.1, 1.4) * dpi / 300
    return np.asarray(cv2.GaussianBlur(rgb, (0, 0), sigma_px), dtype=np.float32)


def _gaussian_noise(rgb: Rgb, rng: np.random.Generator, dpi: int) -> Rgb:
    sigma = rng.uniform(16, 22)
    # Sensor noise is mostly in the luminance: the same draw on every channel.
    return rgb + rng.normal(0, sigma, rgb.shape[:2]).astype(np.float32)[..., None]


def _salt_and_pepper(rgb: Rgb, rng: np.random.Generator, dpi: int) -> Rgb:
    share = rng.uniform(0.03, 0.05)
    draw = rng.random(rgb.shape[:2])
    rgb = rgb.copy()
    rgb[draw < share / 2] = 0
    rgb[draw > 1 - share / 2] = 255
    return rgb


# In the order they happen in the world. JPEG is the encoding, not an effect on the pixels.
EFFECTS: dict[str, Effect] = {
    "low-contrast": _low_contrast,
    "coloured-paper": _coloured_paper,
    "coffee-ring": _coffee_ring,
    "stain": _stain,
    "light-left": _light_from("left"),
    "light-right": _light_from("right"),
    "light-top": _light_from("top"),
    "light-bottom": _light_from("bottom"),
    "light-corner": _light_from("corner"),
    "vignette": _vignette,
    "shadow": _shadow,
    "blur": _blur,
    "gaussian-noise": _gaussian_noise,
    "salt-and-pepper": _salt_and_pepper,
}
JPEG = "jpeg"
JPEG_QUALITY = 15

# Each degradation alone, then the combinations people meet. "phone" is issue #18's case: uneven
# light, sensor noise, slight blur and JPEG together, which each alone read fine.
VARIANTS: dict[str, tuple[str, ...]] = {
    **{name: (name,) for name in EFFECTS},
    "jpeg": (JPEG,),
    "phone": ("light-left", "blur", "gaussian-noise", JPEG),
    "phone-shadow": ("shadow", "light-corner", "blur", "gaussian-noise", JPEG),
    "phone-vignette-yellow": ("coloured-paper", "vignette", "gaussian-noise", JPEG),
    "coffee-copy": ("coffee-ring", "stain", "salt-and-pepper"),
    "faded-coloured-uneven": ("low-contrast", "coloured-paper", "light-top", "gaussian-noise"),
    "everything": ("coffee-ring", "light-right", "shadow", "blur", "gaussian-noise", JPEG),
}
# Past what the pipeline reads within the bound: faded ink (contrast 0.45) on top of all the rest leaves
# the darkest paper about 28 grey levels above the ink under noise of 20. The benchmark reports it; the
# tests do not hold it to the bound.
BEYOND: dict[str, tuple[str, ...]] = {
    "everything-faded": ("low-contrast", "coffee-ring", "light-right", "shadow", "blur", "gaussian-noise", JPEG),
}


def degrade(image: Image.Image, recipe: tuple[str, ...], *, seed: int, dpi: int) -> tuple[bytes, str]:
    """`image` (a grayscale scan) degraded by every effect in `recipe`: the encoded file and its media type
    (JPEG at quality JPEG_QUALITY when the recipe names "jpeg", else PNG; RGB whenever colour is involved)."""
    unknown = [name for name in recipe if name != JPEG and name not in EFFECTS]
    if unknown:
        raise ValueError(f"unknown degradation(s): {', '.join(unknown)}")
    rng = np.random.default_rng(seed)
    rgb = np.repeat(np.asarray(image.convert("L"), dtype=np.float32)[..., None], 3, axis=2)
    for name, effect in EFFECTS.items():
        if name in recipe:
            rgb = effect(rgb, rng, dpi)
    out = Image.fromarray(np.clip(np.rint(rgb), 0, 255).astype(np.uint8), mode="RGB")
    buffer = io.BytesIO()
    if JPEG in recipe:
        out.save(buffer, "JPEG", quality=JPEG_QUALITY, dpi=(dpi, dpi))
        return buffer.getvalue(), "image/jpeg"
    out.save(buffer, "PNG", dpi=(dpi, dpi))
    return buffer.getvalue(), "image/png"
