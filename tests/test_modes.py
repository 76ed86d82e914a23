"""Modes are kept: a call that runs a model in eval mode gives each module its own mode back.

The usual PyTorch way to keep a BatchNorm's statistics fixed while training is to put that one
layer in eval mode. ``model.train(was)`` would undo it (it sets every submodule to one mode),
so the next training step would move the statistics the user froze. Every call below runs on a
DigitNet in training with two BatchNorm2d layers in eval mode by hand and one BatchNorm1d
frozen with ``freeze.freeze`` (a ``FrozenBatchNorm``).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tlearn import adapt, bn, features, runtime, train
from tlearn.data.base import DigitDataset
from tlearn.freeze import FrozenBatchNorm, freeze
from tlearn.models import DigitNet


def _mixed_net() -> nn.Module:
    torch.manual_seed(0)
    net = DigitNet().train()
    net.features.conv1[1].eval()  # BatchNorm statistics kept fixed by hand
    net.features.conv2[1].eval()
    freeze(net, "features.fc.2")  # and one frozen the tlearn way
    assert isinstance(net.features.fc[2], FrozenBatchNorm)
    return net


def _modes(model: nn.Module) -> dict[str, bool]:
    return {name: m.training for name, m in model.named_modules()}


def _data(n: int = 24, seed: int = 0) -> DigitDataset:
    g = torch.Generator().manual_seed(seed)
    return DigitDataset(
        torch.rand(n, 1, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)
    )


def test_the_mixed_model_is_really_mixed():
    modes = _modes(_mixed_net())
    assert modes[""] and modes["features.conv3.1"]  # so a restore to one mode would show
    assert not modes["features.conv1.1"] and not modes["features.conv2.1"]


def test_eval_mode_puts_everything_in_eval_and_gives_each_module_its_mode_back():
    net = _mixed_net()
    before = _modes(net)
    with runtime.eval_mode(net) as inside:
        assert inside is net
        assert not any(_modes(net).values())
    assert _modes(net) == before


def test_eval_mode_restores_after_an_exception():
    net = _mixed_net()
    before = _modes(net)
    with pytest.raises(RuntimeError), runtime.eval_mode(net):
        raise RuntimeError("boom")
    assert _modes(net) == before


@pytest.mark.parametrize(
    "call",
    [
        lambda net: train.evaluate(net, _data(), device="cpu"),
        lambda net: train.predict(net, _data(), device="cpu"),
        lambda net: train.predict(net, _data(), device="cpu", return_logits=True),
        lambda net: features.extract(net, _data(), device="cpu", progress=False),
        lambda net: features.layers(net),
        lambda net: bn.estimate_bn_statistics(net, _data(), device="cpu"),
    ],
    ids=["evaluate", "predict", "predict_logits", "extract", "layers", "estimate_bn_statistics"],
)
def test_calls_that_run_in_eval_mode_leave_every_module_as_it_was(call):
    net = _mixed_net()
    before = _modes(net)
    call(net)
    assert _modes(net) == before


def test_evaluate_keeps_the_hand_frozen_statistics_frozen_in_the_next_training_step():
    net = _mixed_net()
    frozen = net.features.conv1[1].running_mean.clone()
    train.evaluate(net, _data(), device="cpu")
    net(torch.rand(4, 1, 32, 32))  # a training step's forward pass
    assert torch.equal(net.features.conv1[1].running_mean, frozen)


def test_adabn_returns_the_model_in_eval_mode_with_frozen_layers_still_frozen():
    """AdaBN's contract: the adapted model comes back ready for the target, in eval mode."""
    net = _mixed_net()
    bn.adabn(net, _data(), device="cpu", progress=False)
    assert not any(_modes(net).values())
    assert isinstance(net.features.fc[2], FrozenBatchNorm) and net.features.fc[2].mode == "frozen"


class _ModesAtStart:
    """A callback that records every module's mode when ``fit`` starts (before epoch 1)."""

    def __init__(self, model: nn.Module):
        self.model, self.modes = model, None

    def on_fit_start(self, state) -> None:
        self.modes = _modes(self.model)


class _MeanGap(nn.Module):
    """An alignment module of the user's: match the feature means."""

    def forward(self, zs: torch.Tensor, zt: torch.Tensor) -> torch.Tensor:
        return (zs.mean(0) - zt.mean(0)).pow(2).sum()


@pytest.mark.parametrize("method", ["coral", "mean_gap"])
def test_fit_adapt_keeps_modes_until_training_and_returns_the_model_in_eval_mode(method):
    """What fit_adapt sets: every module in train mode for each epoch (``train.fit``), every
    module in eval mode on return. What it does not own is kept: the modes up to the first
    epoch (its probe pass and fit's input check run in eval mode and restore them), and the
    frozen BatchNorm's fixed statistics."""
    net = _mixed_net()
    before = _modes(net)
    frozen_stats = net.features.fc[2].running_mean.clone()
    probe = _ModesAtStart(net)
    adapt.fit_adapt(
        net, _data(32), _data(32, seed=1).images, _MeanGap() if method == "mean_gap" else method,
        epochs=1, batch_size=16, seed=0, callbacks=[probe], device="cpu", progress=False,
    )  # fmt: skip
    assert probe.modes == before
    assert not any(_modes(net).values())
    assert torch.equal(net.features.fc[2].running_mean, frozen_stats)
