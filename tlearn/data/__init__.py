"""Domains: every domain is a labelled image set in one item format (see ``base``).

    src = load_domain("synth", split="train", size=6000, seed=0)   # rendered fonts (source)
    tgt = load_domain("uci", split="train")                        # handwriting (target)
    few = few_shot(tgt, per_class=5, seed=0)

Embedded (offline): ``synth``, ``uci``, ``fashion`` (3,000 Fashion-MNIST photos) and
``synth_m`` (synth blended with photos, MNIST-M style). Real (files under ``TLEARN_DATA``, or
``download=True``): ``mnist``, ``mnist_m``, ``usps``, ``svhn``, ``fashion_mnist``; photo folders,
streamed from disk (:class:`ImageFolderDomain`): ``office31`` (``domain="amazon"|"dslr"|"webcam"``),
``office_home`` (``domain="Art"|"Clipart"|"Product"|"Real_World"``) and ``folder`` (``root=`` your
own ``<root>/<class>/`` photos).
"""

from __future__ import annotations

from collections.abc import Callable
from difflib import get_close_matches
from pathlib import Path

import numpy as np
import torch

from tlearn import checks
from tlearn.data import base, real
from tlearn.data.base import *  # noqa: F403 (its __all__: DigitDataset, batches, few_shot, …)
from tlearn.data.base import DIGIT_CLASSES, DigitDataset, to_canonical
from tlearn.data.fashion import fashion_small
from tlearn.data.handwritten import uci_digits
from tlearn.data.real import *  # noqa: F403 (its __all__: ImageFolderDomain, DataFileError, …)
from tlearn.data.real import (
    FASHION_CLASSES,
    ImageFolderDomain,
    folder_transform,
    torchvision_digits,
)
from tlearn.data.shifted import blend_with_photos
from tlearn.data.synthetic import synthetic_digits
from tlearn.runtime import data_dir

__all__ = [
    *base.__all__, *real.__all__, "load_domain", "domains", "register_domain", "available_offline",
]  # fmt: skip

SYNTH_DEFAULT_SIZE = {"train": 6000, "test": 2000}


def _subsample(images, labels, size: int | None, seed: int):
    """A reproducible random subset of ``size`` rows (all rows when size is None)."""
    if size is None or size >= len(labels):
        return images, labels
    idx = _random_rows(len(labels), size, seed)
    return images[idx], labels[idx]


def _random_rows(n: int, size: int, seed: int) -> np.ndarray:
    """``size`` of the row numbers 0 … n−1, drawn without replacement (reproducible by seed),
    in ascending order."""
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def _synth(split, *, size=None, seed=0, **_):
    checks.one_of("split", split, ("train", "test"))  # before the default size is looked up
    images, labels = synthetic_digits(
        SYNTH_DEFAULT_SIZE[split] if size is None else size, seed=seed, split=split
    )
    return images, labels, DIGIT_CLASSES


def _shipped(read: Callable, classes: tuple[str, ...]) -> Callable:
    """A domain that ships with tlearn: ``read(split)`` gives all its images and labels."""

    def load(split, *, size=None, seed=0, **_):
        return (*_subsample(*read(split), size, seed), classes)

    return load


def _torchvision(name: str) -> Callable:
    def load(split, *, size=None, seed=0, root=None, download=False, **_):
        images, labels = torchvision_digits(name, split, root=root, download=download)
        classes = FASHION_CLASSES if name == "fashion_mnist" else DIGIT_CLASSES
        return (*_subsample(images, labels, size, seed), classes)

    return load


def _blended(base: Callable) -> Callable:
    """A digit domain blended with photo patches (MNIST-M style, see ``data.shifted``)."""

    def load(split, *, seed=0, **kw):
        images, labels, classes = base(split, seed=seed, **kw)
        return blend_with_photos(images, seed=seed), labels, classes

    return load


OFFICE31 = ("amazon", "dslr", "webcam")
OFFICE_HOME = ("Art", "Clipart", "Product", "Real_World")


def _photos(
    folder: Path,
    split: str,
    *,
    image_size: int,
    channels: int,
    augment: bool | None = None,
    normalize=None,
    size: int | None = None,
    seed: int = 0,
    name: str | None = None,
    num_workers: int | None = None,
) -> ImageFolderDomain:
    """A streamed photo domain: ``split="train"`` augments (unless ``augment=False``);
    ``"test"`` gives the test-time view. DA protocols use every image of a domain for both."""
    checks.one_of("split", split, ("train", "test"))
    augment = split == "train" if augment is None else augment
    tf = folder_transform(image_size, train=augment, channels=channels, normalize=normalize)
    ds = ImageFolderDomain(folder, transform=tf, name=name, num_workers=num_workers)
    return ds if size is None or size >= len(ds) else ds.subset(_random_rows(len(ds), size, seed))


def _benchmark_folder(dataset: str, domains: tuple[str, ...]) -> Callable:
    def load(split, *, domain: str = domains[0], root=None, **kw):
        """Office-31 (Saenko et al. 2010), Office-Home (Venkateswara et al. 2017): one domain."""
        checks.one_of(f"{dataset}'s domain", domain, domains)
        base = Path(root) if root is not None else data_dir() / dataset
        images = base / domain / "images"  # Office-31's archive has this extra level
        folder = images if images.is_dir() else base / domain
        return _photos(folder, split, name=f"{dataset}/{domain}", **kw)

    return load


