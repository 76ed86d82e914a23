"""TENT: only BatchNorm γ, β move, target labels are never read, the entropy falls, errors."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from test_trainer import Poisoned, Tiny, _domain
from torch import nn

from tlearn import train
from tlearn.adapt import adabn, entropy, tent
from tlearn.bn import estimate_bn_statistics
from tlearn.data import DigitDataset
from tlearn.freeze import FrozenBatchNorm

pytestmark = pytest.mark.usefixtures("one_thread")

OPTIONS = {"device": "cpu", "progress": False}


def _learnable(n: int, seed: int) -> DigitDataset:
    """Noise plus a class pattern: class 0 lights the top rows, 1 the left columns, 2 the centre."""
    d = _domain(n, seed)
    patterns = torch.zeros(3, 1, 8, 8)
    patterns[0, :, :3], patterns[1, :, :, :3], patterns[2, :, 3:5, 3:5] = 1.0, 1.0, 2.0
    return DigitDataset(d.images + patterns[d.labels], d.labels, classes=d.classes)


@pytest.fixture(scope="module")
def source_model():
    """Tiny trained on a learnable source domain; the target below is a rescaled, shifted copy."""
    torch.manual_seed(0)
    net = Tiny()
    train.fit(net, _learnable(96, 1), epochs=5, batch_size=16, lr=1e-2, **OPTIONS)
    return net.eval()


def _shifted(n=48, seed=2):
    d = _learnable(n, seed)
    return DigitDataset(0.4 * d.images + 0.6, d.labels, classes=d.classes)


# --------------------------------------------------------------------------- entropy
@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 5), c=st.integers(1, 6), scale=st.floats(0.1, 30), seed=st.integers(0, 99))
def test_entropy_is_the_mean_of_minus_sum_p_log_p(n, c, scale, seed):
    logits = scale * torch.randn(n, c, generator=torch.Generator().manual_seed(seed))
    by_hand = []
    for row in logits.softmax(1).double().tolist():
        by_hand.append(-sum(p * math.log(p) for p in row if p > 0))
    assert entropy(logits).item() == pytest.approx(sum(by_hand) / n, abs=1e-5)
    assert -1e-6 <= entropy(logits).item() <= math.log(c) + 1e-5


def test_entropy_limits_and_gradient():
    assert entropy(torch.zeros(3, 4)).item() == pytest.approx(math.log(4))
    assert entropy(torch.tensor([[1e4, 0.0]])).item() == 0.0  # no 0·log 0 = nan
    logits = torch.randn(4, 3, requires_grad=True)
    entropy(logits).backward()
    assert torch.isfinite(logits.grad).all()
    with pytest.raises(ValueError, match=r"shape \(N, C\)"):
        entropy(torch.randn(4))


# --------------------------------------------------------------------------- what moves
def test_only_batchnorm_affine_parameters_change(source_model):
    net = copy.deepcopy(source_model)
    net.head.weight.requires_grad_(False)  # a user's frozen layer stays frozen afterwards
    before = {k: v.clone() for k, v in net.named_parameters()}
    flags = {k: v.requires_grad for k, v in net.named_parameters()}
    tent(net, _shifted(), steps=2, lr=1e-2, batch_size=16, **OPTIONS)
    affine = {"features.1.weight", "features.1.bias", "features.6.weight", "features.6.bias"}
    for k, v in net.named_parameters():
        if k in affine:
            assert not torch.equal(v, before[k]), f"{k} did not move"
        else:
            assert torch.equal(v, before[k]), f"{k} changed"
        assert v.requires_grad == flags[k] and v.grad is None, k
    assert not net.training and not any(m.training for m in net.modules())


def test_one_batch_is_one_hand_written_step(source_model):
    """SGD on γ, β of the entropy of one batch, normalised with its own statistics.

    (SGD, not Adam: Adam's first step is ±lr for every gradient far above its ε, so rounding
    decides the sign of a near-zero gradient and the comparison would test rounding.)"""
    target = _shifted(16)
    net = tent(copy.deepcopy(source_model), target, batch_size=16, lr=1e-2, shuffle=False,
               optimizer="sgd", **OPTIONS)  # fmt: skip
    ref = copy.deepcopy(source_model).train()  # no dropout in Tiny: train mode = BN batch stats
    params = [p for m in ref.modules() if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d)
              for p in (m.weight, m.bias)]  # fmt: skip
    opt = torch.optim.SGD(params, lr=1e-2, momentum=0.9)
    logits = ref(target.images)
    loss = -(F.softmax(logits, 1) * F.log_softmax(logits, 1)).sum(1).mean()
    loss.backward()
    opt.step()
    for (k, p), q in zip(net.named_parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p, q, msg=k)


def test_online_passes_visit_each_batch_once_then_reestimate_statistics(source_model):
    sizes = []
    net = copy.deepcopy(source_model)
    net.register_forward_pre_hook(lambda m, inp: sizes.append(len(inp[0])))
    target = _shifted(21)
    tent(net, target, steps=2, batch_size=8, **OPTIONS)
    # fit's input check (2 copies of one image, eval mode), then 21 images in batches of 8:
    # 8, 8, 5 per pass (2 passes), then one pass to re-estimate the statistics
    assert sizes == [2, 8, 8, 5, 8, 8, 5, 21]
    # eval mode uses the target's population statistics: the first BN sees the unchanged conv
    h = net.features[0](target.images).detach().transpose(0, 1).reshape(4, -1).double()
    torch.testing.assert_close(net.features[1].running_mean.double(), h.mean(1), rtol=1e-4,
                               atol=1e-5)  # fmt: skip
    again = estimate_bn_statistics(copy.deepcopy(net), target)
    for (k, a), b in zip(net.state_dict().items(), again.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=k)


def test_a_trailing_single_image_is_not_used_for_an_update(source_model):
    net = tent(copy.deepcopy(source_model), _shifted(17), batch_size=16, shuffle=False, **OPTIONS)
    ref = tent(copy.deepcopy(source_model), _shifted(17).images[:16], batch_size=16,
               shuffle=False, **OPTIONS)  # fmt: skip
    for p, q in zip(net.parameters(), ref.parameters(), strict=True):
        assert torch.equal(p, q)


def test_frozen_batchnorm_is_left_alone(source_model):
    net = copy.deepcopy(source_model)
    net.features[1] = FrozenBatchNorm(net.features[1])
    frozen = copy.deepcopy(net.features[1].state_dict())
    tent(net, _shifted(), lr=1e-2, batch_size=16, **OPTIONS)
    for k, v in net.features[1].state_dict().items():
        assert torch.equal(v, frozen[k]), k
    assert not net.features[1].weight.requires_grad


# --------------------------------------------------------------------------- labels, effect
def test_target_labels_are_never_read(source_model):
    target = _shifted()
    runs = []
    for data in (target, Poisoned(target.images), target.images,
                 DigitDataset(target.images, torch.zeros(48, dtype=torch.long))):  # fmt: skip
        torch.manual_seed(5)  # the same shuffling for each
        runs.append(tent(copy.deepcopy(source_model), data, batch_size=16, **OPTIONS))
    for other in runs[1:]:
        for (k, a), b in zip(
            runs[0].state_dict().items(), other.state_dict().values(), strict=True
        ):
            assert torch.equal(a, b), k


def test_tent_lowers_the_prediction_entropy_beyond_adabn(source_model):
    target = _shifted(96, seed=3)

    def mean_entropy(net):
        return entropy(train.predict(net, target, return_logits=True, device="cpu")).item()

    torch.manual_seed(0)
    adapted = tent(copy.deepcopy(source_model), target, steps=5, lr=1e-2, batch_size=32,
                   **OPTIONS)  # fmt: skip
    baseline = adabn(copy.deepcopy(source_model), target, device="cpu", progress=False)
    assert mean_entropy(adapted) < 0.95 * mean_entropy(baseline)  # measured: 0.89×
    assert mean_entropy(adapted) < mean_entropy(source_model)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_both_optimizers_adapt(source_model, optimizer):
    net = tent(copy.deepcopy(source_model), _shifted(), optimizer=optimizer, lr=1e-2,
               batch_size=16, **OPTIONS)  # fmt: skip
    assert not torch.equal(net.features[1].weight, source_model.features[1].weight)


# --------------------------------------------------------------------------- errors
def test_a_model_without_batchnorm_is_refused():
    plain = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    with pytest.raises(ValueError, match="no BatchNorm layer with affine parameters"):
        tent(plain, _shifted(), **OPTIONS)
    no_affine = nn.Sequential(nn.Flatten(), nn.Linear(64, 3), nn.BatchNorm1d(3, affine=False))
    with pytest.raises(ValueError, match="nothing to adapt"):
        tent(no_affine, _shifted(), **OPTIONS)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": 0}, "steps"),
        ({"steps": 1.5}, "steps"),
        ({"lr": 0}, "lr must be"),
        ({"lr": float("nan")}, "lr must be"),
        ({"batch_size": 1}, "batch_size must be an int >= 2"),
        ({"optimizer": "rmsprop"}, "optimizer must be one of"),
    ],
)
def test_bad_arguments(source_model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        tent(copy.deepcopy(source_model), _shifted(), **kwargs, **OPTIONS)


def test_bad_model_and_target(source_model):
    with pytest.raises(TypeError, match="torch.nn.Module"):
        tent(lambda x: x, _shifted(), **OPTIONS)
    with pytest.raises(ValueError, match="at least 2 images"):
        tent(copy.deepcopy(source_model), _shifted().images[:1], **OPTIONS)
    with pytest.raises(ValueError, match="empty"):
        tent(copy.deepcopy(source_model), _shifted().images[:0], **OPTIONS)


# --------------------------------------------------------------------------- through fit
def test_passes_continue_one_stream_seeded_like_fit(source_model):
    """Pass 2's order is the next draw of pass 1's generator (the paper's stream runs on),
    seeded with the number fit draws first; the last batch of one image is left out."""
    target = _shifted(17)
    seen = []
    net = copy.deepcopy(source_model)
    net.register_forward_pre_hook(lambda m, inp: seen.append(inp[0].clone()))
    torch.manual_seed(4)
    tent(net, target, steps=2, batch_size=8, **OPTIONS)
    torch.manual_seed(4)
    g = torch.Generator().manual_seed(int(torch.randint(0, 2**31 - 1, ()).item()))
    expected = [idx for _ in range(2) for idx in torch.randperm(17, generator=g).split(8)[:2]]
    assert len(seen) == 1 + 4 + 1  # fit's input check, 2 passes of 2 batches, re-estimation
    for batch, idx in zip(seen[1:5], expected, strict=True):
        assert torch.equal(batch, target.images[idx])


def test_train_only_restores_every_flag_even_after_an_error(source_model):
    from tlearn.adapt.tent import train_only

    net = copy.deepcopy(source_model)
    net.head.weight.requires_grad_(False)
    flags = {k: p.requires_grad for k, p in net.named_parameters()}
    with pytest.raises(RuntimeError), train_only(net, [net.features[1].weight]):
        assert [k for k, p in net.named_parameters() if p.requires_grad] == ["features.1.weight"]
        raise RuntimeError("boom")
    assert {k: p.requires_grad for k, p in net.named_parameters()} == flags
