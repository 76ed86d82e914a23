"""Tests for tlearn.freeze: frozen means *bit-identical*, whatever the optimizer or loop does."""

from __future__ import annotations

import copy
import math
from collections import OrderedDict
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from tlearn import models
from tlearn.freeze import (
    FrozenBatchNorm,
    GradualUnfreezing,
    count_parameters,
    discriminative_groups,
    freeze,
    freeze_to,
    param_groups,
    trainable_parameters,
    trainable_summary,
    unfreeze,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is fastest

BLOCKS = ["features.conv1", "features.conv2", "features.conv3", "features.fc", "head"]


def _net(seed: int = 0) -> models.DigitNet:
    torch.manual_seed(seed)
    return models.DigitNet(num_classes=10)


def _batch(n: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)


def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _assert_identical(before: dict, module: nn.Module) -> None:
    after = module.state_dict()
    assert before.keys() == after.keys()
    for k, v in before.items():
        assert torch.equal(v, after[k]), f"{k} changed although frozen"


def _changed(before: dict, module: nn.Module) -> bool:
    after = module.state_dict()
    return any(not torch.equal(v, after[k]) for k, v in before.items() if v.is_floating_point())


def _user_loop(net: nn.Module, opt: torch.optim.Optimizer, steps: int = 4) -> None:
    """A user's own loop: model.train() every step, optimizer over ALL parameters."""
    loss_fn = nn.CrossEntropyLoss()
    for i in range(steps):
        net.train()
        x, y = _batch(seed=100 + i)
        opt.zero_grad()
        loss_fn(net(x), y).backward()
        opt.step()


OPTIMIZERS = {
    "sgd_momentum_wd": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-2),
    "adam": lambda ps: torch.optim.Adam(ps, lr=1e-2),
    "adamw": lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=1e-1),
}


# --- frozen parameters and BatchNorm statistics never move ------------------------------


@pytest.mark.parametrize("make_opt", OPTIMIZERS.values(), ids=OPTIMIZERS.keys())
def test_user_loop_with_stale_optimizer_state_leaves_frozen_bits_identical(make_opt):
    net = _net()
    opt = make_opt(net.parameters())  # over ALL parameters, built before freezing
    _user_loop(net, opt, steps=2)  # momentum / Adam moments and .grad now exist everywhere
    freeze(net, "features")
    assert all(p.grad is None for p in net.features.parameters()), "freeze must clear .grad"
    features, head = _snapshot(net.features), _snapshot(net.head)
    _user_loop(net, opt, steps=4)
    _assert_identical(features, net.features)  # weights AND running_mean/var/num_batches
    assert _changed(head, net.head)


@pytest.mark.parametrize("make_opt", OPTIMIZERS.values(), ids=OPTIMIZERS.keys())
def test_user_loop_optimizer_built_after_freezing(make_opt):
    net = freeze(_net(), "features.conv*")
    opt = make_opt(net.parameters())
    before = _snapshot(net.features)
    _user_loop(net, opt)
    for name in ("conv1", "conv2", "conv3"):
        block = getattr(net.features, name)
        _assert_identical(
            {k.split(".", 1)[1]: v for k, v in before.items() if k.startswith(name + ".")}, block
        )
    fc_before = {k.split(".", 1)[1]: v for k, v in before.items() if k.startswith("fc.")}
    assert _changed(fc_before, net.features.fc)  # unfrozen block (incl. its BN stats) trains


def test_plain_requires_grad_false_is_not_enough():
    """The pitfall freeze() fixes: requires_grad=False alone lets BN statistics drift."""
    net = _net()
    for p in net.features.parameters():
        p.requires_grad_(False)
    before = _snapshot(net.features)
    _user_loop(net, torch.optim.SGD(trainable_parameters(net), lr=0.1), steps=1)
    running = {k: v for k, v in before.items() if "running" in k}
    assert any(not torch.equal(v, net.features.state_dict()[k]) for k, v in running.items())


