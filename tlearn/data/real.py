"""Real datasets, loaded by torchvision from files the user has (or downloads).

These domains are not embedded: they live under ``TLEARN_DATA`` (default
``~/.cache/tlearn/data``). Nothing is downloaded unless you ask with ``download=True``,
so offline use fails fast with a message that says where the files were expected.

=============  ==========================================  ==============================
name           files (torchvision layout under the root)   converted to
=============  ==========================================  ==============================
mnist          MNIST/raw/*-ubyte (LeCun et al. 1998)        28×28 grey → 32×32
fashion_mnist  FashionMNIST/raw/*-ubyte (Xiao et al. 2017)  28×28 grey → 32×32
usps           usps.bz2, usps.t.bz2 (Hull 1994)             16×16 grey → 32×32
svhn           train_32x32.mat, test_32x32.mat (Netzer 2011) 32×32 RGB → grey
office31       office31/<domain>/<class>/*.jpg (Saenko 2010) RGB, streamed (224)
office_home    office_home/<domain>/<class>/*.jpg (Venkateswara 2017)  RGB, streamed (224)
folder         <root>/<class>/* (your own photos)           RGB, streamed (224)
=============  ==========================================  ==============================

Digit domains are small and held in memory. Photo folders are not: Office-31's amazon domain
at 224 px would be 1.7 GB of float32 before training starts. :class:`ImageFolderDomain` keeps
only the file names and labels; each image is read and transformed when a batch asks for it,
in DataLoader worker processes (:func:`loader_workers`), so memory does not grow with the
number of images.

A file that cannot be read (corrupt, truncated, not an image) raises :class:`DataFileError`
naming the file.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from tlearn import checks
from tlearn.runtime import cpu_budget, data_dir

__all__ = [
    "torchvision_digits", "read_svhn", "image_folder", "ImageFolderDomain", "folder_transform",
    "check_same_classes", "loader_workers", "DataFileError", "FASHION_CLASSES", "IMAGE_EXTENSIONS",
]  # fmt: skip

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


class DataFileError(ValueError):
    """A dataset file that exists but cannot be read: corrupt, truncated or of the wrong kind."""


FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip


def _missing(name: str, root: Path, err: Exception) -> FileNotFoundError:
    return FileNotFoundError(
        f"{name} was not found under {root} ({err}). Put the files there (torchvision's layout), "
        f"point TLEARN_DATA (or root=) at the folder that holds them, or pass download=True "
        f"when you are online."
    )


def _corrupt(path: Path, err: Exception | str) -> DataFileError:
    return DataFileError(
        f"{path} is corrupt, truncated or not the expected file ({err}); delete it and put a "
        "good copy there (or pass download=True when you are online)."
    )


def _check_idx(path: Path) -> None:
    """Check an MNIST-style IDX file: its header's shape must account for every byte.

    IDX: 2 zero bytes, a type byte (0x08 = unsigned byte), the number of dimensions n, then n
    big-endian uint32 sizes, then the values.
    """
    if not path.is_file():
        return  # missing files are torchvision's "not found" case
    raw = path.read_bytes()
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise _corrupt(path, "not an unsigned-byte IDX file")
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    if len(raw) < header or len(raw) != header + int(np.prod(dims)):
        raise _corrupt(path, f"{len(raw)} bytes, but its header promises a {dims} array")


def read_svhn(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N×3×32×32 uint8) and labels 0–9 from an SVHN ``*_32x32.mat`` file.

    The file (Netzer et al. 2011) holds ``X`` (32×32×3×N) and ``y`` (N×1, with 10 for the
    digit 0). Read with ``scipy.io.loadmat`` (what torchvision uses, without its checksum, so a
    copy of your own loads too).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no SVHN file at {path}")
    from scipy.io import loadmat  # scipy comes with scikit-learn

    try:
        mat = loadmat(str(path))
        images, labels = mat["X"], np.asarray(mat["y"]).reshape(-1).astype(np.int64)
    except Exception as e:  # scipy raises ValueError, OSError, KeyError … for a bad file
        raise _corrupt(path, f"{type(e).__name__}: {e}") from None
    if images.ndim != 4 or images.shape[:3] != (32, 32, 3) or images.shape[3] != len(labels):
        raise _corrupt(path, f"X has shape {images.shape} and y {len(labels)} labels")
    return np.ascontiguousarray(images.transpose(3, 2, 0, 1)), labels % 10


def torchvision_digits(
    name: str, split: str, *, root: str | Path | None = None, download: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N×C×H×W float32 in [0, 1], native size) and labels of a torchvision dataset:
    ``"mnist"``, ``"fashion_mnist"``, ``"usps"`` or ``"svhn"``."""
    import torchvision.datasets as tvd

    checks.one_of("split", split, ("train", "test"))
    root = Path(root) if root is not None else data_dir()
    train = split == "train"
    file = None  # the file being read, to name it when it is bad
    try:
        if name in ("mnist", "fashion_mnist"):
            cls = tvd.MNIST if name == "mnist" else tvd.FashionMNIST
            raw = root / cls.__name__ / "raw"
            prefix = "train" if train else "t10k"
            for file in (raw / f"{prefix}-images-idx3-ubyte", raw / f"{prefix}-labels-idx1-ubyte"):
                _check_idx(file)
            file = None
            ds = cls(str(root), train=train, download=download)
            data, labels = ds.data.numpy()[:, None], ds.targets.numpy()
        elif name == "usps":
            file = root / ("usps.bz2" if train else "usps.t.bz2")
            ds = tvd.USPS(str(root), train=train, download=download)
            data, labels = np.asarray(ds.data)[:, None], np.asarray(ds.targets)
        else:  # svhn
            file = root / f"{split}_32x32.mat"
            if download and not file.is_file():
                tvd.SVHN(str(root), split=split, download=True)
            data, labels = read_svhn(file)  # N×3×32×32
    except DataFileError:
        raise
    except RuntimeError as e:  # torchvision: "Dataset not found. You can use download=True …"
        raise _missing(name, root, e) from None
    except (OSError, EOFError, ValueError) as e:
        if file is not None and file.is_file():  # there, but unreadable
            raise _corrupt(file, f"{type(e).__name__}: {e}") from None
        if download:
            raise ConnectionError(
                f"downloading {name} failed ({e}); are you offline? Put the files under {root} "
                "or set TLEARN_DATA."
            ) from None
        raise _missing(name, root, e) from None
    images = data.astype(np.float32) / 255.0  # every file holds uint8 images, N×C×H×W
    return torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels).long()


