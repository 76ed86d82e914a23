"""MNIST-M-style digits: grey digits blended with patches of colour photographs.

Ganin et al. (DANN, JMLR 2016, §5.2.2) built MNIST-M by blending each MNIST digit over a
random patch of a colour photo (from BSDS500), taking per pixel and channel the absolute
difference

    out_c = | digit − patch_c |        c ∈ {R, G, B}, values in [0, 1]

so the stroke keeps its shape but takes the inverted colours of the background: low-level
statistics change completely while the labels stay. We do the same on the fly with the two
photos that ship with scikit-learn (``load_sample_images``: china.jpg, flower.jpg), so the
domain is available offline; the same ``seed`` always gives the same images.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

__all__ = ["blend_with_photos", "sample_photos"]


@lru_cache(maxsize=1)
def sample_photos() -> tuple[np.ndarray, ...]:
    """scikit-learn's sample photos as H×W×3 float32 arrays in [0, 1]."""
    from sklearn.datasets import load_sample_images

    return tuple(np.asarray(img, dtype=np.float32) / 255.0 for img in load_sample_images().images)


def blend_with_photos(images: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """``|digit − random photo patch|`` per channel: N×1×H×W digits → N×3×H×W colour digits.

    Each image gets a patch of its own size cut at a random place of a random photo.

    >>> x = torch.zeros(2, 1, 32, 32); x[:, :, 8:24, 14:18] = 1.0   # a white bar
    >>> y = blend_with_photos(x, seed=0)
    >>> y.shape, bool((y >= 0).all() and (y <= 1).all())
    (torch.Size([2, 3, 32, 32]), True)
    >>> torch.equal(y, blend_with_photos(x, seed=0)), torch.equal(y, blend_with_photos(x, seed=1))
    (True, False)
    """
    if images.dim() != 4 or images.shape[1] != 1:
        raise ValueError(f"expected N×1×H×W grey digits, got shape {tuple(images.shape)}")
    n, _, h, w = images.shape
    photos = sample_photos()
    rng = np.random.default_rng([seed, 2016])  # 2016: a stream of its own, apart from rendering
    which = rng.integers(0, len(photos), size=n)
    patches = np.empty((n, 3, h, w), dtype=np.float32)
    for i, k in enumerate(which):
        photo = photos[k]
        top = rng.integers(0, photo.shape[0] - h + 1)
        left = rng.integers(0, photo.shape[1] - w + 1)
        patches[i] = photo[top : top + h, left : left + w].transpose(2, 0, 1)
    return (images.float() - torch.from_numpy(patches)).abs().clamp_(0, 1)
