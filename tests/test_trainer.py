"""fit_adapt: the loss terms, the data flow (no target labels!), DANN's reversal, errors."""

from __future__ import annotations

import copy
import inspect
import sys

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from tlearn.adapt import trainer
from tlearn.adapt.coral import coral_loss
from tlearn.adapt.dann import DomainAdversarialLoss, DomainClassifier
from tlearn.adapt.mmd import mmd
from tlearn.adapt.trainer import METHODS, fit_adapt, register_method
from tlearn.data import DigitDataset

CLASSES = ("a", "b", "c")


class Tiny(nn.Module):
    """A DigitNet in miniature: conv → BN → pool → fc → BN → ReLU = features; head."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1, bias=False),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
            nn.Linear(16, 6, bias=False),
            nn.BatchNorm1d(6),
            nn.ReLU(),
        )
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        return self.head(self.features(x))


def _domain(n: int, seed: int, shift: float = 0.0) -> DigitDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 8, 8, generator=g) + shift
    y = torch.randint(0, 3, (n,), generator=g)
    return DigitDataset(x, y, name=f"d{seed}", classes=CLASSES)


def _fit(method, source=None, target=None, seed=0, **kw):
    torch.manual_seed(123)
    net = Tiny()
    kw = {"epochs": 2, "batch_size": 8, "device": "cpu", "progress": False, **kw}
    source = _domain(40, 1) if source is None else source
    target = _domain(20, 2, 0.5) if target is None else target
    hist = fit_adapt(net, source, target, method, seed=seed, **kw)
    return net, hist


class Poisoned(Dataset):
    """A target whose labels blow up when touched: as attribute, as int, in a comparison."""

    class _Bomb:
        def __getattr__(self, name):
            raise AssertionError("fit_adapt read a target label")

        def __int__(self):
            raise AssertionError("fit_adapt read a target label")

        __index__ = __int__

        def __eq__(self, other):
            raise AssertionError("fit_adapt read a target label")

    def __init__(self, images):
        self._images = images

    @property
    def labels(self):
        raise AssertionError("fit_adapt read target.labels")

    def __len__(self):
        return len(self._images)

    def __getitem__(self, i):
        return self._images[i], self._Bomb()


@pytest.mark.parametrize("method", ["coral", "mmd", "dann"])
def test_target_labels_cannot_change_the_result(method):
    target = _domain(20, 2, 0.5)
    garbage = DigitDataset(target.images, torch.full((20,), 2), classes=CLASSES)
    a, _ = _fit(method, target=target)
    b, _ = _fit(method, target=garbage)
    c, _ = _fit(method, target=Poisoned(target.images))  # generic Dataset path
    d, _ = _fit(method, target=target.images)  # a bare image tensor
    for other in (b, c, d):
        for (k, va), vb in zip(a.state_dict().items(), other.state_dict().values(), strict=True):
            assert torch.equal(va, vb), f"{method}: {k} differs"


@pytest.mark.parametrize("method", ["coral", "dann"])
def test_reestimate_bn_sets_target_statistics_and_touches_nothing_else(method):
    target = _domain(20, 2, 0.5)
    on, _ = _fit(method, target=target, reestimate_bn=True, bn="per_domain")
    off, _ = _fit(method, target=target, reestimate_bn=False, bn="per_domain")
    poisoned, _ = _fit(method, target=Poisoned(target.images), reestimate_bn=True,
                       bn="per_domain")  # fmt: skip
    # the first BN layer now holds the population statistics of the target's conv outputs
    h = on.features[0](target.images).detach().transpose(0, 1).reshape(4, -1).double()
    bn = on.features[1]
    torch.testing.assert_close(bn.running_mean.double(), h.mean(1), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(bn.running_var.double(), h.var(1), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(off.features[1].running_mean.double(), h.mean(1), atol=1e-3)
    # the same training: weights equal, only BatchNorm buffers differ; labels never read
    for p, q in zip(on.parameters(), off.parameters(), strict=True):
        assert torch.equal(p, q)
    for (k, va), vb in zip(on.state_dict().items(), poisoned.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k


def test_reestimate_bn_leaves_frozen_batchnorm_alone():
    from tlearn.freeze import FrozenBatchNorm, freeze

    torch.manual_seed(0)
    net = Tiny()
    freeze(net, "features.1")  # the first BatchNorm keeps its (source) statistics
    assert isinstance(net.features[1], FrozenBatchNorm)
    before = net.features[1].running_mean.clone(), net.features[1].running_var.clone()
    live = net.features[6].running_mean.clone()
    fit_adapt(net, _domain(16, 1), _domain(16, 2, 0.5), "mmd", epochs=1, batch_size=8,
              device="cpu", progress=False, seed=0, reestimate_bn=True)  # fmt: skip
    assert torch.equal(net.features[1].running_mean, before[0])
    assert torch.equal(net.features[1].running_var, before[1])
    assert not torch.equal(net.features[6].running_mean, live)


def test_same_seed_same_weights_other_seed_other_weights():
    a, _ = _fit("coral", seed=3)
    b, _ = _fit("coral", seed=3)
    c, _ = _fit("coral", seed=4)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a.parameters(), c.parameters(), strict=True))


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_trains_and_records_both_loss_terms(method):
    before = Tiny()
    net, hist = _fit(method, val=_domain(12, 5))
    assert len(hist) == 2 and hist["epoch"] == [1, 2]
    rec = hist.last
    for key in ("train_loss", "train_accuracy", "val_accuracy", "lr"):
        assert key in rec, key
    if method != "none":
        w = trainer.defaults(method)["weight"]
        # per-epoch means of per-step totals: total = class + w·align holds for the means too
        assert rec["train_loss"] == pytest.approx(
            rec["class_loss"] + w * rec["align_loss"], rel=1e-5
        )
        assert rec["align_loss"] > 0
    if method == "dann":
        assert 0 < rec["lambda"] <= 1 and 0 <= rec["domain_accuracy"] <= 1
    moved = [
        not torch.equal(p, q) for p, q in zip(net.parameters(), before.parameters(), strict=True)
    ]
    assert any(moved)


def test_the_registered_methods_build_the_library_losses():
    zs, zt = torch.randn(10, 6), torch.randn(12, 6) + 1
    assert torch.equal(METHODS["coral"].build(6)(zs, zt), coral_loss(zs, zt))
    assert torch.equal(METHODS["mmd"].build(6)(zs, zt), mmd(zs, zt, kernel="multi"))
    assert isinstance(METHODS["dann"].build(6), DomainAdversarialLoss)
    assert METHODS["none"].build is None


class MeanGap(nn.Module):
    """A user's alignment loss: the squared distance between the feature means."""

    def forward(self, zs, zt):
        return (zs.mean(0) - zt.mean(0)).pow(2).sum()