@pytest.mark.parametrize("optimizer", ["sgd_momentum_wd", "adam"])
def test_fit_leaves_frozen_bits_identical(optimizer):
    from tlearn import train
    from tlearn.data import DigitDataset

    x, y = _batch(64, seed=1)
    ds = DigitDataset(x, y, name="random")
    net = freeze(_net(), "features")
    before, head = _snapshot(net.features), _snapshot(net.head)
    opt = OPTIMIZERS[optimizer](net.parameters())  # a ready optimizer over ALL parameters
    train.fit(net, ds, epochs=2, optimizer=opt, batch_size=16, progress=False, device="cpu")
    _assert_identical(before, net.features)
    assert _changed(head, net.head)
    net2 = freeze(_net(), "features")
    before = _snapshot(net2.features)
    train.fit(
        net2, ds, epochs=2, lr=1e-2, weight_decay=1e-2, batch_size=16, progress=False, device="cpu"
    )
    _assert_identical(before, net2.features)


def test_frozen_params_get_no_gradient_and_skip_backward():
    net = freeze(_net(), "features")
    x, y = _batch()
    out = net.features(x)
    assert not out.requires_grad  # autograd built no graph through the frozen blocks
    nn.CrossEntropyLoss()(net(x), y).backward()
    assert all(p.grad is None for p in net.features.parameters())
    assert all(p.grad is not None for p in net.head.parameters())


# --- FrozenBatchNorm against an explicit computation ---------------------------------


@pytest.mark.parametrize("dim", [1, 2])
def test_frozen_batchnorm_matches_affine_formula_in_train_mode(dim):
    torch.manual_seed(0)
    bn = nn.BatchNorm1d(6) if dim == 1 else nn.BatchNorm2d(6)
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1, 1)
    fbn = FrozenBatchNorm(bn).train()
    x = torch.randn(5, 6) if dim == 1 else torch.randn(5, 6, 3, 3)
    shape = (1, 6) if dim == 1 else (1, 6, 1, 1)
    rm, rv, w, b = (
        t.detach().numpy().reshape(shape)
        for t in (bn.running_mean, bn.running_var, bn.weight, bn.bias)
    )
    expected = (x.numpy() - rm) / np.sqrt(rv + bn.eps) * w + b
    np.testing.assert_allclose(fbn(x).detach().numpy(), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError):
        fbn(torch.randn(5, 6, 3, 3, 3))  # the original class's input check still applies


def test_batch_mode_updates_running_stats_like_batchnorm_and_keeps_affine():
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(4, momentum=0.3)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
    x = torch.randn(8, 4, 5, 5) * 3 + 1
    rm0, rv0, w0 = bn.running_mean.clone(), bn.running_var.clone(), bn.weight.detach().clone()
    net = nn.Sequential(OrderedDict(bn=bn))
    freeze(net, bn="batch")
    net.train()
    y = net(x)
    xs = x.numpy().transpose(1, 0, 2, 3).reshape(4, -1)
    mean, var_unbiased, var_biased = xs.mean(1), xs.var(1, ddof=1), xs.var(1)
    np.testing.assert_allclose(
        net.bn.running_mean.numpy(), 0.7 * rm0.numpy() + 0.3 * mean, rtol=1e-5
    )
    np.testing.assert_allclose(
        net.bn.running_var.numpy(), 0.7 * rv0.numpy() + 0.3 * var_unbiased, rtol=1e-5
    )
    expected = (x.numpy() - mean.reshape(1, 4, 1, 1)) / np.sqrt(
        var_biased.reshape(1, 4, 1, 1) + bn.eps
    )
    expected = expected * w0.numpy().reshape(1, 4, 1, 1)
    np.testing.assert_allclose(y.detach().numpy(), expected, rtol=1e-4, atol=1e-4)
    assert torch.equal(net.bn.weight, w0) and not net.bn.weight.requires_grad
    net.eval()
    rm1 = net.bn.running_mean.clone()
    net(x)
    assert torch.equal(net.bn.running_mean, rm1)  # eval mode: no update


def test_unfreeze_restores_ordinary_batchnorm_with_same_tensors():
    net = _net()
    _user_loop(net, torch.optim.SGD(net.parameters(), lr=0.1), steps=2)
    bn_before = net.features.conv2[1]
    weight_obj = bn_before.weight
    stats = _snapshot(net.features)
    freeze(net)
    assert isinstance(net.features.conv2[1], FrozenBatchNorm)
    assert isinstance(net.features.fc[2], FrozenBatchNorm)  # the BatchNorm1d too
    unfreeze(net)
    restored = net.features.conv2[1]
    assert type(restored) is nn.BatchNorm2d and type(net.features.fc[2]) is nn.BatchNorm1d
    assert restored.weight is weight_obj  # an optimizer built earlier still holds it
    _assert_identical(stats, net.features)
    assert all(p.requires_grad for p in net.parameters())
    before = _snapshot(net.features)
    _user_loop(net, torch.optim.SGD(net.parameters(), lr=0.1), steps=1)
    assert _changed(before, net.features)  # ordinary BatchNorm trains and tracks again


