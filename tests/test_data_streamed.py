"""Streamed photo folders, SVHN's .mat files, bad files, MNIST-M-style blended digits."""

import bz2
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from tlearn import adapt, data, train
from tlearn.data.base import batches
from tlearn.data.shifted import blend_with_photos


def _folder(root: Path, classes=("bike", "mug"), per_class=25, size=(48, 40)) -> Path:
    """``root/<class>/<i>.png``: each class its own colour, plus noise, so a net can learn it."""
    rng = np.random.default_rng(0)
    for k, cls in enumerate(classes):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 60, (size[1], size[0], 3)) + np.array([180 * (k % 2), 90, 0])
            Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(root / cls / f"{i}.png")
    return root


def test_folder_domain_is_streamed_with_classes_targets_samples(tmp_path):
    ds = data.load_domain("folder", root=_folder(tmp_path), image_size=32, num_workers=0)
    assert isinstance(ds, data.ImageFolderDomain) and not hasattr(ds, "images")
    assert ds.classes == ("bike", "mug") and len(ds) == 50
    assert ds.targets == [0] * 25 + [1] * 25
    assert ds.samples[0] == (str(tmp_path / "bike" / "0.png"), 0)
    x, y = ds[30]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and y == 1
    # the test split is the deterministic view; train augments (random crops, flips)
    test = data.load_domain("folder", "test", root=tmp_path, image_size=32, num_workers=0)
    assert torch.equal(test[3][0], test[3][0])
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    normed = data.load_domain(
        "folder", "test", root=tmp_path, image_size=32, normalize=(mean, std), num_workers=0
    )
    assert torch.allclose(normed[3][0], (test[3][0] - 0.5) / 0.25, atol=1e-6)


def test_workers_decode_the_same_batches(tmp_path):
    _folder(tmp_path, per_class=8)
    one = data.load_domain("folder", "test", root=tmp_path, image_size=32, num_workers=0)
    two = data.load_domain("folder", "test", root=tmp_path, image_size=32, num_workers=2)
    g = [torch.Generator().manual_seed(1) for _ in range(2)]
    for (xa, ya), (xb, yb) in zip(
        batches(one, 5, shuffle=True, generator=g[0]),
        batches(two, 5, shuffle=True, generator=g[1]),
        strict=True,
    ):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_fit_trains_on_a_streamed_folder_and_few_shot_reads_no_image(tmp_path, monkeypatch):
    ds = data.load_domain("folder", "test", root=_folder(tmp_path), image_size=16, num_workers=0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 2))
    hist = train.fit(
        net, ds, epochs=4, lr=1e-2, batch_size=10, progress=False, seed=0, device="cpu"
    )
    assert hist.last["train_accuracy"] > 0.9
    assert train.evaluate(net, ds, device="cpu")["accuracy"] > 0.9

    def no_decoding(self, i):
        raise AssertionError("an image was decoded")

    monkeypatch.setattr(data.ImageFolderDomain, "__getitem__", no_decoding)
    few = data.few_shot(ds, per_class=3, seed=0)
    assert isinstance(few, data.ImageFolderDomain) and sorted(few.targets) == [0, 0, 0, 1, 1, 1]
    assert torch.equal(train._labels(ds), torch.tensor(ds.targets))


def _peak_rss_growth(fn) -> int:
    """Bytes the process's peak resident memory grew by while ``fn`` ran (Linux)."""
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS

    def kib(field):
        line = next(
            ln for ln in Path("/proc/self/status").read_text().splitlines() if ln.startswith(field)
        )
        return int(line.split()[1]) * 1024

    before = kib("VmRSS:")
    fn()
    return kib("VmHWM:") - before


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_peak_memory_does_not_grow_with_the_number_of_images(tmp_path):
    small = _folder(tmp_path / "small", per_class=20, size=(24, 20))
    large = _folder(tmp_path / "large", per_class=160, size=(24, 20))  # 8× the images
    side = 96  # 320 images at 96 px would be 35 MB in memory as float32

    def one_pass(root):
        ds = data.load_domain("folder", "test", root=root, image_size=side, num_workers=0)
        for x, _ in batches(ds, 16):
            x.sum()

    one_pass(small)  # warm up: imports, allocator pools
    grow_small = _peak_rss_growth(lambda: one_pass(small))
    grow_large = _peak_rss_growth(lambda: one_pass(large))
    in_memory = 320 * 3 * side * side * 4
    assert grow_large < grow_small + 8 * 2**20, (grow_small, grow_large)
    assert grow_large < in_memory / 3, (grow_large, in_memory)


def test_mismatched_class_sets_are_listed(tmp_path):
    a = data.load_domain("folder", root=_folder(tmp_path / "a", ("bike", "mug"), 4), num_workers=0)
    b = data.load_domain("folder", root=_folder(tmp_path / "b", ("bike", "pen"), 4), num_workers=0)
    with pytest.raises(
        ValueError, match=r"only in domain 'a': \['mug'\]; only in domain 'b': \['pen'\]"
    ):
        data.check_same_classes(a, b)
    with pytest.raises(ValueError, match="class sets differ"):
        adapt.fit_adapt(nn.Sequential(), a, b, "coral", epochs=1, progress=False, device="cpu")
    data.check_same_classes(a, a)  # the same classes pass
    with pytest.raises(ValueError, match=r"only in expected: \['pen'\]"):
        data.ImageFolderDomain(tmp_path / "a", classes=("bike", "pen"))


