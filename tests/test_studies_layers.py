"""tlearn.studies.layers: the layer sweep equals per-layer extraction + probes; the best
layer is chosen by cross-validation on the training labels only."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from tlearn import features, probes
from tlearn.models import DigitNet
from tlearn.studies import layers

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def net() -> DigitNet:
    torch.manual_seed(0)
    model = DigitNet()
    model.train()
    with torch.no_grad():
        model(torch.rand(64, 1, 32, 32))
    return model.eval()


def _blobs_images():
    """Images whose class is a bright quadrant: learnable from random conv features."""
    g = torch.Generator().manual_seed(2)
    y = torch.arange(100) % 4
    x = torch.rand(100, 1, 32, 32, generator=g) * 0.3
    for i, c in enumerate(y.tolist()):
        r, q = divmod(c, 2)
        x[i, 0, r * 16 : r * 16 + 16, q * 16 : q * 16 + 16] += 0.7
    return x, y


def test_layer_sweep_equals_per_layer_probes(net):
    x, y = _blobs_images()
    train, test = TensorDataset(x[:60], y[:60]), TensorDataset(x[60:], y[60:])
    rows = layers.layer_sweep(net, train, test, progress=False)
    assert [r["layer"] for r in rows] == [
        "features.conv1",
        "features.conv2",
        "features.conv3",
        "features.fc",
        "head",
    ]
    assert [r["dim"] for r in rows] == [16, 32, 64, 128, 10]
    for r in rows:
        a, ya = features.extract(net, train, layer=r["layer"], progress=False)
        b, yb = features.extract(net, test, layer=r["layer"], progress=False)
        assert r["accuracy"] == pytest.approx(probes.linear_probe(a, ya, b, yb)["accuracy"])
    rows = layers.layer_sweep(
        net, train, test, layers=["features.conv2"], probe="knn", k=3, progress=False
    )
    assert len(rows) == 1 and 0 <= rows[0]["accuracy"] <= 1


def test_layer_sweep_cross_validation_uses_train_only(net):
    from sklearn.model_selection import StratifiedKFold

    x, y = _blobs_images()
    train, test = TensorDataset(x[:60], y[:60]), TensorDataset(x[60:], y[60:])

    def sweep(test_set):
        return layers.layer_sweep(
            net,
            train,
            test_set,
            layers=["features.conv1", "features.conv3"],
            cv=3,
            unlabeled=TensorDataset(x),
            progress=False,
        )

    rows = sweep(test)
    Z, yt = features.extract(net, train, layer="features.conv1", progress=False)
    U, _ = features.extract(net, x, layer="features.conv1", progress=False)
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=0).split(Z.numpy(), yt.numpy())
    expected = np.mean(
        [probes.linear_probe(Z[a], yt[a], Z[b], yt[b], unlabeled=U)["accuracy"] for a, b in folds]
    )
    assert rows[0]["cv_accuracy"] == pytest.approx(expected)
    # the test set does not influence cv_accuracy
    other = TensorDataset(torch.rand(10, 1, 32, 32), torch.arange(10) % 4)
    rows2 = sweep(other)
    assert [r["cv_accuracy"] for r in rows2] == [r["cv_accuracy"] for r in rows]
    best = layers.best_layer(rows)
    assert best["cv_accuracy"] == max(r["cv_accuracy"] for r in rows)
    with pytest.raises(ValueError, match="cv_accuracy"):
        layers.best_layer([{"layer": "a", "accuracy": 0.5}])
    with pytest.raises(ValueError, match="per class"):
        layers.layer_sweep(
            net, TensorDataset(x[:8], y[:8]), test, layers=["head"], cv=3, progress=False
        )
