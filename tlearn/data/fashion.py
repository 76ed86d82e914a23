"""The embedded *real photo* domain: 3,000 Fashion-MNIST product photos that ship with tlearn.

Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747; MIT licence, © 2017 Zalando
SE — see ``FASHION_MNIST_LICENSE``) holds 28×28 grey photos of Zalando articles in 10
classes (T-shirt/top, trouser, pullover, dress, coat, sandal, shirt, sneaker, bag, ankle
boot). ``fashion_mnist_small.npz`` is a fixed, class-balanced subset: 200 train and 100 test
images per class from the official splits (the repository's ``tools/build_fashion.py``
rebuilds it exactly), 1.3 MB. The full set is the ``"fashion_mnist"`` domain (files under
``TLEARN_DATA``).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from tlearn import checks

__all__ = ["fashion_small", "FILE"]

FILE = Path(__file__).with_name("fashion_mnist_small.npz")


@lru_cache(maxsize=2)
def _arrays(split: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(FILE) as z:
        return z[f"{split}_images"], z[f"{split}_labels"]


def fashion_small(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N×1×28×28 float32 in [0, 1]) and labels (int64) of the shipped subset."""
    images, labels = _arrays(checks.one_of("split", split, ("train", "test")))
    x = torch.from_numpy(images.astype(np.float32) / 255.0)[:, None]
    return x, torch.from_numpy(labels.astype(np.int64))
