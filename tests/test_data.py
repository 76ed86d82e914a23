import bz2
import struct

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, TensorDataset

from tlearn import data
from tlearn.data.base import batches, input_batches
from tlearn.data.synthetic import font_paths


def test_synth_format_and_balance():
    ds = data.load_domain("synth", split="train", size=200, seed=0)
    x, y = ds[0]
    assert x.shape == (1, 32, 32) and x.dtype == torch.float32
    assert isinstance(y, int) and 0 <= y <= 9
    assert 0.0 <= ds.images.min() and ds.images.max() <= 1.0
    assert torch.bincount(ds.labels, minlength=10).tolist() == [20] * 10
    # white digit on black: the border is mostly background, the centre has ink
    assert ds.images[:, :, :3, :].mean() < ds.images[:, :, 12:20, 12:20].mean()


def test_synth_is_deterministic_and_splits_differ():
    a = data.load_domain("synth", size=50, seed=1)
    b = data.load_domain("synth", size=50, seed=1)
    c = data.load_domain("synth", size=50, seed=2)
    t = data.load_domain("synth", split="test", size=50, seed=1)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)
    assert not torch.equal(a.images, t.images)


def test_synth_uses_many_fonts():
    names = {p.name for p in font_paths()}
    assert len(names) >= 20
    assert {"DejaVuSans.ttf", "cmr10.ttf", "STIXGeneral.ttf"} <= names
    assert "cmsy10.ttf" not in names  # maps digit code points to symbols


def test_uci_fixed_stratified_split():
    tr = data.load_domain("uci", split="train")
    te = data.load_domain("uci", split="test")
    assert len(tr) + len(te) == 1797 and len(te) == 540
    assert tr.images.shape[1:] == (1, 32, 32)
    counts = torch.bincount(te.labels, minlength=10)
    assert counts.min() >= 52 and counts.max() <= 55
    # no image is in both splits
    flat_tr = {bytes(x.numpy().tobytes()) for x in tr.images[:, :, ::4, ::4]}
    assert sum(bytes(x.numpy().tobytes()) in flat_tr for x in te.images[:, :, ::4, ::4]) < 5
    again = data.load_domain("uci", split="test")
    assert torch.equal(again.images, te.images)


def test_channels_and_image_size():
    ds = data.load_domain("uci", split="test", channels=3, image_size=64)
    assert ds.images.shape[1:] == (3, 64, 64)
    assert torch.equal(ds.images[:, 0], ds.images[:, 2])
    with pytest.raises(ValueError, match="channels"):
        data.load_domain("uci", channels=2)


def test_unknown_domain_lists_valid_names():
    with pytest.raises(ValueError, match="valid names: .*synth.*uci") as e:
        data.load_domain("mnsit")
    assert "Did you mean 'mnist'" in str(e.value)


@pytest.mark.parametrize("name", ["synth", "uci"])
@pytest.mark.parametrize("size", [0, -5, 2.5, True])
def test_bad_size_is_refused_not_replaced_by_the_default(name, size):
    with pytest.raises(ValueError, match="size must be a positive int"):
        data.load_domain(name, size=size)


def test_batches_shuffle_reproducibly_and_drop_ragged_batches():
    ds = data.load_domain("uci", split="test")

    def labels(seed):
        g = torch.Generator().manual_seed(seed)
        return torch.cat([y for _, y in batches(ds, 64, shuffle=True, generator=g)])

    assert torch.equal(labels(3), labels(3)) and not torch.equal(labels(3), labels(4))
    assert torch.equal(labels(3).sort().values, ds.labels.sort().values)  # a permutation
    sizes = [len(y) for _, y in batches(ds, 64, drop_last=True)]
    assert sizes == [64] * (len(ds) // 64)
    with pytest.raises(ValueError, match="labelled"):
        next(batches(TensorDataset(ds.images), 4))


def test_few_shot_counts_and_errors():
    tgt = data.load_domain("uci", split="train")
    few = data.few_shot(tgt, per_class=5, seed=0)
    assert torch.bincount(few.labels, minlength=10).tolist() == [5] * 10
    assert torch.equal(few.images, data.few_shot(tgt, 5, seed=0).images)
    assert not torch.equal(few.images, data.few_shot(tgt, 5, seed=1).images)
    with pytest.raises(ValueError, match="fewer than per_class=500"):
        data.few_shot(tgt, per_class=500)
    with pytest.raises(ValueError):
        data.few_shot(tgt, per_class=0)


def test_make_loader_reproducible_shuffle():
    ds = data.load_domain("synth", size=64)
    first = [y.tolist() for _, y in data.make_loader(ds, 16, shuffle=True, seed=5)]
    again = [y.tolist() for _, y in data.make_loader(ds, 16, shuffle=True, seed=5)]
    assert first == again and sum(map(len, first)) == 64


# --- real datasets, from small files written here in torchvision's layout ---------------


def _write_idx(path, array: np.ndarray):
    code = 0x08  # unsigned byte
    header = struct.pack(">I", (code << 8) | array.ndim) + b"".join(
        struct.pack(">I", d) for d in array.shape
    )
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_mnist_from_local_files(tmp_path, monkeypatch):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 30), ("t10k", 20)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    monkeypatch.setenv("TLEARN_DATA", str(tmp_path))
    ds = data.load_domain("mnist", split="test")
    assert len(ds) == 20 and ds.images.shape[1:] == (1, 32, 32)
    assert ds.labels.tolist() == [i % 10 for i in range(20)]
    assert data.available_offline()["mnist"]
    assert len(data.load_domain("mnist", size=10, seed=0)) == 10


