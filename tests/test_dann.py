"""DANN pieces: the gradient reversal layer, the domain classifier, the paper's schedules."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tlearn.adapt import DomainClassifier, GradientReversal, dann_lambda, dann_lr, grad_reverse

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
