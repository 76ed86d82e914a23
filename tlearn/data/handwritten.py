"""The embedded *target* domain: the UCI handwritten digits that ship with scikit-learn.

``sklearn.datasets.load_digits`` is, in its own description, "a copy of the test set of the UCI
ML hand-written digits datasets" (Alpaydin & Kaynak, 1998): 1797 digits written by 13 people
(of the 43 who filled in the forms, the other 30 wrote the UCI training set). Each was
normalised to a 32×32 bitmap, "divided into nonoverlapping blocks of 4x4 and the number of on
pixels are counted in each block", giving 8×8 values in 0..16 (16 = a block full of ink), so
``value / 16`` is already a white digit on black. We upsample to 32×32 (bilinear) to match the
source format; the blocky, thick, frame-filling strokes that remain are part of the domain gap.

The split is fixed, random and stratified by class (30 % test, ``random_state=0``): 1257
train, 540 test. It is not split by writer: the same 13 people wrote both halves, so a model
trained on the ``train`` split is tested on hands it has seen — its ``test`` accuracy says how
well it reads these writers, not new ones.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from tlearn import checks

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
    """Images (N×1×32×32 in [0, 1]) and labels of the fixed ``split`` ("train" or "test")."""
    checks.one_of("split", split, ("train", "test"))
    images, labels, train_idx, test_idx = _load()
    idx = torch.from_numpy(train_idx if split == "train" else test_idx)
    return images[idx], labels[idx]
