"""Development target domains: rendered digits made to look scanned like UCI's handwriting.

Choosing a method's settings on the evaluation target's labels would make its reported
accuracy a tuned number, not a measured one. So ``fit_adapt``'s defaults were chosen on
*development pairs* whose labels cost nothing: the source is the rendered digits
(``"synth"``), the target is *other* rendered digits put through a rough copy of the
pipeline that produced UCI's Optdigits (Alpaydin & Kaynak 1998) — a shift of the same
*kind* as synth → uci:

* ``"synth_degraded"``: thicker strokes, 8×8 block averages, 17 grey levels, bilinear
  upsampling back to 32×32 (:func:`degrade_like_uci`);
* ``"synth_framed"``: the same after UCI's size normalisation — each digit scaled to fill
  the frame's height (:func:`normalise_size_like_uci`), as uci's digits do and rendered ones
  (about half the frame high) do not.

Importing this module registers both with :func:`tlearn.data.register_domain`, so
``data.load_domain("synth_framed", split="test")`` works like any other domain (2000 train and
1000 test images by default). :mod:`tlearn.studies.adaptation` imports it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tlearn import data

__all__ = [
    "DEV_TARGET",
    "DEV_TARGET_FRAMED",
    "DEV_TARGETS",
    "DEV_SIZES",
    "degrade_like_uci",
    "normalise_size_like_uci",
]

#: The development pairs' targets: their labels chose ``fit_adapt``'s defaults.
DEV_TARGET = "synth_degraded"
DEV_TARGET_FRAMED = "synth_framed"
DEV_TARGETS = (DEV_TARGET, DEV_TARGET_FRAMED)
#: Default number of images per split (``load_domain(..., size=n)`` asks for another).
DEV_SIZES = {"train": 2000, "test": 1000}
#: The synth rendering seed of each development target, offset by ``load_domain``'s ``seed``:
#: other digits than the source's (which uses seed 0).
_RENDER_SEED = {DEV_TARGET: 11, DEV_TARGET_FRAMED: 12}


def degrade_like_uci(images: torch.Tensor, thicken: bool = True) -> torch.Tensor:
    """Put rendered digits through uci's acquisition pipeline, roughly.

    Thicker strokes (a 3×3 max filter; ``thicken=False`` skips it), 8×8 block averages,
    17 grey levels (0…16, scaled per image), bilinear upsampling back to the input size.
    ``images``: N×C×H×W in [0, 1]; returns the same shape, in [0, 1].

    >>> x = torch.zeros(1, 1, 32, 32); x[0, 0, 8:24, 15] = 1.0   # a one-pixel stroke
    >>> y = degrade_like_uci(x)
    >>> tuple(y.shape), bool(y.sum() > degrade_like_uci(x, thicken=False).sum())
    ((1, 1, 32, 32), True)
    """
    x = F.max_pool2d(images, 3, stride=1, padding=1) if thicken else images
    x = F.adaptive_avg_pool2d(x, 8)
    x = torch.round(x / x.amax((1, 2, 3), keepdim=True).clamp_min(1e-6) * 16) / 16
    x = F.interpolate(x, size=images.shape[-2:], mode="bilinear", align_corners=False)
    return x.clamp(0, 1)


def normalise_size_like_uci(images: torch.Tensor, threshold: float = 0.25) -> torch.Tensor:
    """Scale each digit so its bounding box fills the frame's height, keeping its aspect ratio.

    The width is capped at the frame's, and the digit is centred — the size normalisation
    UCI's Optdigits applied to its 32×32 bitmaps before the 8×8 block counts (Alpaydin &
    Kaynak 1998). Ink is every pixel brighter than ``threshold`` × the image's maximum; a
    blank image is returned unchanged. ``images``: N×C×H×W in [0, 1]; same shape out.
    """
    n, c, h, w = images.shape
    out = torch.zeros_like(images)
    ink = images.amax(1) > threshold * images.amax((1, 2, 3)).clamp_min(1e-6)[:, None, None]
    for i in range(n):
        rows, cols = ink[i].any(1).nonzero(), ink[i].any(0).nonzero()
        if len(rows) == 0:
            out[i] = images[i]
            continue
        crop = images[i : i + 1, :, rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        new_w = min(w, max(1, round(crop.shape[-1] * h / crop.shape[-2])))
        crop = F.interpolate(crop, size=(h, new_w), mode="bilinear", align_corners=False)
        left = (w - new_w) // 2
        out[i, :, :, left : left + new_w] = crop[0]
    return out.clamp(0, 1)


def _development_loader(name: str):
    """The ``register_domain`` loader of one development target."""

    def load(split: str, *, size: int | None = None, seed: int = 0, **_):
        if split not in DEV_SIZES:
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        n = DEV_SIZES[split] if size is None else size
        ds = data.load_domain("synth", split, size=n, seed=_RENDER_SEED[name] + seed)
        if name == DEV_TARGET_FRAMED:  # its strokes grew with the digit: no thickening
            images = degrade_like_uci(normalise_size_like_uci(ds.images), thicken=False)
        else:
            images = degrade_like_uci(ds.images)
        return images, ds.labels, ds.classes

    return load


for _name in DEV_TARGETS:
    data.register_domain(_name, _development_loader(_name))
