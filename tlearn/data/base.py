"""The one item format every digit domain shares, and the helpers built on it.

A *domain* is a set of labelled images drawn from one distribution (rendered fonts,
handwriting scanned by UCI, MNIST, …). Transfer between domains is only a fair comparison
when the images look alike to the code, so every domain is converted to one format:

    x: float32 tensor C×H×W in [0, 1], a white digit on black (default 1×32×32)
    y: int class label in 0 … num_classes−1
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset

from tlearn import checks

__all__ = [
    "DigitDataset", "to_canonical", "few_shot", "few_shot_indices", "make_loader", "as_dataset",
    "inputs_of", "batches", "input_batches", "data_length", "shard",
]  # fmt: skip

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
        checks.images(images, "DigitDataset")  # uint8 cast blindly would be 0 … 255
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
    checks.one_of("channels", channels, (1, 3))
    checks.positive_int("image_size", image_size, minimum=8)
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


# --------------------------------------------------------------------------- inputs only
def inputs_of(batch: Any) -> torch.Tensor:
    """The inputs of a batch/item: ``x`` itself, or element 0 of ``(x, y, …)``."""
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
        return batch[0]
    raise ValueError(
        "each batch must be a tensor x or a tuple (x, y, ...) with x a tensor, "
        f"got {type(batch).__name__}"
    )


class _InputsOnly(Dataset):
    """A view of a dataset that yields only the inputs ``x`` — the labels are unreachable.
    (Read through a ``Subset`` of the rows to batch, which has the length.)"""

    def __init__(self, dataset: Dataset):
        self._dataset = dataset

    def __getitem__(self, i: int) -> torch.Tensor:
        return inputs_of(self._dataset[i])


def _input_tensor(data: Any) -> torch.Tensor | None:
    """All inputs as one N×… tensor when ``data`` holds them in memory (tensor, DigitDataset)."""
    if isinstance(data, torch.Tensor):
        return data
    images = getattr(data, "images", None)
    if isinstance(data, Dataset) and isinstance(images, torch.Tensor) and len(images) == len(data):
        return images
    return None


def data_length(data: Any, name: str = "data") -> int:
    """Number of items in a Dataset, DataLoader (its dataset) or tensor; ValueError if 0."""
    if not isinstance(data, (DataLoader, Dataset, torch.Tensor)):
        raise ValueError(
            f"{name} must be a torch Dataset, DataLoader or tensor of images, "
            f"got {type(data).__name__}"
        )
    n = len(as_dataset(data))  # type: ignore[arg-type]
    if n == 0:
        raise ValueError(f"{name} is empty: pass at least one image")
    return n


#: A DataLoader without a generator seeds its iterator from the global RNG; giving it this
#: one keeps the global stream (dropout, initialisation) the same whatever the data type.
QUIET_GENERATOR = torch.Generator().manual_seed(0)


def shard(order: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """Process ``rank``'s share of ``order``, as ``DistributedSampler`` deals it: pad ``order``
    with its own first rows to a multiple of ``world_size``, then take every
    ``world_size``-th row from ``rank`` on. Every process gets the same number of rows.

    >>> shard(torch.arange(5), 0, 2).tolist(), shard(torch.arange(5), 1, 2).tolist()
    ([0, 2, 4], [1, 3, 0])
    """
    padded = -(-len(order) // world_size) * world_size  # one process: nothing padded, every row
    order = torch.cat([order, order[: padded - len(order)]])
    return order[rank::world_size]


def batches(
    data: Any,
    batch_size: int,
    *,
    labels: bool | None = True,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
    rank: int = 0,
    world_size: int = 1,
) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """One pass over ``data`` in ``(x, y)`` batches: the one batching helper.

    ``data`` is a Dataset, or a DataLoader (used as it is: its own batching and order). In-memory
    images (a tensor, a :class:`DigitDataset`) are sliced directly, without a DataLoader.
    ``drop_last`` drops a ragged last batch (when there is a full one). With ``world_size`` > 1
    (several processes, see ``train.fit``) each ``rank`` gets its own shard of the (shuffled)
    order — ``DistributedSampler``'s semantics; a DataLoader is used as it is.

    ``labels`` says what ``y`` is: ``True``, the labels, which ``data`` must have (training);
    ``None``, the labels where ``data`` has them, else None (``features.extract``); ``False``,
    always None: the labels are never read (an unlabelled target, :func:`input_batches`).

    >>> ds = DigitDataset(torch.zeros(5, 1, 8, 8), torch.arange(5))
    >>> [y.tolist() for _, y in batches(ds, 2)]
    [[0, 1], [2, 3], [4]]
    """
    if isinstance(data, DataLoader):
        yield from (_split(batch, labels) for batch in data)
        return
    if isinstance(data, torch.Tensor) and labels:
        raise ValueError(
            "expected labelled data (a Dataset of (x, y) pairs), got a bare tensor of images; "
            "wrap it with DigitDataset(images, labels), or pass it as an unlabelled target."
        )
    n = data_length(data)
    checks.positive_int("batch_size", batch_size)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    order = shard(order, rank, world_size)  # this process's rows: all of them in one process
    if drop_last and len(order) >= batch_size:  # a ragged last batch goes, never the only one
        order = order[: len(order) - len(order) % batch_size]
    chunks = list(order.split(batch_size))
    images = _input_tensor(data)
    if images is not None and (labels is False or isinstance(data, torch.Tensor)):
        yield from ((images[idx], None) for idx in chunks)
    elif images is not None and isinstance(getattr(data, "labels", None), torch.Tensor):
        yield from ((images[idx], data.labels[idx]) for idx in chunks)
    else:
        items = _InputsOnly(data) if labels is False else data
        yield from (_split(b, labels) for b in _loader(items, data, order, batch_size))


def _loader(items: Dataset, data: Any, order: torch.Tensor, batch_size: int) -> DataLoader:
    """A DataLoader over the rows ``order``, in that order. A streamed dataset (one with a
    ``num_workers`` attribute, e.g. ``ImageFolderDomain``) is decoded in that many worker
    processes, into pinned memory when a GPU will receive the batches."""
    workers = getattr(data, "num_workers", 0)
    return DataLoader(
        Subset(items, order.tolist()),
        batch_size=batch_size,
        generator=QUIET_GENERATOR,
        num_workers=workers,
        pin_memory=workers > 0 and torch.cuda.is_available(),
        prefetch_factor=4 if workers > 0 else None,
    )


def _split(batch: Any, labels: bool | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A loader's batch → ``(x, y)``, with ``y`` as :func:`batches`' ``labels`` asks."""
    has_labels = isinstance(batch, (tuple, list)) and len(batch) >= 2
    if labels and not has_labels:
        raise ValueError(
            "expected labelled data: a Dataset or DataLoader of (x, y) pairs, got items of type "
            f"{type(batch).__name__}. Unlabelled images can only be the target of fit_adapt."
        )
    y = torch.as_tensor(batch[1]) if has_labels and labels is not False else None
    return inputs_of(batch), y