def test_usps_from_local_files(tmp_path):
    rng = np.random.default_rng(0)
    lines = []
    for i in range(12):
        vals = rng.uniform(-1, 1, 256)
        lines.append(f"{i % 10 + 1} " + " ".join(f"{j + 1}:{v:.4f}" for j, v in enumerate(vals)))
    for name in ("usps.bz2", "usps.t.bz2"):
        (tmp_path / name).write_bytes(bz2.compress("\n".join(lines).encode()))
    ds = data.load_domain("usps", split="train", root=tmp_path)
    assert len(ds) == 12 and ds.images.shape[1:] == (1, 32, 32)
    assert ds.labels.tolist() == [i % 10 for i in range(12)]


def test_missing_real_data_offline_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="TLEARN_DATA.*download=True"):
        data.load_domain("mnist", root=tmp_path)


def test_office31_image_folder(tmp_path):
    for cls in ("bike", "mug"):
        folder = tmp_path / "office31" / "webcam" / "images" / cls
        folder.mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (40, 30), (i * 60, 100, 200)).save(folder / f"{i}.jpg")
    ds = data.load_domain("office31", domain="webcam", root=tmp_path / "office31", image_size=48)
    assert ds.classes == ("bike", "mug") and len(ds) == 6
    assert ds[0][0].shape == (3, 48, 48)  # streamed: images are read when asked for
    grey = data.load_domain(
        "office31", domain="webcam", root=tmp_path / "office31", image_size=48, channels=1
    )
    assert grey[0][0].shape == (1, 48, 48)
    with pytest.raises(ValueError, match="amazon"):
        data.load_domain("office31", domain="kitchen", root=tmp_path)


class _Streamed(Dataset):
    """``(x, y)`` items read one by one, whose ``labels`` attribute must never be touched."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        return self.ds[i]

    @property
    def labels(self):
        raise AssertionError("labels were read")


def test_batches_labels_true_none_false():
    ds = data.DigitDataset(torch.rand(5, 1, 8, 8), torch.arange(5))
    streamed = _Streamed(ds)
    # None: the labels where the data has them, else None — in memory, streamed or a loader
    for labelled in (ds, DataLoader(ds, batch_size=2)):
        assert torch.equal(torch.cat([y for _, y in batches(labelled, 2, labels=None)]), ds.labels)
    for bare in (ds.images, TensorDataset(ds.images), DataLoader(TensorDataset(ds.images), 2)):
        got = list(batches(bare, 2, labels=None))
        assert [y for _, y in got] == [None] * 3
        assert torch.equal(torch.cat([x for x, _ in got]), ds.images)
    # False: the same inputs, and not even the labels attribute is read
    for source in (ds, streamed):
        xs = list(
            input_batches(source, 2, shuffle=True, generator=torch.Generator().manual_seed(1))
        )
        g = torch.Generator().manual_seed(1)
        assert all(
            torch.equal(a, b)
            for a, (b, _) in zip(xs, batches(ds, 2, shuffle=True, generator=g), strict=True)
        )
    with pytest.raises(ValueError, match="labelled"):
        next(batches(ds.images, 2))  # True (the default): labels are required
