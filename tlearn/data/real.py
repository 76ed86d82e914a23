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
office31       office31/<domain>/<class>/*.jpg (Saenko 2010) RGB, ``image_size`` (224)
=============  ==========================================  ==============================
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tlearn.runtime import data_dir

__all__ = ["torchvision_digits", "image_folder", "FASHION_CLASSES"]

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


def torchvision_digits(
    name: str, split: str, *, root: str | Path | None = None, download: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N×C×H×W float32 in [0, 1], native size) and labels of a torchvision dataset."""
    import torchvision.datasets as tvd

    root = Path(root) if root is not None else data_dir()
    train = split == "train"
    try:
        if name in ("mnist", "fashion_mnist"):
            cls = tvd.MNIST if name == "mnist" else tvd.FashionMNIST
            ds = cls(str(root), train=train, download=download)
            images = ds.data.numpy()[:, None].astype(np.float32) / 255.0
            labels = ds.targets.numpy()
        elif name == "usps":
            ds = tvd.USPS(str(root), train=train, download=download)
            images = np.asarray(ds.data)[:, None].astype(np.float32) / 255.0
            labels = np.asarray(ds.targets)
        elif name == "svhn":
            ds = tvd.SVHN(str(root), split=split, download=download)
            images = ds.data.astype(np.float32) / 255.0  # N×3×32×32
            labels = ds.labels % 10  # torchvision already maps '10' to 0; keep it safe
        else:
            raise ValueError(f"not a torchvision digit domain: {name!r}")
    except RuntimeError as e:  # torchvision: "Dataset not found. You can use download=True …"
        raise _missing(name, root, e) from None
    except OSError as e:
        if download:
            raise ConnectionError(
                f"downloading {name} failed ({e}); are you offline? Put the files under {root} "
                "or set TLEARN_DATA."
            ) from None
        raise _missing(name, root, e) from None
    return torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels).long()


def image_folder(
    folder: str | Path, *, image_size: int = 224
) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    """Every image under ``folder/<class>/`` (the Office-31 / ImageFolder layout), resized.

    Returns images (N×3×S×S in [0, 1]), labels and the class names (sorted folder names).
    """
    from torchvision import datasets, transforms

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"image folder {folder} does not exist; expected {folder}/<class name>/<image files>"
        )
    tf = transforms.Compose([transforms.Resize((image_size, image_size)), transforms.ToTensor()])
    ds = datasets.ImageFolder(str(folder), transform=tf)
    images = torch.stack([ds[i][0] for i in range(len(ds))])
    return images, torch.tensor(ds.targets, dtype=torch.long), tuple(ds.classes)