# --------------------------------------------------------------------------- photo folders
def loader_workers() -> int:
    """DataLoader worker processes for decoding images: the CPUs this process may use
    (:func:`tlearn.runtime.cpu_budget`) less one for the training loop, at most 8, at least 0
    (``TLEARN_WORKERS`` overrides)."""
    return checks.env_int("TLEARN_WORKERS", max(0, min(8, cpu_budget() - 1)))


def folder_transform(
    image_size: int = 224,
    *,
    train: bool = False,
    channels: int = 3,
    normalize: tuple[Sequence[float], Sequence[float]] | None = None,
):
    """The torchvision transform of a photo: PIL image → C×S×S float tensor.

    * ``train=True`` — augmentation as in torchvision's ImageNet recipe: a random crop of
      8–100 % of the area (``RandomResizedCrop``) and a random horizontal flip;
    * ``train=False`` — the test-time view: resize the short side to S·256/224, centre crop S.

    Values are in [0, 1], then ``(x − mean) / std`` when ``normalize=(mean, std)`` is given
    (a backbone's own: ``models.normalization("resnet50")``). ``channels=1`` converts to grey.
    """
    from torchvision import transforms as T

    checks.one_of("channels", channels, (1, 3))
    if train:
        steps = [T.RandomResizedCrop(image_size), T.RandomHorizontalFlip()]
    else:
        steps = [T.Resize(round(image_size * 256 / 224)), T.CenterCrop(image_size)]
    if channels == 1:
        steps.append(T.Grayscale(1))
    steps.append(T.ToTensor())
    if normalize is not None:
        steps.append(T.Normalize(*normalize))
    return T.Compose(steps)