def test_corrupt_or_truncated_images_name_the_file(tmp_path):
    root = _folder(tmp_path, per_class=2)
    (root / "mug" / "bad.jpg").write_bytes(b"this is not a jpeg")
    good = root / "bike" / "big.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
        good
    )
    (root / "bike" / "cut.jpg").write_bytes(good.read_bytes()[:400])
    ds = data.load_domain("folder", "test", root=root, image_size=16, num_workers=0)
    for name in ("bad.jpg", "cut.jpg"):
        i = next(i for i, (p, _) in enumerate(ds.samples) if p.endswith(name))
        with pytest.raises(data.DataFileError, match=f"{name} is corrupt"):
            ds[i]
    with pytest.raises(FileNotFoundError, match="expected"):
        data.load_domain("folder", root=tmp_path / "nowhere")


def test_office31_streams_its_domain(tmp_path):
    _folder(tmp_path / "office31" / "dslr" / "images", ("back_pack", "bike"), 3)
    ds = data.load_domain("office31", domain="dslr", root=tmp_path / "office31", image_size=40)
    assert isinstance(ds, data.ImageFolderDomain) and ds.name == "office31/dslr"
    assert ds[0][0].shape == (3, 40, 40) and ds.classes == ("back_pack", "bike")
    with pytest.raises(ValueError, match="'Art'"):
        data.load_domain("office_home", domain="art", root=tmp_path)


# --- SVHN, MNIST, USPS files --------------------------------------------------------------


def test_svhn_from_a_mat_file(tmp_path):
    savemat = pytest.importorskip("scipy.io").savemat
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (32, 32, 3, 12), dtype=np.uint8)
    y = (np.arange(12) % 10 + 1).reshape(-1, 1)  # SVHN writes the digit 0 as label 10
    savemat(tmp_path / "test_32x32.mat", {"X": X, "y": y})
    ds = data.load_domain("svhn", split="test", root=tmp_path, channels=3)
    assert len(ds) == 12 and ds.images.shape[1:] == (3, 32, 32)
    assert ds.labels.tolist() == [(i + 1) % 10 for i in range(12)]
    assert torch.allclose(ds.images[5], torch.from_numpy(X[..., 5].transpose(2, 0, 1)) / 255.0)
    assert data.load_domain("svhn", split="test", root=tmp_path).images.shape[1:] == (1, 32, 32)
    (tmp_path / "train_32x32.mat").write_bytes(b"MATLAB 5.0 MAT-file, truncated")
    with pytest.raises(data.DataFileError, match="train_32x32.mat is corrupt"):
        data.load_domain("svhn", split="train", root=tmp_path)


def test_truncated_mnist_and_usps_files_are_named(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    header = (0x0803).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (10, 28, 28))
    (raw / "t10k-images-idx3-ubyte").write_bytes(header + bytes(28 * 28 * 4))  # 4 of 10 images
    (raw / "t10k-labels-idx1-ubyte").write_bytes(
        (0x0801).to_bytes(4, "big") + (10).to_bytes(4, "big") + bytes(10)
    )
    with pytest.raises(data.DataFileError, match="t10k-images-idx3-ubyte is corrupt.*header"):
        data.load_domain("mnist", split="test", root=tmp_path)
    (tmp_path / "usps.bz2").write_bytes(bz2.compress(b"1 1:0.5 2:0.25\n" * 50)[:30])
    with pytest.raises(data.DataFileError, match="usps.bz2 is corrupt"):
        data.load_domain("usps", split="train", root=tmp_path)


# --- MNIST-M-style digits -------------------------------------------------------------------


def test_synth_m_blends_digits_with_photos_deterministically():
    grey = data.load_domain("synth", size=40, seed=3)
    colour = data.load_domain("synth_m", size=40, seed=3)
    again = data.load_domain("synth_m", size=40, seed=3)
    other = data.load_domain("synth_m", size=40, seed=4)
    assert colour.images.shape == (40, 3, 32, 32) and torch.equal(colour.labels, grey.labels)
    assert torch.equal(colour.images, again.images) and not torch.equal(colour.images, other.images)
    # |digit − patch|: where the digit is white the output is 1 − patch, where black the patch
    patch = blend_with_photos(torch.zeros(40, 1, 32, 32), seed=3)
    ink = grey.images.expand(-1, 3, -1, -1)
    assert torch.allclose(colour.images, (ink - patch).abs(), atol=1e-6)
    assert patch.std() > 0.05  # real photo texture, not a flat colour
    assert "synth_m" in data.available_offline()


def test_mnist_m_from_local_mnist_files(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", 6), ("t10k", 4)):
        dims = (n, 28, 28)
        header = (0x0803).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(header + bytes(n * 28 * 28))
        labels = (0x0801).to_bytes(4, "big") + n.to_bytes(4, "big") + bytes(range(n))
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(labels)
    ds = data.load_domain("mnist_m", split="test", root=tmp_path)
    assert ds.images.shape == (4, 3, 32, 32) and ds.labels.tolist() == [0, 1, 2, 3]
    assert ds.images.std() > 0.05  # black digits: the output is the photo patch itself
