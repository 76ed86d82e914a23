"""tlearn.features: hooks, pooling, order and caching, checked against independent
computations (an explicit forward pass, numpy pooling)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from tlearn import data, features
from tlearn.models import DigitNet


@pytest.fixture(scope="module")
def net() -> DigitNet:
    torch.manual_seed(0)
    model = DigitNet()
    # non-trivial BatchNorm statistics, so eval vs train mode give different outputs
    model.train()
    with torch.no_grad():
        model(torch.rand(64, 1, 32, 32))
    return model.eval()


@pytest.fixture(scope="module")
def images() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(40, 1, 32, 32, generator=g), torch.arange(40) % 4


def manual(net: DigitNet, x: torch.Tensor, upto: str) -> torch.Tensor:
    """Run DigitNet's blocks by hand up to ``upto`` (inclusive), in eval mode."""
    out = x
    with torch.no_grad():
        for name, block in net.features.named_children():
            out = block(out)
            if f"features.{name}" == upto:
                return out
    raise AssertionError(upto)


# ============================================================================ extraction


@pytest.mark.parametrize("layer", ["features.conv1", "features.conv2", "features.conv3"])
def test_hooked_features_equal_manual_forward(net, images, layer):
    x, y = images
    Z, labels = features.extract(net, TensorDataset(x, y), layer=layer, pool=None, progress=False)
    np.testing.assert_allclose(Z.numpy(), manual(net, x, layer).numpy(), rtol=1e-5, atol=1e-6)
    assert labels.dtype == torch.int64 and torch.equal(labels, y)


def test_default_layer_is_features_and_output_layer_is_logits(net, images):
    x, y = images
    Z, _ = features.extract(net, x, progress=False)  # default: .features, a 128-vector
    with torch.no_grad():
        np.testing.assert_allclose(Z.numpy(), net.features(x).numpy(), rtol=1e-5, atol=1e-6)
        logits, _ = features.extract(net, x, layer="", progress=False)
        np.testing.assert_allclose(logits.numpy(), net(x).numpy(), rtol=1e-5, atol=1e-6)