def _folder(split, *, root=None, **kw):
    """Your own photos: ``root/<class name>/<image files>``."""
    if root is None:
        raise ValueError('the "folder" domain needs root= the folder that holds <class>/ folders')
    return _photos(Path(root), split, **kw)


_PHOTO_DOMAINS = {"office31", "office_home", "folder"}
_COLOUR_DIGITS = {"synth_m", "mnist_m"}  # 3 channels by default: colour is the domain shift
_REGISTRY: dict[str, Callable] = {
    "synth": _synth,
    "uci": _shipped(uci_digits, DIGIT_CLASSES),
    "fashion": _shipped(fashion_small, FASHION_CLASSES),
    "mnist": _torchvision("mnist"),
    "usps": _torchvision("usps"),
    "svhn": _torchvision("svhn"),
    "fashion_mnist": _torchvision("fashion_mnist"),
    "synth_m": _blended(_synth),
    "mnist_m": _blended(_torchvision("mnist")),
    "office31": _benchmark_folder("office31", OFFICE31),
    "office_home": _benchmark_folder("office_home", OFFICE_HOME),
    "folder": _folder,
}
_EMBEDDED = ("synth", "uci", "synth_m", "fashion")


def register_domain(name: str, loader: Callable) -> None:
    """Add a domain: ``loader(split, **kw) -> (images N×C×H×W in [0,1], labels, class names)``
    (held in memory), or a ready Dataset with ``.classes`` and ``.targets`` (streamed)."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"a domain name must be a non-empty string, got {name!r}")
    if not callable(loader):
        raise TypeError(
            f"the loader of domain {name!r} must be callable, got {type(loader).__name__}"
        )
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
) -> DigitDataset | ImageFolderDomain:
    """Load a domain: items ``(x, y)``, x float32 C×H×W (in [0, 1] unless ``normalize=``).

    Digit domains come back as an in-memory :class:`DigitDataset`; photo domains
    (``office31``, ``office_home``, ``folder``) as an :class:`ImageFolderDomain` that reads
    its files as batches need them.

    Args:
        name: one of :func:`domains` (``"synth"``, ``"uci"``, ``"mnist"``, …).
        split: ``"train"`` or ``"test"`` (uci's split is fixed and stratified; photo domains
            have one set of files: ``"train"`` augments it, ``"test"`` gives the test view).
        size: number of images (synth renders exactly this many; others subsample at random).
        seed: randomness of rendering / blending / subsampling.
        channels: 1 (grey) or 3; default 1 for grey digit domains, 3 for photos, ``synth_m``
            and ``mnist_m``.
        image_size: side length; default 32 for digit domains, 224 for photos.
        **kwargs: passed to the loader (``root=``, ``download=``, ``domain=`` of office31 /
            office_home; for photos ``normalize=(mean, std)``, ``augment=``, ``num_workers=``).
    """
    if name not in _REGISTRY:
        close = get_close_matches(str(name), _REGISTRY, n=2)
        hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"unknown domain {name!r}; valid names: {', '.join(domains())}.{hint}")
    if size is not None:
        checks.positive_int("size", size, why=" (number of images) or None")
    checks.nonnegative_int("seed", seed)
    if image_size is not None:
        checks.positive_int("image_size", image_size)
    photos = name in _PHOTO_DOMAINS
    channels = channels or (3 if photos or name in _COLOUR_DIGITS else 1)
    image_size = image_size or (224 if photos else 32)
    if photos:
        kwargs.update(image_size=image_size, channels=channels)
    loaded = _REGISTRY[name](split, size=size, seed=seed, **kwargs)
    if isinstance(loaded, torch.utils.data.Dataset):
        return loaded  # streamed: already in its final format
    if not (isinstance(loaded, (tuple, list)) and len(loaded) == 3):
        raise TypeError(
            f"the loader of domain {name!r} returned {type(loaded).__name__}; it must return "
            "(images N×C×H×W in [0, 1], labels, class names) or a Dataset"
        )
    images, labels, classes = loaded
    images = to_canonical(images, channels=channels, image_size=image_size)
    return DigitDataset(images, torch.as_tensor(labels), name=f"{name}:{split}", classes=classes)


def available_offline() -> dict[str, bool]:
    """Which domains can be loaded right now without a download (for ``tlearn info``)."""
    root = data_dir()
    found = {
        "mnist": (root / "MNIST" / "raw").is_dir(),
        "fashion_mnist": (root / "FashionMNIST" / "raw").is_dir(),
        "usps": (root / "usps.bz2").is_file(),
        "svhn": (root / "train_32x32.mat").is_file(),
        "office31": (root / "office31").is_dir(),
        "office_home": (root / "office_home").is_dir(),
    }
    found["mnist_m"] = found["mnist"]
    return {**dict.fromkeys(_EMBEDDED, True), **found}
