"""DANN pieces: gradient reversal, the domain classifier, the schedules, the adversarial loss."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from tlearn.adapt import (
    DomainAdversarialLoss,
    DomainClassifier,
    GradientReversal,
    dann_lambda,
    dann_lr,
    grad_reverse,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("lambda_", [0.0, 0.5, 1.0, 3.0])
def test_grad_reverse_is_identity_forward_and_flips_scaled_gradient(lambda_):
    x = torch.randn(4, 3, requires_grad=True)
    upstream = torch.randn(4, 3)
    out = grad_reverse(x, lambda_)
    torch.testing.assert_close(out, x.detach(), rtol=0, atol=0)
    assert out.shape == x.shape and out.requires_grad
    (grad,) = torch.autograd.grad(out, x, upstream)
    torch.testing.assert_close(grad, -lambda_ * upstream)
    layer = GradientReversal(lambda_)
    (grad_module,) = torch.autograd.grad(layer(x), x, upstream)
    torch.testing.assert_close(grad_module, -lambda_ * upstream)


def test_parameters_before_the_layer_get_the_reversed_gradient():
    torch.manual_seed(0)
    feature = nn.Linear(5, 4)
    head = nn.Linear(4, 1)
    x = torch.randn(8, 5)

    def grads(with_grl, lambda_=0.7):
        feature.zero_grad()
        head.zero_grad()
        z = feature(x)
        z = grad_reverse(z, lambda_) if with_grl else z
        head(z).pow(2).sum().backward()
        return feature.weight.grad.clone(), head.weight.grad.clone()

    plain_feature, plain_head = grads(False)
    rev_feature, rev_head = grads(True)
    torch.testing.assert_close(rev_feature, -0.7 * plain_feature)
    torch.testing.assert_close(rev_head, plain_head)  # the classifier itself is unaffected


def test_a_reversed_step_makes_the_domains_harder_to_tell_apart():
    """One SGD step on the features *raises* the domain loss with the GRL, lowers it without."""
    torch.manual_seed(1)
    x = torch.cat([torch.randn(32, 2) + 2.0, torch.randn(32, 2) - 2.0])
    domain = torch.cat([torch.ones(32), torch.zeros(32)])
    clf = DomainClassifier(2, hidden=8, dropout=0.0)
    for p in clf.parameters():
        p.requires_grad_(False)

    def domain_loss_after_step(use_grl):
        feature = nn.Linear(2, 2)
        with torch.no_grad():
            feature.weight.copy_(torch.eye(2))
            feature.bias.zero_()
        z = feature(x)
        logits = clf(grad_reverse(z, 1.0) if use_grl else z)
        before = F.binary_cross_entropy_with_logits(logits, domain)
        before.backward()
        with torch.no_grad():
            for p in feature.parameters():
                p -= 0.5 * p.grad
            return before.item(), F.binary_cross_entropy_with_logits(clf(feature(x)), domain).item()

    before, after_grl = domain_loss_after_step(True)
    _, after_plain = domain_loss_after_step(False)
    assert after_grl > before > after_plain


def test_module_lambda_can_follow_a_schedule_and_rejects_negative():
    layer = GradientReversal()
    assert "lambda_=1" in repr(layer)
    layer.lambda_ = dann_lambda(0.5)
    x = torch.ones(2, requires_grad=True)
    layer(x).sum().backward()
    torch.testing.assert_close(x.grad, torch.full((2,), -dann_lambda(0.5)))
    for bad in (-0.1, float("nan"), "1", None):
        with pytest.raises(ValueError, match="lambda_"):
            GradientReversal(bad)
        with pytest.raises(ValueError, match="lambda_"):
            grad_reverse(x, bad)


def test_domain_classifier_shapes_and_layers():
    clf = DomainClassifier(128)
    assert clf(torch.randn(6, 128)).shape == (6,)
    linears = [m for m in clf.modules() if isinstance(m, nn.Linear)]
    assert [m.out_features for m in linears] == [256, 256, 1]
    assert sum(isinstance(m, nn.Dropout) for m in clf.modules()) == 2
    plain = DomainClassifier(10, hidden=(), dropout=0.0)
    assert [type(m) for m in plain.net] == [nn.Linear]
    assert DomainClassifier(10, hidden=7)(torch.randn(3, 10)).shape == (3,)
    with pytest.raises(ValueError, match=r"\(N, 10\)"):
        plain(torch.randn(3, 11))
    for kwargs in (
        dict(in_features=0),
        dict(in_features=4, hidden=(0,)),
        dict(in_features=4, dropout=1.0),
    ):
        with pytest.raises(ValueError):
            DomainClassifier(**kwargs)


def test_leaky_domain_classifier_keeps_a_gradient_where_relu_units_are_dead():
    leaky = DomainClassifier(4, hidden=(3,), dropout=0.0, negative_slope=0.2)
    acts = [m for m in leaky.modules() if isinstance(m, nn.LeakyReLU)]
    assert len(acts) == 1 and acts[0].negative_slope == 0.2
    assert not any(isinstance(m, nn.ReLU) for m in leaky.modules())
    relu = DomainClassifier(4, hidden=(3,), dropout=0.0)
    for clf in (leaky, relu):  # every hidden unit negative for this input: a dead ReLU layer
        with torch.no_grad():
            clf.net[0].weight.fill_(-1.0)
            clf.net[0].bias.zero_()
    x = torch.ones(2, 4, requires_grad=True)
    leaky(x).sum().backward()
    assert x.grad.abs().sum() > 0
    x.grad = None
    relu(x).sum().backward()
    assert x.grad.abs().sum() == 0
    for bad in (-0.1, 1.0, "0.2"):
        with pytest.raises(ValueError, match="negative_slope"):
            DomainClassifier(4, negative_slope=bad)


def test_domain_classifier_learns_to_separate_two_domains():
    torch.manual_seed(0)
    x = torch.cat([torch.randn(100, 16) + 1.0, torch.randn(100, 16) - 1.0])
    domain = torch.cat([torch.ones(100), torch.zeros(100)])
    clf = DomainClassifier(16, hidden=(32,), dropout=0.1)
    opt = torch.optim.Adam(clf.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        F.binary_cross_entropy_with_logits(clf(x), domain).backward()
        opt.step()
    clf.eval()
    accuracy = ((clf(x) > 0).float() == domain).float().mean().item()
    assert accuracy > 0.95


def test_dann_lambda_schedule():
    assert dann_lambda(0.0) == 0.0
    assert dann_lambda(1.0) == pytest.approx(2 / (1 + math.exp(-10)) - 1)
    assert dann_lambda(1.0) == pytest.approx(0.9999092, abs=1e-7)
    assert dann_lambda(0.1) == pytest.approx(math.tanh(0.5))  # 2σ(2t) − 1 = tanh(t)
    assert dann_lambda(0.5, gamma=2.0) == pytest.approx(2 / (1 + math.exp(-1)) - 1)
    values = [dann_lambda(p / 10) for p in range(11)]
    assert values == sorted(values)
    for bad in (-0.01, 1.01, float("nan"), "0.5"):
        with pytest.raises(ValueError, match="progress"):
            dann_lambda(bad)


def test_dann_lr_schedule():
    assert dann_lr(0.0, 0.01) == 0.01
    assert dann_lr(1.0, 0.01) == pytest.approx(0.01 / 11**0.75)
    assert dann_lr(0.5, 1.0, alpha=2.0, beta=1.0) == pytest.approx(0.5)
    values = [dann_lr(p / 10, 0.01) for p in range(11)]
    assert values == sorted(values, reverse=True)
    with pytest.raises(ValueError, match="lr0"):
        dann_lr(0.5, 0.0)
    with pytest.raises(ValueError, match="progress"):
        dann_lr(2.0, 0.01)


# --------------------------------------------------------------------------- DomainAdversarialLoss
def _features(n_s=6, n_t=5, d=4, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    zs = torch.randn(n_s, d, generator=gen, dtype=dtype).requires_grad_()
    zt = (torch.randn(n_t, d, generator=gen, dtype=dtype) + 1.0).requires_grad_()
    return zs, zt


def _plain_domain_loss(disc, zs, zt):
    """The same loss with no reversal: BCE of telling source (1) from target (0)."""
    logits = disc(torch.cat([zs, zt]))
    labels = torch.cat([torch.ones(len(zs)), torch.zeros(len(zt))]).to(logits.dtype)
    if logits.dim() == 2 and logits.shape[1] == 2:
        return F.cross_entropy(logits, labels.long()), logits.argmax(1) == labels.long()
    logits = logits.reshape(-1)
    return F.binary_cross_entropy_with_logits(logits, labels), (logits > 0) == labels.bool()


@pytest.mark.parametrize("two_logits", [False, True])
@pytest.mark.parametrize("progress", [0.0, 0.1, 0.5, 1.0])
def test_adversarial_loss_reverses_the_features_gradient_only(two_logits, progress):
    torch.manual_seed(0)
    disc = (
        nn.Sequential(nn.Linear(4, 7), nn.Tanh(), nn.Linear(7, 2))
        if two_logits
        else DomainClassifier(4, hidden=(7,), dropout=0.0)
    ).double()
    adversary = DomainAdversarialLoss(discriminator=disc)
    zs, zt = _features()
    loss = adversary(zs, zt, progress=progress)
    params = list(disc.parameters())
    g_rev = torch.autograd.grad(loss, [zs, zt, *params])
    plain, correct = _plain_domain_loss(disc, zs, zt)
    g_plain = torch.autograd.grad(plain, [zs, zt, *params])
    lam = dann_lambda(progress)
    torch.testing.assert_close(loss, plain)
    for rev, ref in zip(g_rev[:2], g_plain[:2], strict=True):  # the features: −λ_p × gradient
        torch.testing.assert_close(rev, -lam * ref)
    for rev, ref in zip(g_rev[2:], g_plain[2:], strict=True):  # the discriminator: as is
        torch.testing.assert_close(rev, ref)
    assert g_plain[0].abs().sum() > 0
    assert adversary.logs == {
        "domain_accuracy": pytest.approx(correct.double().mean().item()),
        "lambda": pytest.approx(lam),
    }


def test_adversarial_loss_default_discriminator_schedule_and_parameters():
    adversary = DomainAdversarialLoss(in_features=4, schedule=lambda p: 0.25 + p)
    assert isinstance(adversary.discriminator, DomainClassifier)
    names = {n for n, _ in adversary.named_parameters()}
    assert names and all(n.startswith("discriminator.") for n in names)
    adversary.eval()  # no dropout: the two calls below see the same network
    zs, zt = _features(dtype=torch.float32)
    for p in (0.0, 0.5):
        loss = adversary(zs, zt, progress=p)
        assert adversary.logs["lambda"] == 0.25 + p
        assert loss.dtype == torch.float32 and loss.shape == ()
    (g_half,) = torch.autograd.grad(adversary(zs, zt, progress=0.5), zs)
    (g_zero,) = torch.autograd.grad(adversary(zs, zt, progress=0.0), zs)
    torch.testing.assert_close(g_half, 3.0 * g_zero)  # λ = 0.75 vs 0.25


def test_adversarial_loss_is_float32_under_autocast():
    net = nn.Linear(4, 8)
    adversary = DomainAdversarialLoss(in_features=8)
    xs, xt = torch.randn(6, 4), torch.randn(6, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        zs, zt = net(xs), net(xt)
        assert zs.dtype == torch.bfloat16
        loss = adversary(zs, zt, progress=0.3)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert net.weight.grad is not None and torch.isfinite(net.weight.grad).all()


def test_a_few_steps_train_the_discriminator_to_separate_fixed_domains():
    torch.manual_seed(0)
    adversary = DomainAdversarialLoss(discriminator=DomainClassifier(2, hidden=(16,), dropout=0.0))
    opt = torch.optim.Adam(adversary.parameters(), lr=0.05)
    zs, zt = torch.randn(64, 2) + 2.0, torch.randn(64, 2) - 2.0
    losses = []
    for _ in range(30):
        loss = adversary(zs, zt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0] and adversary.logs["domain_accuracy"] > 0.95


def test_adversarial_loss_bad_input():
    with pytest.raises(ValueError, match="in_features"):
        DomainAdversarialLoss()
    adversary = DomainAdversarialLoss(4)
    zs, zt = torch.randn(5, 4), torch.randn(5, 4)
    for p in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            adversary(zs, zt, progress=p)
    with pytest.raises(ValueError, match="same number of features"):
        adversary(zs, torch.randn(5, 3))
    with pytest.raises(ValueError, match=">= 0"):
        DomainAdversarialLoss(4, schedule=lambda p: -1.0)(zs, zt)


@settings(max_examples=20, deadline=None)
@given(st.floats(0.0, 1.0), st.integers(1, 6), st.integers(1, 6))
def test_property_reversal_scales_by_the_schedule(progress, n_s, n_t):
    torch.manual_seed(1)
    disc = DomainClassifier(3, hidden=(5,), dropout=0.0).double()
    zs, zt = _features(n_s, n_t, 3)
    g = torch.autograd.grad(DomainAdversarialLoss(discriminator=disc)(zs, zt, progress), zs)[0]
    ref = torch.autograd.grad(_plain_domain_loss(disc, zs, zt)[0], zs)[0]
    torch.testing.assert_close(g, -dann_lambda(progress) * ref)
