"""Rebuild ``fashion_mnist_small.npz``: a fixed, class-balanced subset of Fashion-MNIST.

Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747) — 70,000 28×28 grey photos
of Zalando products in 10 classes — MIT licence, © 2017 Zalando SE (see
``tlearn/data/FASHION_MNIST_LICENSE``). We ship 200 train and 100 test images per
class (2,000 + 1,000), drawn without replacement from the official train and test splits
with ``numpy.random.default_rng(SEED)``, kept in the original order, stored as uint8.

Run (Debian/Ubuntu: ``apt-get install dataset-fashion-mnist`` puts the files in
``/usr/share/datasets/fashion-mnist``; torchvision's ``FashionMNIST/raw`` works too)::

    python tools/build_fashion.py [folder with the four *-ubyte.gz files]

The source files' SHA-256 are checked, so the same command always writes the same arrays
(``tests/test_fashion.py`` checks the shipped file's own checksum).
"""

from __future__ import annotations

import gzip
import hashlib
import sys
from pathlib import Path

import numpy as np

from tlearn.data.fashion import FILE as OUTPUT  # the file the "fashion" domain reads

SEED = 0
PER_CLASS = {"train": 200, "test": 100}
DEFAULT_SOURCE = Path("/usr/share/datasets/fashion-mnist")
FILES = {  # official files (github.com/zalandoresearch/fashion-mnist) and their SHA-256
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (LeCun's MNIST format): magic, dims as big-endian int32, then uint8 data."""
    raw = gzip.decompress(path.read_bytes())
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">i4", count=ndim, offset=4)
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def balanced_subset(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Sorted indices of ``per_class`` rows of every class, drawn at random without replacement."""
    rng = np.random.default_rng(seed)
    picks = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False)
             for c in range(int(labels.max()) + 1)]  # fmt: skip
    return np.sort(np.concatenate(picks))


def build(source: Path = DEFAULT_SOURCE, output: Path = OUTPUT) -> Path:
    for name, digest in FILES.items():
        got = hashlib.sha256((source / name).read_bytes()).hexdigest()
        if got != digest:
            raise ValueError(f"{source / name} has SHA-256 {got}, expected {digest}")
    arrays = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = _read_idx(source / f"{prefix}-images-idx3-ubyte.gz")
        labels = _read_idx(source / f"{prefix}-labels-idx1-ubyte.gz")
        idx = balanced_subset(labels, PER_CLASS[split], SEED + (split == "test"))
        arrays[f"{split}_images"] = images[idx]
        arrays[f"{split}_labels"] = labels[idx]
        arrays[f"{split}_index"] = idx.astype(np.int32)  # rows in the official split
    np.savez_compressed(output, **arrays)
    return output


if __name__ == "__main__":
    out = build(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SOURCE)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
