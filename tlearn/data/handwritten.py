"""The embedded *target* domain: the UCI handwritten digits that ship with scikit-learn.

``sklearn.datasets.load_digits`` holds 1797 digits written by 43 people, scanned and
down-sampled to 8×8 with 17 grey levels (Alpaydin & Kaynak, 1998). Their values count ink
(16 = full stroke), so ``value / 16`` is already a white digit on black. We upsample to
32×32 (bilinear) to match the source format; the blocky, thick, frame-filling strokes that
remain are part of the domain gap.

The split is fixed and stratified (30 % test, ``random_state=0``): 1257 train, 540 test.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["uci_digits"]

TEST_FRACTION = 0.3


@lru_cache(maxsize=1)
def _load() -> tuple[torch.Tensor, torch.Tensor, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = torch.from_numpy(digits.images.astype(np.float32) / 16.0).unsqueeze(1)
    images = F.interpolate(images, size=(32, 32), mode="bilinear", align_corners=False)
    labels = torch.from_numpy(digits.target).long()
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=TEST_FRACTION, stratify=digits.target, random_state=0
    )
    return images.clamp(0, 1), labels, np.sort(train_idx), np.sort(test_idx)


def uci_digits(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N×1×32×32 in [0, 1]) and labels of the fixed ``split`` ("train", "test" or "all")."""
    images, labels, train_idx, test_idx = _load()
    if split == "all":
        return images.clone(), labels.clone()
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    idx = torch.from_numpy(train_idx if split == "train" else test_idx)
    return images[idx], labels[idx]
