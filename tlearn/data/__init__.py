"""Domains: every domain is a labelled image set in one item format (see ``base``).

    src = load_domain("synth", split="train", size=6000, seed=0)   # rendered fonts (source)
    tgt = load_domain("uci", split="train")                        # handwriting (target)
    few = few_shot(tgt, per_class=5, seed=0)

Embedded (offline): ``synth``, ``uci``, ``fashion`` (3,000 Fashion-MNIST photos). Real (files under ``TLEARN_DATA``, or ``download=True``):
``mnist``, ``usps``, ``svhn``, ``fashion_mnist``, ``office31`` (``domain="amazon"|"dslr"|"webcam"``).
"""

from __future__ import annotations

from collections.abc import Callable
from difflib import get_close_matches
from pathlib import Path

import numpy as np
import torch

from tlearn.data.base import (
    DIGIT_CLASSES,
    DigitDataset,
    as_dataset,
    few_shot,
    make_loader,
    to_canonical,
)
from tlearn.data.fashion import fashion_small
from tlearn.data.handwritten import uci_digits
from tlearn.data.real import FASHION_CLASSES, image_folder, torchvision_digits
from tlearn.data.synthetic import synthetic_digits
from tlearn.runtime import data_dir

__all__ = [
    "DigitDataset",
    "load_domain",
    "domains",
    "register_domain",
    "few_shot",
    "make_loader",
    "to_canonical",
    "as_dataset",
    "available_offline",
]

SYNTH_DEFAULT_SIZE = {"train": 6000, "test": 2000}


def _check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def _subsample(images, labels, size: int | None, seed: int):
    """A reproducible random subset of ``size`` rows (all rows when size is None)."""
    if size is None or size >= len(labels):
        return images, labels
    idx = np.sort(np.random.default_rng(seed).choice(len(labels), size=size, replace=False))
    return images[idx], labels[idx]


def _synth(split, *, size=None, seed=0, **_):
    _check_split(split)
    images, labels = synthetic_digits(
        SYNTH_DEFAULT_SIZE[split] if size is None else size, seed=seed, split=split
    )
    return images, labels, DIGIT_CLASSES


def _uci(split, *, size=None, seed=0, **_):
    images, labels = uci_digits(split)
    return (*_subsample(images, labels, size, seed), DIGIT_CLASSES)


def _fashion(split, *, size=None, seed=0, **_):
    images, labels = fashion_small(split)
    return (*_subsample(images, labels, size, seed), FASHION_CLASSES)


def _torchvision(name: str) -> Callable:
    def load(split, *, size=None, seed=0, root=None, download=False, **_):
        _check_split(split)
        images, labels = torchvision_digits(name, split, root=root, download=download)
        classes = FASHION_CLASSES if name == "fashion_mnist" else DIGIT_CLASSES
        return (*_subsample(images, labels, size, seed), classes)

    return load


def _office31(split, *, domain: str = "amazon", root=None, image_size=224, size=None, seed=0, **_):
    """Office-31 (Saenko et al. 2010): one domain, all images (DA protocols use all of them)."""
    if domain not in ("amazon", "dslr", "webcam"):
        raise ValueError(f"office31 domain must be 'amazon', 'dslr' or 'webcam', got {domain!r}")
    base = Path(root) if root is not None else data_dir() / "office31"
    folder = base / domain / "images" if (base / domain / "images").is_dir() else base / domain
    images, labels, classes = image_folder(folder, image_size=image_size)
    return (*_subsample(images, labels, size, seed), classes)


_REGISTRY: dict[str, Callable] = {
    "synth": _synth,
    "uci": _uci,
    "fashion": _fashion,
    "mnist": _torchvision("mnist"),
    "usps": _torchvision("usps"),
    "svhn": _torchvision("svhn"),
    "fashion_mnist": _torchvision("fashion_mnist"),
    "office31": _office31,
}
_EMBEDDED = ("synth", "uci", "fashion")


def register_domain(name: str, loader: Callable) -> None:
    """Add a domain: ``loader(split, **kw) -> (images N×C×H×W in [0,1], labels, class names)``."""
    if not name or not callable(loader):
        raise ValueError("register_domain needs a non-empty name and a callable loader")
    _REGISTRY[name] = loader


def domains() -> list[str]:
    """The names ``load_domain`` accepts."""
    return sorted(_REGISTRY)


def load_domain(
    name: str,
    split: str = "train",
    *,
    size: int | None = None,
    seed: int = 0,
    channels: int | None = None,
    image_size: int | None = None,
    **kwargs,
) -> DigitDataset:
    """Load a domain as a :class:`DigitDataset` (items ``(x, y)``, x float32 C×H×W in [0, 1]).

    Args:
        name: one of :func:`domains` (``"synth"``, ``"uci"``, ``"mnist"``, …).
        split: ``"train"`` or ``"test"`` (uci's split is fixed and stratified).
        size: number of images (synth renders exactly this many; others subsample at random).
        seed: randomness of rendering / subsampling.
        channels: 1 (grey) or 3 (grey repeated, for ImageNet backbones); default 1 for
            digit domains, 3 for office31 photos.
        image_size: side length; default 32 for digit domains, 224 for office31.
        **kwargs: passed to the loader (``root=``, ``download=``, office31's ``domain=``).
    """
    if name not in _REGISTRY:
        close = get_close_matches(str(name), _REGISTRY, n=2)
        hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"unknown domain {name!r}; valid names: {', '.join(domains())}.{hint}")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise ValueError(f"size must be a positive int (number of images) or None, got {size!r}")
    if name == "office31":
        kwargs.setdefault("image_size", image_size or 224)
    images, labels, classes = _REGISTRY[name](split, size=size, seed=seed, **kwargs)
    photos = name == "office31"
    images = to_canonical(
        images,
        channels=channels or (3 if photos else 1),
        image_size=image_size or (224 if photos else 32),
    )
    label = (
        f"{name}:{split}" if name != "office31" else f"office31/{kwargs.get('domain', 'amazon')}"
    )
    return DigitDataset(images, torch.as_tensor(labels), name=label, classes=classes)


def available_offline() -> dict[str, bool]:
    """Which domains can be loaded right now without a download (for ``tlearn info``)."""
    root = data_dir()
    found = {
        "mnist": (root / "MNIST" / "raw").is_dir(),
        "fashion_mnist": (root / "FashionMNIST" / "raw").is_dir(),
        "usps": (root / "usps.bz2").is_file(),
        "svhn": (root / "train_32x32.mat").is_file(),
        "office31": (root / "office31").is_dir(),
    }
    return {**dict.fromkeys(_EMBEDDED, True), **found}
