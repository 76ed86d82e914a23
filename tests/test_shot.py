"""tlearn.adapt.shot (exported from tlearn.adapt): pseudo-labels, the information-maximisation loss, centroid labels, SHOT."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from tlearn import adapt, data, models, train

torch.set_num_threads(1)


def test_pseudo_labels_keep_rows_at_or_above_the_threshold():
    probs = torch.tensor([[0.9, 0.1], [0.3, 0.7], [0.5, 0.5], [0.0, 1.0]])
    labels, mask = adapt.pseudo_labels(probs, threshold=0.7)
    assert labels.tolist() == [0, 1, 0, 1] and mask.tolist() == [True, True, False, True]
    assert adapt.pseudo_labels(probs, 0.0)[1].all()
    assert adapt.pseudo_labels(probs, 1.0)[1].tolist() == [False, False, False, True]
    for bad in (-0.1, 1.5, True):
        with pytest.raises(ValueError, match="threshold"):
            adapt.pseudo_labels(probs, bad)
    with pytest.raises(ValueError, match="NaN"):
        adapt.pseudo_labels(torch.tensor([[math.nan, 1.0]]))


def _im_numpy(logits: np.ndarray) -> float:
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    mean_entropy = -(p * np.log(p)).sum(1).mean()
    p_bar = p.mean(0)
    return float(mean_entropy + (p_bar * np.log(p_bar)).sum())


@pytest.mark.parametrize("seed", range(5))
def test_information_maximization_loss_matches_numpy(seed):
    logits = np.random.default_rng(seed).normal(0, 3, (17, 6))
    got = adapt.information_maximization_loss(torch.tensor(logits, dtype=torch.float64))
    assert got.item() == pytest.approx(_im_numpy(logits), abs=1e-6)


def test_information_maximization_prefers_confident_and_balanced_predictions():
    """−log C for one-hot predictions spread over the classes; 0 for one class everywhere
    (confident but collapsed) and 0 for uniform predictions (balanced but unsure). A wrong
    sign on either term makes one of these two beat the confident, balanced predictions."""
    c = 4
    balanced = 20 * torch.eye(c).repeat(3, 1)
    collapsed = 20 * torch.eye(c)[[0] * 12]
    uniform = torch.zeros(12, c)
    im = adapt.information_maximization_loss
    assert im(balanced).item() == pytest.approx(-math.log(c), abs=1e-6)
    assert im(collapsed).item() == pytest.approx(0.0, abs=1e-6)
    assert im(uniform).item() == pytest.approx(0.0, abs=1e-6)


def test_centroid_pseudo_labels_recover_separable_blobs_from_noisy_predictions():
    """Three blobs; the classifier is right on only 60% of the points, but its errors are
    spread out, so the prediction-weighted centroids still sit in the blobs."""
    rng = np.random.default_rng(0)
    centres = 4 * np.eye(3, 5)  # three directions in 5-d
    truth = np.repeat(np.arange(3), 40)
    z = torch.tensor(centres[truth] + rng.normal(0, 0.5, (120, 5)) + 1.0)
    predicted = np.where(rng.random(120) < 0.6, truth, rng.integers(0, 3, 120))
    probs = torch.tensor(np.eye(3)[predicted] * 0.6 + 0.4 / 3)
    assert (probs.argmax(1).numpy() == truth).mean() < 0.8
    labels = adapt.centroid_pseudo_labels(z, probs)
    assert (labels.numpy() == truth).all()
    with pytest.raises(ValueError, match="rows"):
        adapt.centroid_pseudo_labels(z[:5], probs)


@pytest.fixture(scope="module")
def source_and_target():
    torch.manual_seed(0)
    net = models.DigitNet()
    src = data.load_domain("synth", split="train", size=600, seed=0)
    train.fit(net, src, epochs=2, batch_size=64, progress=False, device="cpu", seed=0)
    tgt = data.load_domain("uci", split="train", size=256, seed=0)
    return net.eval(), tgt


def test_shot_trains_the_features_and_leaves_the_head_untouched(source_and_target):
    source, target = source_and_target
    net = copy.deepcopy(source)
    # The target's labels are garbage: SHOT must never read them.
    unlabelled = TensorDataset(target.images, torch.full((len(target),), -7))
    hist = adapt.shot(
        net, unlabelled, epochs=3, batch_size=64, seed=0, progress=False, device="cpu"
    )
    assert torch.equal(net.head.weight, source.head.weight)
    assert torch.equal(net.head.bias, source.head.bias)
    assert all(p.requires_grad for p in net.parameters())  # the head is trainable again
    assert not torch.equal(net.features.conv1[0].weight, source.features.conv1[0].weight)
    assert hist["train_loss"][-1] < hist["train_loss"][0]
    assert hist["im_loss"][-1] < hist["im_loss"][0]
    assert {"im_loss", "pseudo_label_loss"} <= set(hist.keys()) and not net.training


def test_shot_freezes_the_last_linear_of_any_model():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Flatten(), nn.Linear(16, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)
    )
    head = net[4].weight.clone()
    adapt.shot(net, torch.rand(40, 1, 4, 4), epochs=2, batch_size=8, progress=False, device="cpu")
    assert torch.equal(net[4].weight, head)
    with pytest.raises(ValueError, match="beta"):
        adapt.shot(net, torch.rand(4, 16), epochs=1, beta=-1.0, progress=False, device="cpu")
    with pytest.raises(ValueError, match="nn.Linear"):
        adapt.shot(nn.Sequential(nn.Flatten()), torch.rand(4, 16), epochs=1, progress=False)
