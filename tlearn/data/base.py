"""The one item format every digit domain shares, and the helpers built on it.

A *domain* is a set of labelled images drawn from one distribution (rendered fonts,
handwriting scanned by UCI, MNIST, …). Transfer between domains is only a fair comparison
when the images look alike to the code, so every domain is converted to one format:

    x: float32 tensor C×H×W in [0, 1], a white digit on black (default 1×32×32)
    y: int class label in 0 … num_classes−1
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

__all__ = [
    "DigitDataset",
    "to_canonical",
    "few_shot",
    "few_shot_indices",
    "make_loader",
    "as_dataset",
]

DIGIT_CLASSES = tuple(str(d) for d in range(10))


class DigitDataset(Dataset):
    """An in-memory domain: ``images`` (N×C×H×W float32 in [0, 1]) and ``labels`` (N int64).

    Small enough to hold in memory (the embedded domains are a few MB), which keeps data
    loading out of the way of what the lessons teach. Indexing returns ``(x, int y)``.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        name: str = "custom",
        classes: Sequence[str] = DIGIT_CLASSES,
    ):
        if images.dim() != 4:
            raise ValueError(f"images must be N×C×H×W, got shape {tuple(images.shape)}")
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images = images.float().contiguous()
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.name = name
        self.classes = tuple(classes)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], int(self.labels[i])

    def subset(self, indices: Sequence[int] | np.ndarray | torch.Tensor, name: str | None = None):
        """A new DigitDataset with the rows ``indices`` (in that order)."""
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        return DigitDataset(
            self.images[idx], self.labels[idx], name=name or self.name, classes=self.classes
        )

    def __repr__(self) -> str:
        c, h, w = self.images.shape[1:]
        counts = torch.bincount(self.labels, minlength=self.num_classes).tolist()
        return f"DigitDataset({self.name!r}, n={len(self)}, shape={c}×{h}×{w}, per class={counts})"


def to_canonical(images: torch.Tensor, *, channels: int = 1, image_size: int = 32) -> torch.Tensor:
    """Resize N×C×H×W images in [0, 1] to ``image_size`` and convert to ``channels`` (1 or 3).

    RGB → grey uses the ITU-R 601 luma weights; grey → RGB repeats the channel (what ImageNet
    backbones expect). Resizing is bilinear with antialiasing.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if image_size < 8:
        raise ValueError(f"image_size must be >= 8, got {image_size}")
    x = images.float()
    if x.shape[1] == 3 and channels == 1:
        w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        x = (x * w).sum(1, keepdim=True)
    if x.shape[-2:] != (image_size, image_size):
        x = F.interpolate(
            x, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False
        )
    if x.shape[1] == 1 and channels == 3:
        x = x.repeat(1, 3, 1, 1)
    return x.clamp_(0, 1).contiguous()


def as_dataset(data) -> Dataset:
    """The Dataset behind ``data`` (a Dataset itself, or a DataLoader)."""
    return data.dataset if isinstance(data, DataLoader) else data


def few_shot_indices(
    labels, per_class: int, seed: int = 0, classes=None, *, name: str = "the dataset"
) -> np.ndarray:
    """Row indices of ``per_class`` random examples of every class in ``classes``, shuffled.

    ``classes`` defaults to the labels present. The one sampling rule behind
    :func:`few_shot` (datasets) and ``features.few_shot_probe`` (feature matrices), so both
    pick the same rows for the same seed.
    """
    if isinstance(per_class, bool) or not isinstance(per_class, (int, np.integer)) or per_class < 1:
        raise ValueError(f"per_class must be a positive int, got {per_class!r}")
    labels = np.asarray(labels)
    classes = np.unique(labels) if classes is None else classes
    rng = np.random.default_rng(seed)
    chosen = []
    for c in classes:
        idx = np.flatnonzero(labels == c)
        if len(idx) < per_class:
            smallest = min(int((labels == k).sum()) for k in classes)
            raise ValueError(
                f"few_shot: class {c} of {name} has only {len(idx)} examples, fewer than "
                f"per_class={per_class}; choose per_class <= {smallest}."
            )
        chosen.append(rng.choice(idx, size=per_class, replace=False))
    return rng.permutation(np.concatenate(chosen))


def few_shot(dataset: DigitDataset, per_class: int, seed: int = 0) -> DigitDataset:
    """``per_class`` labelled examples of every class, drawn at random (reproducible by ``seed``).

    This is the "few labels in the target domain" setting of fine-tuning. Raises ValueError
    when a class has fewer than ``per_class`` examples.
    """
    order = few_shot_indices(
        dataset.labels.numpy(), per_class, seed, range(dataset.num_classes), name=repr(dataset.name)
    )
    return dataset.subset(order, name=f"{dataset.name}[{per_class}/class]")


def make_loader(
    dataset: Dataset,
    batch_size: int = 128,
    shuffle: bool = False,
    seed: int = 0,
    drop_last: bool = False,
) -> DataLoader:
    """A DataLoader whose shuffling is reproducible by ``seed`` (its own generator).

    In-memory datasets need no worker processes: ``num_workers=0`` is the fastest here.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, generator=generator
    )