def test_nested_module_and_batching_do_not_matter(net, images):
    x, y = images
    ds = TensorDataset(x, y)
    a, _ = features.extract(net, ds, layer="features.fc.1", batch_size=7, progress=False)
    b, _ = features.extract(net, ds, layer="features.fc.1", batch_size=40, progress=False)
    with torch.no_grad():
        ref = net.features.fc[1](net.features.fc[0](manual(net, x, "features.conv3")))
    np.testing.assert_allclose(a.numpy(), ref.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


def test_pooling_shapes_and_values(net, images):
    x, y = images
    raw = manual(net, x, "features.conv2").numpy()  # N×32×8×8
    ds = TensorDataset(x, y)
    expected = {
        "avg": raw.mean(axis=(2, 3)),
        "max": raw.max(axis=(2, 3)),
        "flatten": raw.reshape(len(raw), -1),
        None: raw,
    }
    for pool, ref in expected.items():
        Z, _ = features.extract(net, ds, layer="features.conv2", pool=pool, progress=False)
        assert tuple(Z.shape) == ref.shape, pool
        np.testing.assert_allclose(Z.numpy(), ref, rtol=1e-5, atol=1e-6)
        assert Z.dtype == torch.float32 and Z.device.type == "cpu"


def test_global_pool_against_numpy():
    t = torch.randn(3, 5, 4, 6)
    np.testing.assert_allclose(
        features.global_pool(t, "avg").numpy(), t.numpy().mean((2, 3)), atol=1e-6
    )
    np.testing.assert_allclose(features.global_pool(t, "max").numpy(), t.numpy().max((2, 3)))
    v = torch.randn(3, 7)
    assert torch.equal(features.global_pool(v, "avg"), v)  # vectors pass through
    with pytest.raises(ValueError, match="pool"):
        features.global_pool(t, "mean")


def test_forward_stops_after_hooked_layer(net, images):
    calls = []
    handle = net.head.register_forward_hook(lambda *a: calls.append(1))
    try:
        features.extract(net, images[0], layer="features.conv1", progress=False)
        assert calls == []  # the head never ran
        features.extract(net, images[0], layer="head", progress=False)
        assert calls == [1]
    finally:
        handle.remove()


def test_modes_and_weights_are_restored():
    torch.manual_seed(0)
    model = DigitNet().train()
    model.features.conv1.eval()  # a deliberately mixed state, e.g. frozen BatchNorm
    modes = [m.training for m in model.modules()]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    Z, _ = features.extract(model, torch.rand(8, 1, 32, 32), progress=False)
    assert [m.training for m in model.modules()] == modes
    for k, v in model.state_dict().items():  # BatchNorm statistics untouched: eval mode ran
        assert torch.equal(v, before[k]), k
    assert not model._forward_hooks and not model.head._forward_hooks  # hooks removed
    for m in model.modules():
        assert not m._forward_hooks


def test_results_are_ordinary_tensors(net, images):
    Z, y = features.extract(net, TensorDataset(*images), progress=False)
    assert not Z.is_inference()
    head = nn.Linear(Z.shape[1], 4)
    nn.functional.cross_entropy(head(Z), y).backward()  # usable for training a head
    assert head.weight.grad is not None


class _ImageIsItsIndex(Dataset):
    """Image i is constant i/100, label i % 3: any row can be traced back to its source."""

    def __len__(self):
        return 30

    def __getitem__(self, i):
        return torch.full((1, 32, 32), i / 100.0), i % 3


class _MeanNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Identity()

    def forward(self, x):
        return self.features(x)


def test_order_dataset_and_shuffled_loader():
    ds = _ImageIsItsIndex()
    Z, y = features.extract(_MeanNet(), ds, batch_size=4, progress=False)  # generic Dataset
    idx = np.round(Z[:, 0].numpy() * 100).astype(int)
    assert idx.tolist() == list(range(30))  # dataset order
    assert y.tolist() == [i % 3 for i in range(30)]
    loader = DataLoader(ds, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(0))
    Z, y = features.extract(_MeanNet(), loader, progress=False)
    idx = np.round(Z[:, 0].numpy() * 100).astype(int)
    assert sorted(idx.tolist()) == list(range(30)) and idx.tolist() != list(range(30))
    assert y.tolist() == [i % 3 for i in idx]  # rows follow the loader; labels stay paired


def test_tensor_input_has_no_labels_and_digit_dataset_fast_path(net, images):
    x, y = images
    Z, labels = features.extract(net, x, progress=False)
    assert labels is None and Z.shape == (40, 128)
    ds = data.DigitDataset(x, y)
    Z2, y2 = features.extract(net, ds, progress=False)
    np.testing.assert_allclose(Z.numpy(), Z2.numpy(), rtol=1e-5, atol=1e-6)
    assert torch.equal(y2, y)


def test_layers_table(net):
    table = features.layers(net, depth=2)
    assert table.names() == [
        "features.conv1",
        "features.conv2",
        "features.conv3",
        "features.fc",
        "features",
        "head",
    ]
    shapes = dict((r.name, r.shape) for r in table)
    assert shapes["features.conv2"] == (32, 8, 8) and shapes["head"] == (10,)
    assert dict((r.name, r.params) for r in table)["head"] == 128 * 10 + 10
    full = features.layers(net)
    assert "features.conv1.0" in full.names() and len(full) > len(table)
    assert "features.conv3" in repr(table) and "64×4×4" in repr(table)
    for name in full.names():  # every listed name is accepted by extract
        features.FeatureHook(net, name)


# ============================================================================ bad input


def test_unknown_layer_lists_names_and_close_matches(net, images):
    with pytest.raises(ValueError) as err:
        features.extract(net, images[0], layer="features.conv4", progress=False)
    msg = str(err.value)
    assert "features.conv3" in msg and "did you mean" in msg and "head" in msg


@pytest.mark.parametrize(
    "kwargs, match",
    [({"pool": "mean"}, "pool"), ({"batch_size": 0}, "batch_size"), ({"layer": 3}, "module name")],
)
def test_extract_bad_arguments(net, images, kwargs, match):
    with pytest.raises(ValueError, match=match):
        features.extract(net, images[0], progress=False, **kwargs)


def test_extract_bad_data(net):
    with pytest.raises(ValueError, match="Dataset"):
        features.extract(net, [1, 2, 3], progress=False)
    dict_loader = DataLoader([{"image": torch.rand(1, 32, 32)}] * 4, batch_size=2)
    with pytest.raises(ValueError, match="each batch"):
        features.extract(net, dict_loader, progress=False)


# ============================================================================ cache


def test_cache_hit_miss_and_equality(net, images, tmp_path, capsys):
    ds = TensorDataset(*images)
    cache = features.FeatureCache(tmp_path, verbose=True)
    Z1, y1 = features.extract(net, ds, layer="features.conv2", cache=cache, progress=False)
    assert (cache.hits, cache.misses, len(cache)) == (0, 1, 1)
    Z2, y2 = features.extract(net, ds, layer="features.conv2", cache=cache, progress=False)
    assert (cache.hits, cache.misses) == (1, 1)
    assert torch.equal(Z1, Z2) and torch.equal(y1, y2)
    ref, _ = features.extract(net, ds, layer="features.conv2", progress=False)
    assert torch.equal(Z1, ref)
    out = capsys.readouterr().out
    assert "miss" in out and "hit" in out
    # another layer or pooling is another entry
    features.extract(net, ds, layer="features.conv3", cache=cache, progress=False)
    features.extract(net, ds, layer="features.conv2", pool="max", cache=cache, progress=False)
    assert (cache.hits, cache.misses, len(cache)) == (1, 3, 3)
    assert cache.clear() == 3 and len(cache) == 0


def test_cache_invalidated_by_one_weight_and_one_pixel(images, tmp_path):
    torch.manual_seed(0)
    model = DigitNet().eval()
    x, y = images
    cache = features.FeatureCache(tmp_path)
    Z1, _ = features.extract(model, TensorDataset(x, y), cache=cache, progress=False)
    with torch.no_grad():
        model.features.conv1[0].weight[0, 0, 0, 0] += 1.0
    Z2, _ = features.extract(model, TensorDataset(x, y), cache=cache, progress=False)
    assert (cache.hits, cache.misses) == (0, 2)
    assert not torch.equal(Z1, Z2)
    ref, _ = features.extract(model, x, progress=False)
    np.testing.assert_allclose(Z2.numpy(), ref.numpy(), rtol=1e-5, atol=1e-6)
    x2 = x.clone()
    x2[5, 0, 10, 10] += 0.5
    features.extract(model, TensorDataset(x2, y), cache=cache, progress=False)
    y2 = y.clone()
    y2[0] = 3
    features.extract(model, TensorDataset(x2, y2), cache=cache, progress=False)  # labels count
    assert (cache.hits, cache.misses) == (0, 4)
    features.extract(model, TensorDataset(x2, y2), cache=cache, progress=False)
    assert cache.hits == 1


def test_cache_model_fingerprint_sees_buffers_and_architecture():
    torch.manual_seed(0)
    a = DigitNet()
    fp = features.model_fingerprint(a)
    assert features.model_fingerprint(a) == fp
    a.features.conv1[1].running_mean += 0.1  # a buffer, not a parameter
    assert features.model_fingerprint(a) != fp
    b = nn.Sequential(nn.Upsample(size=64), nn.Conv2d(1, 2, 3))
    c = nn.Sequential(nn.Upsample(size=96), nn.Conv2d(1, 2, 3))
    c.load_state_dict(b.state_dict())  # same weights, different resize: different features
    assert features.model_fingerprint(b) != features.model_fingerprint(c)


def test_cache_corrupt_or_foreign_file_is_recomputed(net, images, tmp_path):
    ds = TensorDataset(*images)
    cache = features.FeatureCache(tmp_path)
    Z, _ = features.extract(net, ds, cache=cache, progress=False)
    (path,) = list(tmp_path.glob("*.pt"))
    path.write_bytes(path.read_bytes()[:100])  # truncated
    with pytest.warns(RuntimeWarning, match="unreadable cache entry"):
        Z2, _ = features.extract(net, ds, cache=cache, progress=False)
    assert cache.misses == 2 and cache.hits == 0 and torch.equal(Z, Z2)
    # a valid file for *another* key copied under this key's name must not be used
    Z3, _ = features.extract(net, ds, layer="features.conv1", cache=cache, progress=False)
    other = next(p for p in tmp_path.glob("*.pt") if p != path)
    path.write_bytes(other.read_bytes())
    with pytest.warns(RuntimeWarning, match="does not hold this key's features"):
        Z4, _ = features.extract(net, ds, cache=cache, progress=False)
    assert Z4.shape == Z.shape and torch.equal(Z4, Z)
    assert cache.hits == 0 and cache.misses == 4
    assert not list(tmp_path.glob(".tmp-*"))  # atomic writes leave no temporaries


def test_cache_shuffled_loader_is_fingerprinted_on_what_it_yields(tmp_path):
    ds = _ImageIsItsIndex()
    cache = features.FeatureCache(tmp_path)
    loader = DataLoader(ds, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(0))
    Z1, y1 = features.extract(_MeanNet(), loader, cache=cache, progress=False)
    Z2, y2 = features.extract(_MeanNet(), loader, cache=cache, progress=False)  # new order
    assert cache.misses == 2  # a different order is different content
    for Z, y in ((Z1, y1), (Z2, y2)):  # and the labels stay paired with their rows
        idx = np.round(Z[:, 0].numpy() * 100).astype(int)
        assert y.tolist() == [i % 3 for i in idx]


def test_cache_save_and_load_roundtrip(tmp_path):
    cache = features.FeatureCache(tmp_path)
    Z, y = torch.arange(6, dtype=torch.float32).reshape(3, 2), torch.tensor([0, 1, 0])
    cache.save("k" * 64, Z, y, what="demo")
    loaded_Z, loaded_y = cache.load("k" * 64)
    assert torch.equal(loaded_Z, Z) and torch.equal(loaded_y, y)
    assert cache.load("other") is None
    assert "entries=1" in repr(cache)


def test_cache_get_or_compute_many_computes_only_the_missing_entries_in_one_call(tmp_path):
    cache = features.FeatureCache(tmp_path)
    y = torch.tensor([0, 1])
    cache.save("b" * 64, torch.ones(2, 3), y)
    calls = []

    def compute(missing):
        calls.append(missing)
        return {n: torch.full((2, 3), float(i)) for i, n in enumerate(missing)}, y

    keys = {"first": "a" * 64, "stored": "b" * 64, "third": "c" * 64}
    Z, labels = cache.get_or_compute_many(keys, compute)
    assert calls == [["first", "third"]] and (cache.hits, cache.misses) == (1, 2)
    assert list(Z) == ["first", "stored", "third"] and torch.equal(labels, y)
    assert torch.equal(Z["stored"], torch.ones(2, 3)) and torch.equal(Z["third"], torch.ones(2, 3))
    again, _ = cache.get_or_compute_many(keys, compute)
    assert len(calls) == 1 and cache.hits == 4
    assert all(torch.equal(again[n], Z[n]) for n in keys)


# ============================================================================ FeatureHook


def test_feature_hook_records_pools_clears_and_is_removed(net, images):
    x = images[0][:6]
    with features.FeatureHook(net, "features.conv2", pool="avg") as hook:
        logits = net(x)
        z = hook.take()
        with pytest.raises(RuntimeError, match="not called"):
            hook.take()  # take() cleared it
    assert torch.allclose(z, manual(net, x, "features.conv2").mean(dim=(2, 3)), atol=1e-6)
    assert torch.allclose(logits, net(x))  # the hook does not change the forward pass
    net(x)  # after exit the hook is gone: nothing recorded
    assert hook.output is None and not net.features.conv2._forward_hooks
    with features.FeatureHook(net, "features.conv3", pool=None) as raw:
        net(x)
        assert raw.take().shape == (6, 64, 4, 4)


def test_feature_hook_keeps_gradients_and_rejects_unknown_layers(net, images):
    x = images[0][:4]
    with features.FeatureHook(net, "features.fc") as hook:
        net(x)
        hook.take().pow(2).sum().backward()
    assert net.features.conv1[0].weight.grad is not None
    net.zero_grad(set_to_none=True)
    with pytest.raises(ValueError, match="features.conv3"):
        features.FeatureHook(net, "features.conv9")
    with pytest.raises(ValueError, match="pool"):
        features.FeatureHook(net, "head", pool="mean")