def input_batches(data: Any, batch_size: int, **kwargs: Any) -> Iterator[torch.Tensor]:
    """The inputs ``x`` of :func:`batches` (same keywords): the labels are never read."""
    return (x for x, _ in batches(data, batch_size, labels=False, **kwargs))


def few_shot_indices(
    labels, per_class: int, seed: int = 0, classes=None, *, name: str = "the dataset"
) -> np.ndarray:
    """Row indices of ``per_class`` random examples of every class in ``classes``, shuffled.

    ``classes`` defaults to the labels present. The one sampling rule behind
    :func:`few_shot` (datasets) and ``features.few_shot_probe`` (feature matrices), so both
    pick the same rows for the same seed.
    """
    checks.positive_int("per_class", per_class)
    checks.nonnegative_int("seed", seed)
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


def few_shot(dataset, per_class: int, seed: int = 0):
    """``per_class`` labelled examples of every class, drawn at random (reproducible by ``seed``).

    This is the "few labels in the target domain" setting of fine-tuning. ``dataset`` is a
    :class:`DigitDataset` or a streamed ``ImageFolderDomain`` (labels are read from its list,
    no image is decoded); the result is of the same kind. Raises ValueError when a class has
    fewer than ``per_class`` examples.
    """
    order = few_shot_indices(
        np.asarray(dataset.labels), per_class, seed, range(dataset.num_classes),
        name=repr(dataset.name),
    )  # fmt: skip
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
    checks.positive_int("batch_size", batch_size)
    checks.boolean("shuffle", shuffle)
    checks.boolean("drop_last", drop_last)
    checks.nonnegative_int("seed", seed)
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, generator=generator
    )
