"""Collapse detection: flags one-class predictions and non-finite losses, spares healthy runs."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from tlearn.adapt import diagnostics
from tlearn.adapt.diagnostics import CollapseWarning, collapsed, diagnose, majority_share
from tlearn.adapt.trainer import fit_adapt
from tlearn.data import DigitDataset


def _predictions(counts: dict[int, int]) -> torch.Tensor:
    return torch.cat([torch.full((n,), c) for c, n in counts.items()])


def test_majority_share_counts_the_most_predicted_class():
    assert majority_share(_predictions({0: 10, 4: 30, 7: 60})) == (7, 0.6)
    logits = torch.zeros(5, 3)
    logits[:, 2] = 1.0
    logits[0, 0] = 2.0
    assert majority_share(logits) == (2, 0.8)  # logits (n, C) count by their argmax
    assert majority_share(np.array([1, 1, 2])) == (1, pytest.approx(2 / 3))


def test_a_sink_class_of_a_healthy_weak_model_is_not_a_collapse():
    # 40 % of the predictions in one sink class, the rest spread: a poor model, not a collapse
    sink = _predictions({3: 400, **{c: 67 for c in range(10) if c != 3}})
    assert majority_share(sink)[1] == pytest.approx(400 / 1003)
    assert diagnose(sink) is None and not collapsed(sink, num_classes=10)


def test_one_class_taking_nearly_every_prediction_is_flagged_with_its_share():
    almost = _predictions({5: 1810, 0: 100, 1: 97})  # 90.2 %
    assert collapsed(almost, num_classes=10)
    assert diagnose(almost) == "collapsed: class 5 takes 90% of 2007 target predictions"
    below = _predictions({5: 1790, 0: 110, 1: 107})  # 89.2 %
    assert not collapsed(below, num_classes=10)
    assert collapsed(below, share=0.85)


def test_a_non_finite_loss_is_flagged_even_when_predictions_look_healthy():
    healthy = torch.arange(100) % 10
    assert diagnose(healthy, losses=[2.3, 1.1]) is None
    assert diagnose(healthy, losses=[2.3, math.nan]) == "diverged: the loss became nan (record 2)"
    assert collapsed(healthy, losses=[math.inf])


def test_bad_inputs_say_what_was_expected():
    with pytest.raises(ValueError, match="shape"):
        diagnose(torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="non-negative integers"):
        diagnose(torch.tensor([0.5, 1.0]))
    with pytest.raises(ValueError, match="share"):
        diagnose(torch.tensor([0, 1]), share=0.0)
    with pytest.raises(ValueError, match="chance"):
        collapsed(torch.tensor([0, 1]), num_classes=2, share=0.5)
    with pytest.raises(ValueError, match="not below 3"):
        collapsed(torch.tensor([0, 3]), num_classes=3)


# --------------------------------------------------------------------------- in fit_adapt
class Fixed(nn.Module):
    """features = a frozen random projection; head = a linear layer, optionally with a
    bias so large that every image gets class ``forced``."""

    def __init__(self, forced: int | None = None):
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(64, 8))
        self.head = nn.Linear(8, 4)
        with torch.no_grad():
            self.head.bias.zero_()
            if forced is not None:
                self.head.bias[forced] = 1e3

    def forward(self, x):
        return self.head(self.features(x))


def _domain(n: int, seed: int) -> DigitDataset:
    g = torch.Generator().manual_seed(seed)
    return DigitDataset(
        torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 4, (n,), generator=g)
    )


@pytest.mark.parametrize("method", ["mmd", "none"])
def test_fit_adapt_records_and_warns_when_the_target_collapses(method):
    net = Fixed(forced=2)
    with pytest.warns(CollapseWarning, match=r"fit_adapt\[.*class 2 takes 100% of 48"):
        hist = fit_adapt(
            net, _domain(32, 1), _domain(48, 2), method, epochs=2, lr=1e-9, batch_size=8,
            device="cpu", progress=False, seed=0,
        )  # fmt: skip
    assert hist.last["collapsed"] is True
    if method != "none":  # the shares of the predictions the training steps made
        assert hist["target_majority_share"] == [1.0, 1.0]


def test_fit_adapt_does_not_flag_a_healthy_run():
    with warnings.catch_warnings():
        warnings.simplefilter("error", CollapseWarning)
        hist = fit_adapt(
            Fixed(), _domain(32, 1), _domain(48, 2), "mmd", epochs=2, lr=1e-9, batch_size=8,
            device="cpu", progress=False, seed=0,
        )  # fmt: skip
    assert hist.last["collapsed"] is False
    assert all(s < diagnostics.COLLAPSE_SHARE for s in hist["target_majority_share"])


# --------------------------------------------------------------------------- the MMD collapse
@pytest.mark.slow  # ≈ 17 s of CPU time (one thread)
def test_a_detached_mmd_bandwidth_collapses_the_reproduce_lenet_and_the_default_does_not():
    """The development case of the MNIST→USPS collapse (benchmarks/README.md, "MMD collapse"):
    the reproduce protocol's LeNet (no BatchNorm) on rendered digits → their UCI-like
    degraded copies. With γ₀ detached the features shrink to zero before the classifier
    learns anything; with γ₀ differentiated (the default) the same run trains."""
    import tlearn.studies.domains  # noqa: F401  (registers the development targets)
    from tlearn import data
    from tlearn.reproduce import LeNet

    source = data.load_domain("synth", "train", size=256, seed=0, channels=1)
    target = data.load_domain("synth_degraded", "train", size=256, seed=0, channels=1)
    runs = {}
    for detach in (True, False):
        torch.manual_seed(0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", CollapseWarning)
            hist = fit_adapt(
                LeNet(), source, target, "mmd", epochs=12, batch_size=64, seed=0,
                device="cpu", progress=False, detach_bandwidth=detach,
            )  # fmt: skip
        runs[detach] = hist, [w for w in caught if issubclass(w.category, CollapseWarning)]
    (stuck, warned), (trained, quiet) = runs[True], runs[False]
    assert stuck.last["collapsed"] and len(warned) == 1
    assert stuck.last["class_loss"] > 2.2  # ≈ ln 10: the source was never learned either
    assert not trained.last["collapsed"] and not quiet
    assert trained.last["class_loss"] < 2.0
