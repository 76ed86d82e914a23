"""Regularised fine-tuning: freeze.l2_sp_penalty (L2-SP) and train.fine_tune (LP-FT)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from tlearn import freeze, models, train
from tlearn.data import DigitDataset

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is fastest


def _digits(n: int = 64, seed: int = 0) -> DigitDataset:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 10
    x = torch.rand(n, 1, 32, 32, generator=g) * 0.3
    for i, c in enumerate(labels.tolist()):
        x[i, 0, 3 * c : 3 * c + 4, :] += 0.7  # a bright band whose height says the class
    return DigitDataset(x, labels)


def _pretrained() -> models.DigitNet:
    torch.manual_seed(0)
    net = models.DigitNet()
    train.fit(net, _digits(), epochs=1, batch_size=32, progress=False, device="cpu")
    models.replace_head(net, 10)
    return net


def _body_state(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in net.state_dict().items() if not k.startswith("head.")}


# --------------------------------------------------------------------------- L2-SP
def test_l2_sp_is_zero_at_the_start_and_beta_half_the_head_norm():
    net = _pretrained()
    start = _body_state(net)
    assert l2(net, start, 1.0, 0.0) == 0.0
    head_norm = net.head.weight.pow(2).sum() + net.head.bias.pow(2).sum()
    torch.testing.assert_close(l2(net, start, 1.0, 0.3), 0.15 * head_norm)


def l2(net, start, alpha, beta):
    return freeze.l2_sp_penalty(net, start, alpha, beta)


def test_l2_sp_equals_a_hand_computation_and_grows_as_weights_move():
    net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 3))
    start = {"0.weight": torch.zeros(2, 2), "0.bias": torch.ones(2), "1.weight": torch.zeros(2, 2)}
    with torch.no_grad():
        net[0].weight.fill_(1.0)  # ‖w − 0‖² = 4
        net[0].bias.fill_(3.0)  # ‖b − 1‖² = 8
        net[1].weight.fill_(2.0)  # shape (3, 2) ≠ start's (2, 2): a new layer, ‖w‖² = 24
        net[1].bias.fill_(-1.0)  # not in start: ‖b‖² = 3
    alpha, beta = 0.5, 0.1
    expected = alpha / 2 * (4 + 8) + beta / 2 * (24 + 3)
    assert l2(net, start, alpha, beta).item() == pytest.approx(expected)
    values = []
    for step in (0.0, 0.1, 0.5):
        moved = copy.deepcopy(net)
        with torch.no_grad():
            moved[0].weight.add_(step)
        values.append(l2(moved, start, alpha, 0.0).item())
    assert values[0] < values[1] < values[2]


def test_l2_sp_gradient_pulls_towards_the_start():
    net = nn.Linear(3, 1)
    start = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        net.weight.add_(torch.tensor([[1.0, -2.0, 0.5]]))
    l2(net, start, 2.0, 0.0).backward()
    # ∂/∂w α/2‖w − w⁰‖² = α (w − w⁰)
    torch.testing.assert_close(net.weight.grad, 2.0 * torch.tensor([[1.0, -2.0, 0.5]]))
    with pytest.raises(ValueError, match="alpha"):
        l2(net, start, -1.0, 0.0)
    with pytest.raises(ValueError, match="state dict"):
        l2(net, [1, 2], 1.0, 0.0)


# --------------------------------------------------------------------------- fine_tune
def test_stage_one_moves_only_the_head_and_stage_two_moves_the_body():
    net = _pretrained()
    body, head = _body_state(net), net.head.weight.clone()
    hist = train.fine_tune(
        net, _digits(seed=1), head_epochs=1, epochs=0, batch_size=16, progress=False,
        device="cpu", seed=0, reestimate_bn=False,
    )  # fmt: skip
    after = net.state_dict()
    assert all(torch.equal(after[k], v) for k, v in body.items())  # BN statistics too
    assert not torch.equal(net.head.weight, head)
    assert hist["stage"] == ["head"]
    assert not any(p.requires_grad for n, p in net.named_parameters() if not n.startswith("head"))

    net = _pretrained()
    body = _body_state(net)
    hist = train.fine_tune(
        net, _digits(seed=1), head_epochs=1, epochs=2, batch_size=16, progress=False,
        device="cpu", seed=0,
    )  # fmt: skip
    assert hist["stage"] == ["head", "all", "all"] and hist["epoch"] == [1, 2, 3]
    assert not torch.equal(net.features.conv1[0].weight, body["features.conv1.0.weight"])
    assert all(p.requires_grad for p in net.parameters()) and not net.training


def test_stage_two_learning_rates_are_discriminative():
    seen = []

    class Record:
        def on_fit_start(self, state):
            seen.append([(g.get("name"), g["lr"]) for g in state.optimizer.param_groups])

    net = _pretrained()
    train.fine_tune(
        net, _digits(), head_epochs=1, epochs=1, lr=1e-3, head_lr_mult=10.0, batch_size=32,
        progress=False, device="cpu", callbacks=[Record()],
    )  # fmt: skip
    assert seen[0] == [("head", pytest.approx(1e-2))]  # stage 1: the head alone
    names = [name for name, _ in seen[1]]
    rates = [lr for _, lr in seen[1]]
    assert names == [name for name, _ in models.blocks(net)]  # one group per block, in order
    assert rates == sorted(rates) and rates[0] == pytest.approx(1e-4)
    assert rates[-1] == pytest.approx(1e-2)
    ratios = [b / a for a, b in zip(rates, rates[1:], strict=False)]
    assert ratios == pytest.approx([ratios[0]] * len(ratios))  # geometric spacing


def test_fine_tune_bn_choices_and_l2_sp():
    net = _pretrained()
    mean0 = net.features.conv1[1].running_mean.clone()
    train.fine_tune(net, _digits(seed=2), head_epochs=0, epochs=1, bn="frozen", batch_size=16,
                    progress=False, device="cpu")  # fmt: skip
    assert isinstance(net.features.conv1[1], freeze.FrozenBatchNorm)
    torch.testing.assert_close(net.features.conv1[1].running_mean, mean0)

    net = _pretrained()
    start = _body_state(net)
    hist = train.fine_tune(net, _digits(seed=2), head_epochs=0, epochs=2, l2_sp=1.0,
                           batch_size=16, progress=False, device="cpu", seed=0)  # fmt: skip
    assert hist["l2_sp"][-1] > 0  # the body moved, and the penalty saw it
    strong = _pretrained()
    train.fine_tune(strong, _digits(seed=2), head_epochs=0, epochs=2, l2_sp=1e4, batch_size=16,
                    progress=False, device="cpu", seed=0)  # fmt: skip
    drift = [freeze.l2_sp_penalty(m, start, 1.0, 0.0).item() for m in (net, strong)]
    assert drift[1] < drift[0]  # a stronger pull leaves the body nearer its start

    for bad in ({"epochs": 0, "head_epochs": 0}, {"bn": "live"}, {"l2_sp": -1.0}):
        with pytest.raises(ValueError):
            train.fine_tune(_pretrained(), _digits(), progress=False, device="cpu", **bad)