def test_frozen_model_state_dict_round_trip_and_deepcopy():
    net = _net()
    _user_loop(net, torch.optim.SGD(net.parameters(), lr=0.1), steps=2)
    frozen = freeze(copy.deepcopy(net), "features")
    fresh = _net(seed=1)
    fresh.load_state_dict(frozen.state_dict())
    x, _ = _batch()
    net.eval(), fresh.eval(), frozen.train()
    torch.testing.assert_close(fresh(x), net(x))
    torch.testing.assert_close(frozen(x), net(x))  # frozen BN = eval-mode BN, even in train()
    clone = copy.deepcopy(frozen)
    torch.testing.assert_close(clone(x), frozen(x))


# --- selection ----------------------------------------------------------------------


def _toy() -> nn.Module:
    return nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(1, 2, 3),
            conv10=nn.Conv2d(2, 2, 3),
            block=nn.Sequential(OrderedDict(conv=nn.Conv2d(2, 2, 1), bn=nn.BatchNorm2d(2))),
            fc=nn.Linear(2, 2),
        )
    )


def _trainable_names(model: nn.Module) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_selection_by_prefix_respects_dot_boundaries():
    net = freeze(_toy(), "conv1")
    assert _trainable_names(net) == {n for n, _ in _toy().named_parameters()} - {
        "conv1.weight",
        "conv1.bias",
    }


def test_selection_by_glob_predicate_and_parameter_name():
    all_names = {n for n, _ in _toy().named_parameters()}
    net = freeze(_toy(), "conv*")
    assert _trainable_names(net) == {n for n in all_names if not n.startswith("conv")}
    net = freeze(_toy(), "block.*")
    assert _trainable_names(net) == {n for n in all_names if not n.startswith("block.")}
    assert isinstance(net.block.bn, FrozenBatchNorm)
    net = freeze(_toy(), lambda name, m: isinstance(m, nn.Conv2d))
    assert _trainable_names(net) == {"block.bn.weight", "block.bn.bias", "fc.weight", "fc.bias"}
    net = freeze(_toy(), "fc.bias")
    assert _trainable_names(net) == all_names - {"fc.bias"}
    net = freeze(_toy())
    assert _trainable_names(net) == set() and isinstance(net.block.bn, FrozenBatchNorm)
    unfreeze(net, "block")
    assert _trainable_names(net) == {n for n in all_names if n.startswith("block.")}
    assert type(net.block.bn) is nn.BatchNorm2d


def test_unknown_name_lists_blocks_and_close_matches():
    with pytest.raises(ValueError) as err:
        freeze(_net(), "feature.conv1")
    msg = str(err.value)
    for block in BLOCKS:
        assert block in msg
    assert "Did you mean" in msg and "features.conv1" in msg
    with pytest.raises(ValueError, match="blocks"):
        unfreeze(_net(), "layer4")
    with pytest.raises(ValueError):
        freeze(_net(), 3)
    with pytest.raises(ValueError):
        freeze(_net(), "head", bn="sometimes")


# --- counts, summary, freeze_to --------------------------------------------------------


def test_trainable_counts_and_summary():
    net = _net()
    total = sum(p.numel() for p in net.parameters())
    freeze(net)
    unfreeze(net, "head")
    assert count_parameters(net) == total
    assert count_parameters(net, trainable_only=True) == 128 * 10 + 10
    s = trainable_summary(net)
    assert [r["block"] for r in s.rows] == BLOCKS
    for r, (name, block) in zip(s.rows, models_blocks(net), strict=True):
        assert r["block"] == name
        assert r["parameters"] == sum(p.numel() for p in block.parameters())
        assert r["trainable"] == sum(p.numel() for p in block.parameters() if p.requires_grad)
    assert s.total == total and s.trainable == 1290
    assert [r["bn"] for r in s.rows] == ["frozen"] * 4 + ["—"]
    text, html = str(s), s._repr_html_()
    assert "features.conv2" in text and "1,290" in text and "<table>" in html and "frozen" in html


