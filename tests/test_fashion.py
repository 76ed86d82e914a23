"""The shipped Fashion-MNIST subset: file, licence, shapes, balance, determinism, classes."""

import hashlib
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch

from tlearn import data
from tlearn.data import fashion

BUILD = runpy.run_path(str(Path(__file__).parents[1] / "tools" / "build_fashion.py"))
PER_CLASS, balanced_subset = BUILD["PER_CLASS"], BUILD["balanced_subset"]
SHA256 = "921c2645b5328159f7084ff8cdcd923bad52bb6445b931b3976b3697f0dea86d"


def test_file_checksum_size_and_licence():
    assert hashlib.sha256(fashion.FILE.read_bytes()).hexdigest() == SHA256
    assert fashion.FILE.stat().st_size <= 2_000_000
    licence = fashion.FILE.with_name("FASHION_MNIST_LICENSE").read_text()
    assert "Zalando SE" in licence and "MIT" in licence and "1708.07747" in licence


def test_package_data_lists_the_files():
    text = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    section = text.split("[tool.setuptools.package-data]", 1)[1].split("\n[", 1)[0]
    assert '"tlearn.data"' in section
    assert '"fashion_mnist_small.npz"' in section and '"FASHION_MNIST_LICENSE"' in section


@pytest.mark.parametrize("split", ["train", "test"])
def test_shapes_balance_and_range(split):
    ds = data.load_domain("fashion", split)
    n = 10 * PER_CLASS[split]
    assert len(ds) == n and ds.images.shape == (n, 1, 32, 32)
    assert ds.images.dtype == torch.float32
    assert 0 <= ds.images.min() and ds.images.max() <= 1 and ds.images.std() > 0.1
    assert torch.bincount(ds.labels, minlength=10).tolist() == [PER_CLASS[split]] * 10
    assert ds.classes[0] == "T-shirt/top" and ds.classes[9] == "Ankle boot"


def test_canonical_options_and_determinism():
    a = data.load_domain("fashion", "test", channels=3, image_size=64)
    b = data.load_domain("fashion", "test", channels=3, image_size=64)
    assert a.images.shape == (1000, 3, 64, 64) and torch.equal(a.images, b.images)
    assert torch.equal(a.images[:, 0], a.images[:, 2])  # grey repeated
    small = data.load_domain("fashion", "train", size=100, seed=1)
    again = data.load_domain("fashion", "train", size=100, seed=1)
    assert len(small) == 100 and torch.equal(small.labels, again.labels)


def test_train_and_test_are_different_photos():
    with np.load(fashion.FILE) as z:
        tr, te = z["train_images"].reshape(2000, -1), z["test_images"].reshape(1000, -1)
    seen = {row.tobytes() for row in tr}
    assert sum(row.tobytes() in seen for row in te) <= 2  # Fashion-MNIST has a few duplicates


def test_balanced_subset_is_reproducible_and_balanced():
    labels = np.repeat(np.arange(3), 10)
    a, b = balanced_subset(labels, 4, 0), balanced_subset(labels, 4, 0)
    assert np.array_equal(a, b) and np.bincount(labels[a]).tolist() == [4, 4, 4]
    assert not np.array_equal(a, balanced_subset(labels, 4, 1))


def test_listed_offline_and_bad_split():
    assert data.available_offline()["fashion"] is True
    with pytest.raises(ValueError, match="split"):
        data.load_domain("fashion", "validation")
