"""BatchNorm statistics: re-estimation on new data, and AdaBN (the target's statistics)."""

from __future__ import annotations

import copy
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tlearn.bn import adabn, batchnorm_layers, estimate_bn_statistics
from tlearn.freeze import FrozenBatchNorm, freeze
from tlearn.models import DigitNet


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Flatten(),
        nn.Linear(4 * 6 * 6, 5),
        nn.BatchNorm1d(5),
        nn.Linear(5, 3),
    )
    # pretend it was trained on a source domain: non-trivial statistics and affine parameters
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return net.eval()


def _target(n: int = 50, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 3.0 + 2.0 * torch.randn(n, 1, 6, 6, generator=g)


def test_first_layer_gets_exact_population_statistics_for_any_batch_size():
    x = _target(50)
    conv_out = _net()[0](x).detach().double().numpy()  # what BN #1 sees
    per_channel = conv_out.transpose(1, 0, 2, 3).reshape(4, -1)
    for bs in (7, 16, 50, 256):
        net = adabn(_net(), x, batch_size=bs, device="cpu", progress=False)
        bn = net[1]
        np.testing.assert_allclose(
            bn.running_mean.numpy(), per_channel.mean(1), rtol=1e-5, atol=1e-6
        )
        np.testing.assert_allclose(bn.running_var.numpy(), per_channel.var(1, ddof=1), rtol=1e-5)


def test_single_batch_equals_direct_statistics_at_every_layer():
    x = _target(40)
    net = adabn(_net(), x, batch_size=64, device="cpu", progress=False)
    # Independent computation: a train-mode forward (BN only) on the whole set, recording
    # each BN input with hooks; the statistics are numpy mean/var of those inputs.
    ref = _net()
    ref.eval()
    seen = {}
    for name, m in batchnorm_layers(ref).items():
        m.train()
        m.register_forward_pre_hook(lambda mod, inp, name=name: seen.__setitem__(name, inp[0]))
    with torch.no_grad():
        ref(x)
    for name, m in batchnorm_layers(net).items():
        a = seen[name].double().numpy()
        a = np.moveaxis(a, 1, 0).reshape(a.shape[1], -1)
        np.testing.assert_allclose(m.running_mean.numpy(), a.mean(1), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(m.running_var.numpy(), a.var(1, ddof=1), rtol=1e-5, atol=1e-6)


def test_no_parameter_changes_and_model_is_left_in_eval_mode():
    net = _net()
    before = {k: v.clone() for k, v in net.named_parameters()}
    stats_before = net[1].running_mean.clone()
    net.train()
    out = adabn(net, _target(), batch_size=16, device="cpu", progress=False)
    assert out is net and not net.training
    assert all(not m.training for m in net.modules())
    for k, v in net.named_parameters():
        assert torch.equal(v, before[k]), k
        assert v.grad is None
    assert not torch.allclose(net[1].running_mean, stats_before)


def test_accepts_dataset_dataloader_and_ignores_labels():
    x = _target(30)
    garbage = torch.full((30,), -7)
    from_tensor = adabn(_net(), x, batch_size=10, device="cpu", progress=False)
    from_ds = adabn(_net(), TensorDataset(x, garbage), batch_size=10, device="cpu", progress=False)
    loader = DataLoader(TensorDataset(x, garbage), batch_size=10)
    from_loader = adabn(_net(), loader, device="cpu", progress=False)
    for other in (from_ds, from_loader):
        for a, b in zip(
            batchnorm_layers(from_tensor).values(), batchnorm_layers(other).values(), strict=True
        ):
            assert torch.allclose(a.running_mean, b.running_mean)
            assert torch.allclose(a.running_var, b.running_var)


def test_adabn_undoes_a_contrast_change_on_digitnet():
    # A shift AdaBN undoes at the first BN: target = 0.5·source (lower contrast).
    torch.manual_seed(0)
    net = DigitNet().eval()
    src = torch.rand(64, 1, 32, 32)
    adabn(net, src, batch_size=64, device="cpu", progress=False)
    ref = net(src).detach()
    adabn(net, 0.5 * src, batch_size=64, device="cpu", progress=False)
    out = net(0.5 * src).detach()
    # conv1 is linear (no bias), so BN #1 sees 0.5× its source input: identical outputs
    # (up to BatchNorm's ε); with the source statistics the outputs differ a lot.
    stale = DigitNet().eval()
    stale.load_state_dict(net.state_dict())
    adabn(stale, src, batch_size=64, device="cpu", progress=False)
    assert not torch.allclose(stale(0.5 * src), ref, atol=1e-2)
    assert torch.allclose(out, ref, atol=1e-3)


def test_bad_inputs():
    with pytest.raises(ValueError, match="no BatchNorm"):
        adabn(nn.Linear(3, 2), torch.randn(4, 3), device="cpu", progress=False)
    with pytest.raises(ValueError, match="empty"):
        adabn(_net(), torch.empty(0, 1, 6, 6), device="cpu", progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        adabn(_net(), _target(), batch_size=1, device="cpu", progress=False)
    with pytest.raises(TypeError, match="nn.Module"):
        adabn("not a model", _target(), device="cpu", progress=False)


# --- BatchNorm statistics re-estimation (AdaBN) ------------------------------------------


@pytest.mark.parametrize("frozen", [False, True])
def test_estimate_bn_statistics_matches_numpy_population_stats(frozen):
    torch.manual_seed(0)
    net = nn.Sequential(OrderedDict(conv=nn.Conv2d(2, 3, 3), bn=nn.BatchNorm2d(3), relu=nn.ReLU()))
    if frozen:
        freeze(net, "bn")
    x = torch.randn(40, 2, 6, 6) * 2 + 0.5
    net.eval()
    estimate_bn_statistics(net, x, batch_size=40)  # one batch: exact population statistics
    assert not net.training  # mode restored
    h = net.conv(x).detach().numpy().transpose(1, 0, 2, 3).reshape(3, -1)
    np.testing.assert_allclose(net.bn.running_mean.numpy(), h.mean(1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(net.bn.running_var.numpy(), h.var(1, ddof=1), rtol=1e-4)
    assert net.bn.momentum == 0.1
    if frozen:
        assert isinstance(net.bn, FrozenBatchNorm) and net.bn.mode == "frozen"
    # several batches: the sums are pooled, so the first BN layer still gets the exact
    # population statistics (not the average of per-batch variances, which is smaller)
    net.bn.running_mean.zero_()
    estimate_bn_statistics(net, x, batch_size=10)
    np.testing.assert_allclose(net.bn.running_mean.numpy(), h.mean(1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(net.bn.running_var.numpy(), h.var(1, ddof=1), rtol=1e-4)
    assert int(net.bn.num_batches_tracked) == 4


def test_estimate_bn_statistics_ignores_labels_and_keeps_dropout_off():
    from torch.utils.data import TensorDataset

    torch.manual_seed(0)
    net = nn.Sequential(nn.Dropout(0.9), nn.Linear(3, 4), nn.BatchNorm1d(4))
    x = torch.randn(30, 3)
    a = estimate_bn_statistics(copy.deepcopy(net), x, batch_size=8)
    garbage = torch.full((30,), -7)
    b = estimate_bn_statistics(copy.deepcopy(net), TensorDataset(x, garbage), batch_size=8)
    h = net[1](x).detach().numpy()  # dropout off: the BN layer sees the clean activations
    for m in (a, b):
        np.testing.assert_allclose(m[2].running_mean.numpy(), h.mean(0), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(m[2].running_var.numpy(), h.var(0, ddof=1), rtol=1e-4)
    with pytest.raises(ValueError, match="batch_size"):
        estimate_bn_statistics(net, x, batch_size=1)


def test_estimate_bn_statistics_can_skip_frozen_layers():
    torch.manual_seed(0)
    net = DigitNet()
    freeze(net, "features.conv1")
    before = copy.deepcopy(net.features.conv1.state_dict())
    estimate_bn_statistics(net, torch.rand(32, 1, 32, 32), include_frozen=False)
    for k, v in net.features.conv1.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not torch.equal(net.features.conv2[1].running_var, torch.ones(32))
    assert list(batchnorm_layers(net, include_frozen=False)) == [
        "features.conv2.1",
        "features.conv3.1",
        "features.fc.2",
    ]
    assert "features.conv1.1" in batchnorm_layers(net)


def test_adabn_adapts_frozen_layers_and_leaves_them_frozen():
    x = _target(40)
    plain = adabn(_net(), x, batch_size=40, device="cpu", progress=False)
    frozen = freeze(_net())
    adabn(frozen, x, batch_size=40, device="cpu", progress=False)
    assert isinstance(frozen[1], FrozenBatchNorm) and frozen[1].mode == "frozen"
    for a, b in zip(
        batchnorm_layers(plain).values(), batchnorm_layers(frozen).values(), strict=True
    ):
        torch.testing.assert_close(a.running_mean, b.running_mean)
        torch.testing.assert_close(a.running_var, b.running_var)


def test_freeze_speaks_the_bn_vocabulary():
    for old_word in ("adapt", "live", "target"):
        with pytest.raises(ValueError, match="'frozen'.*'batch'"):
            freeze(_net(), bn=old_word)