def models_blocks(net):
    from tlearn.freeze import _blocks

    return _blocks(net)


@pytest.mark.parametrize("n", range(6))
def test_freeze_to(n):
    net = freeze_to(_net(), n)
    for i, name in enumerate(BLOCKS):
        block = net.get_submodule(name)
        expect = i >= len(BLOCKS) - n
        assert all(p.requires_grad == expect for p in block.parameters()), (n, name)
        bns = [
            m
            for m in block.modules()
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, FrozenBatchNorm))
        ]
        assert all(isinstance(m, FrozenBatchNorm) != expect for m in bns)


def test_freeze_to_rejects_bad_n():
    for n in (-1, 6, 1.5, True):
        with pytest.raises(ValueError, match="head"):
            freeze_to(_net(), n)


# --- discriminative learning rates ---------------------------------------------------


def _check_partition(groups, net):
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)), "a parameter is in two groups"
    assert set(ids) == {id(p) for p in net.parameters() if p.requires_grad}


def test_param_groups_first_match_wins_and_cover_trainable_once():
    net = freeze(_net(), "features.conv1")
    groups = param_groups(
        net,
        {
            "head": 1e-3,
            "features.fc": {"lr": 3e-4, "weight_decay": 0.0},
            "features.*": 2e-4,
            "*": 1e-4,
        },
    )
    _check_partition(groups, net)
    by_name = {g["name"]: g for g in groups}
    assert {id(p) for p in by_name["head"]["params"]} == {id(p) for p in net.head.parameters()}
    assert by_name["head"]["lr"] == 1e-3 and by_name["features.fc"]["weight_decay"] == 0.0
    expected_conv = {
        id(p) for n in ("conv2", "conv3") for p in getattr(net.features, n).parameters()
    }
    assert {id(p) for p in by_name["features.*"]["params"]} == expected_conv
    assert "*" not in by_name  # nothing left for the catch-all: empty group dropped
    opt = torch.optim.SGD(groups, lr=1.0)
    assert sorted(g["lr"] for g in opt.param_groups) == [2e-4, 3e-4, 1e-3]


def test_param_groups_errors():
    net = _net()
    with pytest.raises(ValueError, match="catch-all"):
        param_groups(net, {"head": 1e-3})
    with pytest.raises(ValueError, match="Did you mean"):
        param_groups(net, {"haed": 1e-3, "*": 1e-4})
    with pytest.raises(ValueError, match="learning rate for 'head' must be a finite number > 0"):
        param_groups(net, {"head": -1.0, "*": 1e-4})
    with pytest.raises(ValueError, match="non-empty dict"):
        param_groups(net, {})
    with pytest.raises(ValueError, match="slice"):
        discriminative_groups(net, slice(1e-3, 1e-2, 2))
    with pytest.raises(ValueError, match="slice"):
        discriminative_groups(net, 1e-3)
    with pytest.raises(ValueError, match="lo in slice.*> 0"):
        discriminative_groups(net, slice(0.0, 1e-2))


def test_param_groups_slice_spreads_geometrically():
    net = freeze(_net(), "features.conv1")
    lo, hi = 1e-5, 1e-3
    groups = discriminative_groups(net, slice(lo, hi))
    _check_partition(groups, net)
    # explicit: block i of k=5 gets lo * (hi/lo)**(i/4); conv1 (i=0) is frozen → no group
    expected = {name: lo * math.exp(math.log(hi / lo) * i / 4) for i, name in enumerate(BLOCKS)}
    assert [g["name"] for g in groups] == BLOCKS[1:]
    for g in groups:
        assert g["lr"] == pytest.approx(expected[g["name"]], rel=1e-12)
    groups = discriminative_groups(_net(), slice(1e-3))
    assert [g["lr"] for g in groups] == pytest.approx([1e-4] * 4 + [1e-3])
    groups = param_groups(net, {"*": 3e-4})
    assert len(groups) == 1 and groups[0]["lr"] == 3e-4
    _check_partition(groups, net)


# --- gradual unfreezing ----------------------------------------------------------------