class ImageFolderDomain(Dataset):
    """A photo domain read from disk lazily: ``folder/<class name>/<image files>``.

    Only ``samples`` (``(path, label)`` pairs, sorted) and ``targets`` are held in memory;
    ``ds[i]`` opens the i-th file with PIL, converts it to RGB and applies ``transform``. The
    one batching helper (``data.batches``) decodes in ``num_workers`` DataLoader processes.

    Args:
        folder: the domain's folder; each sub-folder is a class (sorted names → 0 … K−1).
        transform: PIL image → tensor; default :func:`folder_transform` (test-time view).
        classes: the class names to expect, in order (e.g. another domain's ``.classes``):
            a folder missing one of them, or with an extra one, raises ValueError.
        num_workers: decoding processes; default :func:`loader_workers`.

    >>> import tempfile, PIL.Image
    >>> root = Path(tempfile.mkdtemp())
    >>> for c in ("cat", "dog"):
    ...     (root / c).mkdir()
    ...     PIL.Image.new("RGB", (40, 30)).save(root / c / "0.png")
    >>> ds = ImageFolderDomain(root, transform=folder_transform(32))
    >>> ds.classes, ds.targets, ds[1][0].shape
    (('cat', 'dog'), [0, 1], torch.Size([3, 32, 32]))
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        transform=None,
        classes: Sequence[str] | None = None,
        name: str | None = None,
        num_workers: int | None = None,
    ):
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(
                f"image folder {folder} does not exist; expected {folder}/<class name>/<image files>"
            )
        found = tuple(sorted(d.name for d in folder.iterdir() if d.is_dir()))
        if classes is not None:
            _check_class_names(tuple(classes), found, "expected", str(folder))
        self.folder, self.name, self.classes = folder, name or folder.name, found
        self.samples = _scan(folder, found)
        self.targets = [label for _, label in self.samples]
        self.transform = transform if transform is not None else folder_transform()
        self.num_workers = loader_workers() if num_workers is None else num_workers

    @property
    def labels(self) -> torch.Tensor:
        return torch.as_tensor(self.targets, dtype=torch.long)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        path, label = self.samples[i]
        try:
            with Image.open(path) as img:
                img = img.convert("RGB")  # decodes now: a truncated file fails here
        except (OSError, ValueError, SyntaxError) as e:
            raise _corrupt(Path(path), f"{type(e).__name__}: {e}") from None
        return self.transform(img), label

    def subset(self, indices, name: str | None = None) -> ImageFolderDomain:
        """The same domain restricted to the rows ``indices`` (in that order), still streamed."""
        subset = copy.copy(self)
        subset.samples = [self.samples[int(i)] for i in np.asarray(indices).reshape(-1)]
        subset.targets = [label for _, label in subset.samples]
        subset.name = name or self.name
        return subset

    def __repr__(self) -> str:
        counts = np.bincount(self.targets, minlength=self.num_classes).tolist()
        return (
            f"ImageFolderDomain({self.name!r}, n={len(self)}, {self.num_classes} classes, "
            f"per class={counts}, streamed from {self.folder})"
        )


def _scan(folder: Path, classes: tuple[str, ...]) -> list[tuple[str, int]]:
    """``(path, label)`` of every image file under ``folder/<class>/``, sorted; a warning for a
    class folder without images (the class still counts: the head keeps its output)."""
    samples = [
        (str(path), label)
        for label, cls in enumerate(classes)
        for path in sorted((folder / cls).rglob("*"))
        if path.suffix.lower() in IMAGE_EXTENSIONS
    ]
    if not samples:
        raise FileNotFoundError(
            f"no image files ({', '.join(IMAGE_EXTENSIONS)}) under {folder}/<class>/"
        )
    empty = sorted(set(classes) - {classes[label] for _, label in samples})
    if empty:
        warnings.warn(
            f"image folder {folder}: class folder(s) {', '.join(empty)} hold no image "
            f"files ({', '.join(IMAGE_EXTENSIONS)}); the class still counts, with no examples",
            UserWarning,
            stacklevel=3,
        )
    return samples


def _check_class_names(a: tuple, b: tuple, what_a: str, what_b: str) -> None:
    if a == b:
        return
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    if not only_a and not only_b:
        raise ValueError(f"the classes of {what_a} and {what_b} are the same but in another order")
    raise ValueError(
        f"the class sets differ: only in {what_a}: {only_a or 'none'}; only in {what_b}: "
        f"{only_b or 'none'}. Both domains must have the same classes (rename or remove folders)."
    )


def check_same_classes(a, b) -> None:
    """Raise ValueError listing the differences unless domains ``a`` and ``b`` (anything with
    ``.classes``) have the same class names in the same order — label k must mean the same
    class in both, or adaptation learns nonsense. Domains without ``.classes`` pass."""
    ca, cb = getattr(a, "classes", None), getattr(b, "classes", None)
    if ca is None or cb is None:
        return
    name = lambda d, k: repr(getattr(d, "name", k))  # noqa: E731
    _check_class_names(tuple(ca), tuple(cb), f"domain {name(a, 'a')}", f"domain {name(b, 'b')}")


def image_folder(
    folder: str | Path, *, image_size: int = 224
) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    """Every image under ``folder/<class>/`` decoded into one in-memory tensor (small folders).

    Returns images (N×3×S×S in [0, 1], test-time view), labels and the class names. For
    anything large use :class:`ImageFolderDomain`, which streams.
    """
    ds = ImageFolderDomain(folder, transform=folder_transform(image_size), num_workers=0)
    images = torch.stack([ds[i][0] for i in range(len(ds))])
    return images, ds.labels, ds.classes
