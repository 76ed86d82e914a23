"""tlearn.probes: linear, k-NN and few-shot probes, checked against independent computations
(a numpy k-NN, scikit-learn directly, numpy standardisation)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tlearn import data, probes
from tlearn.data.base import few_shot_indices


def _blobs(n_per_class=30, k=3, d=10, sep=10.0, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, sep, (k, d))
    y = np.repeat(np.arange(k), n_per_class)
    return centres[y] + rng.normal(0, 1, (len(y), d)), y


def test_probes_separable_and_shuffled_labels():
    Z, y = _blobs(seed=0)
    Zt, yt = _blobs(seed=0)  # same centres, new noise below
    Zt = Zt + np.random.default_rng(9).normal(0, 1, Zt.shape) * 0.5
    assert probes.linear_probe(Z, y, Zt, yt)["accuracy"] == 1.0
    assert probes.knn_probe(torch.tensor(Z), torch.tensor(y), Zt, yt, k=5)["accuracy"] == 1.0
    # no information: random features and labels → chance (1/4), within a generous band
    rng = np.random.default_rng(1)
    Zr, yr = rng.normal(size=(400, 20)), rng.integers(0, 4, 400)
    Zs, ys = rng.normal(size=(2000, 20)), rng.integers(0, 4, 2000)
    acc = probes.linear_probe(Zr, yr, Zs, ys)["accuracy"]
    assert abs(acc - 0.25) < 0.05, acc
    acc = probes.knn_probe(Zr, yr, Zs, ys)["accuracy"]
    assert abs(acc - 0.25) < 0.05, acc


def test_linear_probe_standardises_and_is_deterministic():
    Z, y = _blobs(sep=1.0, seed=3)
    Zt, yt = _blobs(sep=1.0, seed=3)
    Zt = Zt + np.random.default_rng(4).normal(0, 1, Zt.shape)
    a = probes.linear_probe(Z, y, Zt, yt)
    b = probes.linear_probe(Z, y, Zt, yt)
    assert a["accuracy"] == b["accuracy"]
    np.testing.assert_array_equal(a["classifier"].predict(Zt), b["classifier"].predict(Zt))
    scale = np.ones(Z.shape[1])
    scale[0] = 1000.0  # one feature in other units: standardising removes the difference
    c = probes.linear_probe(Z * scale, y, Zt * scale, yt)
    np.testing.assert_array_equal(a["classifier"].predict(Zt), c["classifier"].predict(Zt * scale))
    assert 0.0 <= a["train_accuracy"] <= 1.0


def test_knn_probe_matches_numpy_knn():
    rng = np.random.default_rng(5)
    Z, y = rng.normal(size=(60, 6)), rng.integers(0, 3, 60)
    Zt, yt = rng.normal(size=(50, 6)), rng.integers(0, 3, 50)
    for k in (1, 5):
        n = Z / np.linalg.norm(Z, axis=1, keepdims=True)
        nt = Zt / np.linalg.norm(Zt, axis=1, keepdims=True)
        dist = 1 - nt @ n.T
        pred = []
        for row in dist:
            votes = np.bincount(y[np.argsort(row, kind="stable")[:k]], minlength=3)
            pred.append(int(np.argmax(votes)))  # ties → smallest label, like scikit-learn
        expected = float(np.mean(np.array(pred) == yt))
        assert probes.knn_probe(Z, y, Zt, yt, k=k)["accuracy"] == pytest.approx(expected)


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda Z, y: (Z[:-1], y), "rows"),
        (lambda Z, y: (np.where(np.arange(Z.size).reshape(Z.shape) == 3, np.nan, Z), y), "NaN"),
        (lambda Z, y: (np.where(np.arange(Z.size).reshape(Z.shape) == 3, np.inf, Z), y), "Inf"),
        (lambda Z, y: (Z, np.zeros_like(y)), "single class"),
        (lambda Z, y: (Z[:, :, None], y), "N×D"),
        (lambda Z, y: (Z, y + 0.5), "integer"),
    ],
)
def test_probe_bad_input(mutate, match):
    Z, y = _blobs()
    Zb, yb = mutate(Z, y)
    for probe in (probes.linear_probe, probes.knn_probe):
        with pytest.raises(ValueError, match=match):
            probe(Zb, yb, Z, y)
    with pytest.raises(ValueError, match="features per row"):
        probes.linear_probe(Z, y, Z[:, :3], y)
    with pytest.raises(ValueError, match="k="):
        probes.knn_probe(Z[:4], y[[0, 1, 30, 31]], Z, y, k=5)


def test_few_shot_probe_uses_data_few_shot_rows():
    g = torch.Generator().manual_seed(0)
    ds = data.DigitDataset(torch.rand(60, 1, 4, 4, generator=g), torch.arange(60) % 10)
    for k, seed in ((1, 0), (3, 7)):
        idx = few_shot_indices(ds.labels.numpy(), k, seed)
        assert torch.equal(ds.images[idx], data.few_shot(ds, k, seed=seed).images)
    Z, y = _blobs(n_per_class=12, k=4)
    r = probes.few_shot_probe(Z, y, Z, y, per_class=(1, 3, 10), seeds=(0, 1))
    assert r["per_class"] == [1, 3, 10] and r["seeds"] == [0, 1]
    acc = np.array(r["accuracy"])
    assert acc.shape == (2, 3) and acc[:, -1].min() == 1.0
    with pytest.raises(ValueError, match="fewer than per_class"):
        probes.few_shot_probe(Z, y, Z, y, per_class=(13,))
    with pytest.raises(ValueError, match="probe"):
        probes.few_shot_probe(Z, y, Z, y, probe="svm")


def test_linear_probe_unlabeled_statistics_match_manual_standardisation():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(6)
    pool = rng.normal(3.0, 2.0, size=(200, 8))
    y_pool = (pool[:, 0] > 3).astype(int) + (pool[:, 1] > 3)
    idx = np.r_[
        np.flatnonzero(y_pool == 0)[:3],
        np.flatnonzero(y_pool == 1)[:3],
        np.flatnonzero(y_pool == 2)[:3],
    ]
    r = probes.linear_probe(pool[idx], y_pool[idx], pool, y_pool, unlabeled=pool)
    mu, sd = pool.mean(0), pool.std(0)  # independent standardisation by numpy
    ref = LogisticRegression(C=1.0, max_iter=1000).fit((pool[idx] - mu) / sd, y_pool[idx])
    np.testing.assert_array_equal(r["classifier"].predict(pool), ref.predict((pool - mu) / sd))
    assert r["accuracy"] == pytest.approx(float((ref.predict((pool - mu) / sd) == y_pool).mean()))
    with pytest.raises(ValueError, match="unlabeled"):
        probes.linear_probe(pool[idx], y_pool[idx], pool, y_pool, unlabeled=pool[:, :3])
    # few_shot_probe standardises with the whole pool by default, and can be told not to
    a = probes.few_shot_probe(pool, y_pool, pool, y_pool, per_class=(3,), seeds=(0,))
    b = probes.few_shot_probe(
        pool, y_pool, pool, y_pool, per_class=(3,), seeds=(0,), pool_statistics=False
    )
    sel = few_shot_indices(y_pool, 3, 0)
    assert (
        a["accuracy"][0][0]
        == probes.linear_probe(pool[sel], y_pool[sel], pool, y_pool, unlabeled=pool)["accuracy"]
    )
    assert (
        b["accuracy"][0][0] == probes.linear_probe(pool[sel], y_pool[sel], pool, y_pool)["accuracy"]
    )