def test_gradual_unfreezing_schedule_with_a_fake_fit():
    net = _net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)  # built before the callback froze anything
    cb = GradualUnfreezing(every=2, decay=2.0)
    state = SimpleNamespace(model=net, optimizer=opt, epoch=0, epochs=9, history=None)
    cb.on_fit_start(state)
    seen = []
    for epoch in range(9):
        state.epoch = epoch
        cb.on_epoch_start(state)
        seen.append(
            [b for b in BLOCKS if all(p.requires_grad for p in net.get_submodule(b).parameters())]
        )
        _check_partition([{"params": g["params"]} for g in opt.param_groups], net)
    # epochs 0-1 head; 2-3 +fc; 4-5 +conv3; 6-7 +conv2; 8 +conv1
    assert [len(s) for s in seen] == [1, 1, 2, 2, 3, 3, 4, 4, 5]
    assert seen[4] == ["features.conv3", "features.fc", "head"]
    assert cb.schedule == [
        (0, "head"),
        (2, "features.fc"),
        (4, "features.conv3"),
        (6, "features.conv2"),
        (8, "features.conv1"),
    ]
    lrs = {g.get("name"): g["lr"] for g in opt.param_groups if g["params"]}
    assert lrs == pytest.approx(
        {
            None: 1e-3,
            "features.fc": 5e-4,
            "features.conv3": 2.5e-4,
            "features.conv2": 1.25e-4,
            "features.conv1": 6.25e-5,
        }
    )


def test_gradual_unfreezing_in_fit():
    from tlearn import train
    from tlearn.data import DigitDataset

    x, y = _batch(32, seed=2)
    ds = DigitDataset(x, y, name="random")
    net = _net()
    snaps = {}

    class Record:
        def on_epoch_start(self, state):
            snaps[state.epoch] = {b: _snapshot(state.model.get_submodule(b)) for b in BLOCKS}

    train.fit(
        net,
        ds,
        epochs=3,
        batch_size=16,
        progress=False,
        device="cpu",
        callbacks=[GradualUnfreezing(every=1), Record()],
    )
    final = {b: _snapshot(net.get_submodule(b)) for b in BLOCKS}
    # epoch 0 trains the head only, epoch 1 also fc, epoch 2 also conv3:
    # conv1, conv2 never change; conv3 changes only during epoch 2.
    for b in ("features.conv1", "features.conv2"):
        _assert_identical(snaps[0][b], net.get_submodule(b))
    _assert_identical(
        snaps[0]["features.conv3"], _load(snaps[2]["features.conv3"], net, "features.conv3")
    )
    assert _changed(snaps[2]["features.conv3"], net.get_submodule("features.conv3"))
    _assert_identical(snaps[0]["features.fc"], _load(snaps[1]["features.fc"], net, "features.fc"))
    assert final["head"].keys() == snaps[0]["head"].keys()


def _load(state, net, block):
    """A copy of ``block`` with ``state`` loaded: lets us compare two snapshots."""
    m = copy.deepcopy(net.get_submodule(block))
    m.load_state_dict(state)
    return m


def test_gradual_unfreezing_validates():
    for kwargs in ({"every": 0}, {"start": -1}, {"decay": 0}, {"lr": -1.0}, {"bn": "x"}):
        with pytest.raises(ValueError):
            GradualUnfreezing(**kwargs)


def test_gradual_unfreezing_records_trainable_blocks_in_history():
    from tlearn import train
    from tlearn.data import DigitDataset

    x, y = _batch(16, seed=3)
    hist = train.fit(
        _net(),
        DigitDataset(x, y, name="random"),
        epochs=3,
        batch_size=8,
        progress=False,
        device="cpu",
        callbacks=[GradualUnfreezing(every=2, start=2)],
    )
    assert hist["trainable_blocks"] == [2, 2, 3]


def test_summary_and_freeze_to_work_on_torchvision_and_unknown_models():
    from torchvision.models import resnet18

    net = resnet18(weights=None)
    freeze_to(net, 2)  # layer4 + fc
    s = trainable_summary(net)
    assert [r["block"] for r in s.rows][-2:] == ["layer4", "fc"]
    assert s.trainable == sum(p.numel() for p in net.layer4.parameters()) + 512 * 1000 + 1000
    assert isinstance(net.layer3[0].bn1, FrozenBatchNorm) and isinstance(net.bn1, FrozenBatchNorm)
    toy = freeze_to(_toy(), 1)  # not a models.blocks family: top-level children with parameters
    assert _trainable_names(toy) == {"fc.weight", "fc.bias"}