class Spy(nn.Module):
    """Records what the trainer offers: progress and the class logits of both domains."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, zs, zt, *, progress, logits_s, logits_t):
        self.seen.append((progress, logits_s.shape, logits_t.shape, zs.shape, zt.shape))
        self.logs = {"spy": 1.0}
        return (zs.mean() - zt.mean()).pow(2)


def test_a_users_module_trains_like_the_registered_methods():
    _, hist = _fit(MeanGap(), weight=50.0, epochs=4)
    rec = hist.last
    assert rec["train_loss"] == pytest.approx(rec["class_loss"] + 50 * rec["align_loss"], rel=1e-5)
    # with weight 0 the same module is only measured: training with it must align more
    _, unaligned = _fit(MeanGap(), weight=0.0, epochs=4)
    assert rec["align_loss"] < unaligned.last["align_loss"]

    spy = Spy()
    _, hist = _fit(spy, epochs=1)  # 40 source images, batch 8 → 5 steps
    assert [s[0] for s in spy.seen] == pytest.approx([0, 0.25, 0.5, 0.75, 1.0])
    assert all(s[1:] == ((8, 3), (8, 3), (8, 6), (8, 6)) for s in spy.seen)
    assert hist.last["spy"] == 1.0  # a module's logs reach the history


def test_a_registered_method_plugs_in_without_touching_the_trainer():
    register_method("mean_gap", lambda d: MeanGap(), weight=0.5, bn="joint")
    try:
        assert trainer.defaults("mean_gap")["weight"] == 0.5
        _, hist = _fit("mean_gap")
        assert hist.last["align_loss"] > 0
    finally:
        del METHODS["mean_gap"]


def test_source_is_looped_and_target_cycled():
    sizes = []
    torch.manual_seed(0)
    net = Tiny()
    net.register_forward_pre_hook(lambda m, inp: sizes.append(len(inp[0])))
    # 44 source images, batch 8 → 5 steps per epoch; the 10-image target runs out after 1 batch
    fit_adapt(net, _domain(44, 1), _domain(10, 2), "coral", epochs=3, batch_size=8,
              device="cpu", progress=False, seed=0, bn="per_domain")  # fmt: skip
    assert sizes[:2] == [2, 2]  # probes: the feature dimension, the labels' range
    assert sizes[2:-2] == [8] * (2 * 5 * 3)  # separate: a source and a target pass per step
    assert sizes[-2] == 10  # then one pass over the target re-estimates BatchNorm statistics
    assert sizes[-1] == 10  # and one predicts it: the collapse check (labels never read)


def test_bn_modes_route_batches_differently():
    # the steps, then BatchNorm re-estimation on the target, then the collapse check's pass
    for mode, expected in (("joint", [16, 16, 16, 16]), ("per_domain", [8, 8, 8, 8, 16, 16])):
        sizes = []
        torch.manual_seed(0)
        net = Tiny()
        net.register_forward_pre_hook(lambda m, inp, s=sizes: s.append(len(inp[0])))
        fit_adapt(net, _domain(16, 1), _domain(16, 2), "mmd", epochs=1, batch_size=8,
                  device="cpu", progress=False, seed=0, bn=mode)  # fmt: skip
        assert sizes[2:] == expected, mode


def test_dann_trains_the_domain_classifier_with_the_paper_schedules():
    torch.manual_seed(0)
    clf = DomainClassifier(6, hidden=(5,), dropout=0.0)
    before = copy.deepcopy(clf.state_dict())
    _, hist = _fit("dann", discriminator=clf, lr=0.01)
    assert any(not torch.equal(v, before[k]) for k, v in clf.state_dict().items())
    # 5 steps per epoch, 10 in all: the last step has p = 1
    assert hist.last["lr"] == pytest.approx(0.01 / 11**0.75)


def test_layer_option_hooks_named_modules_and_pools_conv_maps():
    _, hist = _fit("coral", layer="head")  # align the logits, as the Deep CORAL paper
    assert hist.last["align_loss"] > 0
    _, hist = _fit("mmd", layer="features.1")  # a BatchNorm2d output, average-pooled
    assert hist.last["align_loss"] > 0
    with pytest.raises(ValueError, match="no module named .nope"):
        _fit("coral", layer="nope")


def test_dataloader_inputs_and_callbacks():
    src, tgt = _domain(32, 1), _domain(16, 2)
    events = []

    class Stopper:
        def on_fit_start(self, state):
            events.append("start")

        def on_epoch_end(self, state):
            events.append(state.epoch)
            state.stop = True

    loader = DataLoader(TensorDataset(src.images, src.labels), batch_size=8, shuffle=True)
    tgt_loader = DataLoader(TensorDataset(tgt.images), batch_size=8)
    torch.manual_seed(0)
    hist = fit_adapt(Tiny(), loader, tgt_loader, "coral", epochs=5, device="cpu",
                     progress=False, callbacks=[Stopper()])  # fmt: skip
    assert events == ["start", 0] and len(hist) == 1


def test_bad_inputs():
    src, tgt = _domain(16, 1), _domain(16, 2)
    with pytest.raises(ValueError, match="none.*coral.*mmd.*dann"):
        fit_adapt(Tiny(), src, tgt, "adda", device="cpu", progress=False)
    with pytest.raises(ValueError, match="empty"):
        fit_adapt(Tiny(), src, torch.empty(0, 1, 8, 8), "coral", device="cpu", progress=False)
    with pytest.raises(ValueError, match="at least 2"):
        fit_adapt(Tiny(), src, tgt.images[:1], "coral", device="cpu", progress=False)
    with pytest.raises(ValueError, match="bn must be one of"):
        fit_adapt(Tiny(), src, tgt, "coral", bn="mixed", device="cpu", progress=False)
    with pytest.raises(ValueError, match="weight"):
        fit_adapt(Tiny(), src, tgt, "coral", weight=-1, device="cpu", progress=False)
    with pytest.raises(ValueError, match="epochs"):
        fit_adapt(Tiny(), src, tgt, "coral", epochs=0, device="cpu", progress=False)
    with pytest.raises(ValueError, match="optimizer.*adam.*sgd"):
        fit_adapt(Tiny(), src, tgt, "coral", optimizer="rmsprop", device="cpu", progress=False)
    with pytest.raises(ValueError, match="Dataset, DataLoader or tensor"):
        fit_adapt(Tiny(), src, [1, 2, 3], "coral", device="cpu", progress=False)
    with pytest.raises(ValueError, match="needs a target"):
        fit_adapt(Tiny(), src, None, "mmd", device="cpu", progress=False)
    # a 3-channel target for a 1-channel source: named, before any convolution fails
    rgb = torch.rand(16, 3, 8, 8)
    with pytest.raises(ValueError, match="source images are 1×8×8 but target images are 3×8×8"):
        fit_adapt(Tiny(), src, rgb, "coral", device="cpu", progress=False)
    # an unlabelled tensor as the source
    with pytest.raises(ValueError, match="source must be labelled"):
        fit_adapt(Tiny(), src.images, tgt, "coral", device="cpu", progress=False)
    # labels the model cannot output
    bad = DigitDataset(src.images, torch.full((16,), 7), classes=CLASSES)
    with pytest.raises(ValueError, match="replace_head.*num_classes=8"):
        fit_adapt(Tiny(), bad, tgt, "coral", device="cpu", progress=False)
    with pytest.raises(ValueError, match="weight must be a finite"):
        fit_adapt(Tiny(), src, tgt, "coral", weight=float("nan"), device="cpu", progress=False)
    # source only needs no target at all
    fit_adapt(Tiny(), src, None, "none", epochs=1, batch_size=8, device="cpu", progress=False)


def test_optimizer_choice_builds_adam_or_momentum_sgd_and_both_train():
    class Grab:
        def on_fit_start(self, state):
            self.optimizer = state.optimizer

    src, tgt = _domain(64, 1), _domain(64, 2, shift=0.5)
    for name, kind in (("adam", torch.optim.Adam), ("sgd", torch.optim.SGD)):
        grab = Grab()
        _, hist = _fit("dann", src, tgt, optimizer=name, lr=0.05, epochs=3, callbacks=[grab])
        assert type(grab.optimizer) is kind
        if name == "sgd":  # Ganin et al.'s momentum
            assert grab.optimizer.param_groups[0]["momentum"] == 0.9
        assert hist.records[-1]["class_loss"] < hist.records[0]["class_loss"]
    assert all(d["optimizer"] in trainer.OPTIMIZERS for d in map(trainer.defaults, trainer.METHODS))


def test_a_registered_method_is_read_once_not_at_every_call(monkeypatch):
    """Options, num_classes and forward's arguments are read at registration: fit_adapt itself
    inspects no signature for a registered method."""
    assert METHODS["mmd"].options == ("kernel", "bandwidth", "estimator", "detach_bandwidth")
    assert METHODS["cdan_e"].forward_takes == ("progress", "logits_s", "logits_t")
    assert METHODS["dann"].forward_takes == ("progress",) and METHODS["coral"].forward_takes == ()
    assert METHODS["cdan"].takes_classes and not METHODS["dann"].takes_classes

    signature = inspect.signature

    def refuse(*args, **kwargs):
        if sys._getframe(1).f_globals["__name__"] == trainer.__name__:
            raise AssertionError("fit_adapt read a signature")
        return signature(*args, **kwargs)

    monkeypatch.setattr(inspect, "signature", refuse)
    _, hist = _fit("cdan", epochs=1)
    assert "domain_accuracy" in hist.last
