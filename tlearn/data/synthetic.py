"""The embedded *source* domain: digits rendered from the TrueType fonts matplotlib ships.

Printed digits are a classic source domain: labels are free (we chose what to draw) and
unlimited, but they differ from handwriting in stroke, shape and style — exactly the gap
domain adaptation has to bridge. Every image is drawn with PIL and then randomly

    rotated (±15°), scaled (0.7–1.05 of the frame), translated (±3 px), thickened (stroke
    width 0–2 at 64 px), blurred (σ 0–1.2) and noised (Gaussian, σ 0–0.08),

from one of 22 fonts (DejaVu Sans/Serif/Mono, STIX, Computer Modern). The same ``seed``
always gives the same images; ``split="test"`` uses a different random stream.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import matplotlib
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from tlearn import checks

__all__ = ["font_paths", "render_digit", "synthetic_digits"]

CANVAS = 64  # render large, then downsample: smooth edges like a scanned digit
# Fonts whose digit code points hold symbols or placeholder boxes, not digits.
_NOT_DIGIT_FONTS = {"cmex10.ttf", "cmsy10.ttf", "LastResortHE-Regular.ttf"}
_SPLIT_STREAM = {"train": 0, "test": 1}


@lru_cache(maxsize=1)
def font_paths() -> tuple[Path, ...]:
    """matplotlib's bundled TTF fonts that have the glyphs 0–9 (22 with matplotlib ≥ 3.7)."""
    from matplotlib.ft2font import FT2Font

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    usable = []
    for path in sorted(folder.glob("*.ttf")):
        if path.name in _NOT_DIGIT_FONTS:
            continue
        charmap = FT2Font(str(path)).get_charmap()
        if all(ord(c) in charmap for c in "0123456789"):
            usable.append(path)
    if not usable:
        raise RuntimeError(f"no font with digits found in {folder}; is matplotlib installed fully?")
    return tuple(usable)


@lru_cache(maxsize=64)
def _font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), size)


def render_digit(digit: int, font: Path, rng: np.random.Generator) -> np.ndarray:
    """One randomly styled digit as a 32×32 float32 array in [0, 1] (white on black)."""
    scale = rng.uniform(0.7, 1.05)
    font_size = int(CANVAS * 0.75 * scale)
    stroke = int(rng.integers(0, 3))
    img = Image.new("L", (CANVAS, CANVAS), 0)
    draw = ImageDraw.Draw(img)
    f = _font(font, font_size)
    # Centre the glyph's ink box (not its advance box) on the canvas.
    left, top, right, bottom = draw.textbbox((0, 0), str(digit), font=f, stroke_width=stroke)
    pos = ((CANVAS - (right - left)) / 2 - left, (CANVAS - (bottom - top)) / 2 - top)
    draw.text(pos, str(digit), fill=255, font=f, stroke_width=stroke, stroke_fill=255)
    dx, dy = rng.uniform(-6, 6, size=2)  # ±3 px at 32×32
    img = img.rotate(rng.uniform(-15, 15), resample=Image.BILINEAR, translate=(dx, dy))
    sigma = rng.uniform(0, 1.2)
    if sigma > 0.2:
        img = img.filter(ImageFilter.GaussianBlur(sigma * 2))
    img = img.resize((32, 32), Image.BILINEAR, reducing_gap=2.0)
    x = np.asarray(img, dtype=np.float32) / 255.0
    x = x + rng.normal(0.0, rng.uniform(0, 0.08), size=x.shape).astype(np.float32)
    return np.clip(x, 0.0, 1.0)


def synthetic_digits(
    size: int, seed: int = 0, split: str = "train"
) -> tuple[torch.Tensor, torch.Tensor]:
    """``size`` rendered digits: images (size×1×32×32) and labels balanced over 0–9.

    Deterministic in (``size``, ``seed``, ``split``); train and test use disjoint random streams.
    """
    checks.one_of("split", split, tuple(_SPLIT_STREAM))
    checks.positive_int("size", size)
    rng = np.random.default_rng([seed, _SPLIT_STREAM[split]])
    fonts = font_paths()
    labels = rng.permutation(np.arange(size) % 10)
    font_idx = rng.integers(0, len(fonts), size=size)
    images = np.empty((size, 32, 32), dtype=np.float32)  # filled in place: no list of copies
    for k, (d, i) in enumerate(zip(labels, font_idx, strict=True)):
        images[k] = render_digit(int(d), fonts[i], rng)
    return torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels).long()
