"""CDAN: the multilinear maps, CDAN+E's weights, the reversed gradient, fit_adapt("cdan")."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from test_trainer import Poisoned, Tiny, _domain, _fit
from torch import nn

from tlearn.adapt import (
    ConditionalAdversarialLoss,
    DomainAdversarialLoss,
    DomainClassifier,
    RandomizedMultilinearMap,
    dann_lambda,
    entropy_weights,
    fit_adapt,
    multilinear_map,
)
from tlearn.adapt.cdan import RANDOMIZE_ABOVE, MultilinearMap
from tlearn.adapt.trainer import METHODS, defaults
from tlearn.data import DigitDataset

pytestmark = pytest.mark.usefixtures("one_thread")


# --------------------------------------------------------------------------- the maps
@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 5), d=st.integers(1, 6), c=st.integers(1, 5), seed=st.integers(0, 999))
def test_multilinear_map_is_the_flattened_outer_product(n, d, c, seed):
    g_ = torch.Generator().manual_seed(seed)
    f, g = torch.randn(n, d, generator=g_), torch.rand(n, c, generator=g_)
    out = multilinear_map(f, g)
    assert out.shape == (n, d * c)
    for k in range(n):  # by hand: entry [k, i·C + j] = f[k, i] · g[k, j]
        for i in range(d):
            for j in range(c):
                assert out[k, i * c + j].item() == pytest.approx(f[k, i].item() * g[k, j].item())
    torch.testing.assert_close(out, torch.einsum("ni,nj->nij", f, g).reshape(n, -1))


def test_randomized_map_follows_its_formula_with_the_stored_matrices():
    torch.manual_seed(0)
    T = RandomizedMultilinearMap(6, 4, output_dim=32)
    assert T.R_f.shape == (32, 6) and T.R_g.shape == (32, 4)
    assert list(T.parameters()) == [] and {"R_f", "R_g"} <= set(T.state_dict())
    f, g = torch.randn(5, 6), torch.softmax(torch.randn(5, 4), 1)
    expected = torch.stack(
        [(T.R_f @ f[k]) * (T.R_g @ g[k]) / math.sqrt(32) for k in range(5)]
    )  # (1/√d) (R_f f) ⊙ (R_g g), one example at a time
    torch.testing.assert_close(T(f, g), expected)
    # drawn from the global RNG: the same seed gives the same map, another seed another one
    torch.manual_seed(0)
    assert torch.equal(RandomizedMultilinearMap(6, 4, output_dim=32).R_f, T.R_f)
    assert not torch.equal(RandomizedMultilinearMap(6, 4, output_dim=32).R_f, T.R_f)


def test_randomized_map_keeps_inner_products_in_expectation():
    """E⟨T⊙(f,g), T⊙(f',g')⟩ = ⟨f,f'⟩⟨g,g'⟩ (Long et al. 2018, Theorem 1): averaged over maps."""
    torch.manual_seed(1)
    f, g = torch.randn(2, 5), torch.softmax(torch.randn(2, 3), 1)
    exact = (multilinear_map(f, g)[0] @ multilinear_map(f, g)[1]).item()
    estimates = []
    for _ in range(400):
        t = RandomizedMultilinearMap(5, 3, output_dim=64)(f, g)
        estimates.append((t[0] @ t[1]).item())
    est = torch.tensor(estimates)
    assert abs(est.mean().item() - exact) < 4 * est.std().item() / math.sqrt(len(est))


def test_map_choice_follows_the_papers_4096_rule():
    assert RANDOMIZE_ABOVE == 4096
    small = ConditionalAdversarialLoss(128, 10)  # 1280 values: the full map
    large = ConditionalAdversarialLoss(512, 10)  # 5120 > 4096: randomized, d = 1024
    assert isinstance(small.map, MultilinearMap) and small.map.output_dim == 1280
    assert isinstance(large.map, RandomizedMultilinearMap) and large.map.output_dim == 1024
    forced = ConditionalAdversarialLoss(8, 3, randomized=True, randomized_dim=16)
    assert isinstance(forced.map, RandomizedMultilinearMap) and forced.map.output_dim == 16
    assert forced.adversary.discriminator.in_features == 16


# --------------------------------------------------------------------------- CDAN+E weights
def _hand_weights(g_s, g_t):
    """1 + e^{-H}, H by a loop over classes; per domain divided by its sum, times its share."""
    out, n = [], len(g_s) + len(g_t)
    for g in (g_s, g_t):
        w = []
        for row in g.tolist():
            h = -sum(p * math.log(p) for p in row if p > 0)
            w.append(1 + math.exp(-h))
        out += [x / sum(w) * len(g) / n for x in w]
    return torch.tensor(out, dtype=torch.float64)


@settings(max_examples=30, deadline=None)
@given(n_s=st.integers(1, 6), n_t=st.integers(1, 6), c=st.integers(2, 5), seed=st.integers(0, 999))
def test_entropy_weights_match_a_hand_computation(n_s, n_t, c, seed):
    g_ = torch.Generator().manual_seed(seed)
    g_s = torch.softmax(3 * torch.randn(n_s, c, generator=g_, dtype=torch.float64), 1)
    g_t = torch.softmax(3 * torch.randn(n_t, c, generator=g_, dtype=torch.float64), 1)
    w = entropy_weights(g_s, g_t)
    torch.testing.assert_close(w, _hand_weights(g_s, g_t))
    # each domain's weights sum to its share of the batch
    assert w[:n_s].sum().item() == pytest.approx(n_s / (n_s + n_t))
    assert w[n_s:].sum().item() == pytest.approx(n_t / (n_s + n_t))


def test_entropy_weights_favour_confident_predictions_and_handle_one_hot():
    one_hot, uniform = torch.tensor([[1.0, 0.0, 0.0]]), torch.full((1, 3), 1 / 3)
    w = entropy_weights(torch.cat([one_hot, uniform]), torch.cat([uniform, uniform]))
    assert torch.isfinite(w).all()
    assert w[0] / w[1] == pytest.approx(2 / (1 + 1 / 3))  # 1 + e^0 vs 1 + e^{-log 3}
    torch.testing.assert_close(w[2:], torch.tensor([0.25, 0.25]))


def test_equal_batches_give_the_authors_normalisation():
    """thuml/CDAN pytorch/loss.py: w/Σ_source + w/Σ_target, the loss Σ w·bce / Σ w (= 2)."""
    torch.manual_seed(2)
    g = torch.softmax(2 * torch.randn(8, 4), 1)
    h = -(g * g.log()).sum(1)
    w = 1 + torch.exp(-h)
    authors = torch.cat([w[:4] / w[:4].sum(), w[4:] / w[4:].sum()]) / 2
    torch.testing.assert_close(entropy_weights(g[:4], g[4:]), authors)


# --------------------------------------------------------------------------- the loss
def _adversary(**kw):
    torch.manual_seed(0)
    clf = DomainClassifier(12, hidden=(7,), dropout=0.0)
    return ConditionalAdversarialLoss(4, 3, discriminator=clf, **kw)


def test_cdan_is_dann_on_the_multilinear_map():
    adversary = _adversary()
    zs, zt = torch.randn(5, 4), torch.randn(6, 4)
    ls, lt = torch.randn(5, 3), torch.randn(6, 3)
    loss = adversary(zs, zt, logits_s=ls, logits_t=lt, progress=0.3)
    dann = DomainAdversarialLoss(discriminator=adversary.adversary.discriminator)
    hs, ht = multilinear_map(zs, ls.softmax(1)), multilinear_map(zt, lt.softmax(1))
    torch.testing.assert_close(loss, dann(hs, ht, progress=0.3))
    uniform = torch.full((11,), 1 / 11)  # weights 1/N give DANN's plain mean
    torch.testing.assert_close(dann(hs, ht, progress=0.3, weights=uniform), loss)
    assert adversary.logs["lambda"] == pytest.approx(dann_lambda(0.3))
    assert 0 <= adversary.logs["domain_accuracy"] <= 1


def test_cdan_e_is_the_entropy_weighted_mean_of_the_domain_losses():
    adversary = _adversary(entropy_conditioning=True)
    zs, zt = torch.randn(5, 4), torch.randn(6, 4)
    ls, lt = 3 * torch.randn(5, 3), 3 * torch.randn(6, 3)
    loss = adversary(zs, zt, logits_s=ls, logits_t=lt)
    gs, gt = ls.softmax(1), lt.softmax(1)
    d = adversary.adversary.discriminator(
        torch.cat([multilinear_map(zs, gs), multilinear_map(zt, gt)])
    )
    bce = F.binary_cross_entropy_with_logits(
        d, torch.cat([torch.ones(5), torch.zeros(6)]), reduction="none"
    )
    w = _hand_weights(gs.double(), gt.double()).float()
    torch.testing.assert_close(loss, (w * bce).sum())
    plain = _adversary()(zs, zt, logits_s=ls, logits_t=lt)
    assert not torch.allclose(loss, plain)  # the weights change the loss


@pytest.mark.parametrize("entropy_conditioning", [False, True])
def test_reversed_gradient_reaches_the_features_and_not_the_predictions(entropy_conditioning):
    adversary = _adversary(entropy_conditioning=entropy_conditioning)
    zs, zt = torch.randn(5, 4, requires_grad=True), torch.randn(5, 4, requires_grad=True)
    ls, lt = torch.randn(5, 3, requires_grad=True), torch.randn(5, 3, requires_grad=True)
    loss = adversary(zs, zt, logits_s=ls, logits_t=lt, progress=0.5)
    loss.backward()
    assert ls.grad is None and lt.grad is None  # g is detached
    # the same loss without reversal: the features get exactly −λ times its gradient
    zs2, zt2 = zs.detach().requires_grad_(), zt.detach().requires_grad_()
    d = adversary.adversary.discriminator
    gs, gt = ls.detach().softmax(1), lt.detach().softmax(1)
    logits = d(torch.cat([multilinear_map(zs2, gs), multilinear_map(zt2, gt)]))
    bce = F.binary_cross_entropy_with_logits(
        logits, torch.cat([torch.ones(5), torch.zeros(5)]), reduction="none"
    )
    w = entropy_weights(gs, gt) if entropy_conditioning else torch.full((10,), 0.1)
    (w * bce).sum().backward()
    lam = dann_lambda(0.5)
    torch.testing.assert_close(zs.grad, -lam * zs2.grad)
    torch.testing.assert_close(zt.grad, -lam * zt2.grad)
    assert zs.grad.abs().sum() > 0
    # the discriminator itself learns to separate (its gradient is not reversed)
    assert all(p.grad is not None for p in d.parameters())


def test_randomized_cdan_trains_no_map_and_sends_gradient_to_features():
    torch.manual_seed(0)
    adversary = ConditionalAdversarialLoss(4, 3, randomized=True, randomized_dim=8)
    R_f = adversary.map.R_f.clone()
    assert all(p is not adversary.map.R_f for p in adversary.parameters())
    zs = torch.randn(4, 4, requires_grad=True)
    loss = adversary(zs, torch.randn(4, 4), logits_s=torch.randn(4, 3), logits_t=torch.randn(4, 3))
    loss.backward()
    assert zs.grad.abs().sum() > 0 and torch.equal(adversary.map.R_f, R_f)


def test_clear_errors():
    adversary = _adversary()
    zs, zt = torch.randn(4, 4), torch.randn(4, 4)
    with pytest.raises(ValueError, match="needs the class logits.*logits_s"):
        adversary(zs, zt)
    with pytest.raises(ValueError, match="logits_t"):
        adversary(zs, zt, logits_s=torch.randn(4, 3))
    with pytest.raises(ValueError, match=r"logits_s must be class logits of shape \(4, C\)"):
        adversary(zs, zt, logits_s=torch.randn(3, 3), logits_t=torch.randn(4, 3))
    with pytest.raises(ValueError, match=r"\(N, 4\).*\(N, 3\)"):
        adversary(zs, zt, logits_s=torch.randn(4, 5), logits_t=torch.randn(4, 5))
    with pytest.raises(ValueError, match="needs num_classes"):
        ConditionalAdversarialLoss(4, None)
    with pytest.raises(ValueError, match="in_features must be a positive int"):
        ConditionalAdversarialLoss(0, 3)
    with pytest.raises(ValueError, match="must have one row per example"):
        multilinear_map(torch.randn(3, 2), torch.randn(4, 2))
    with pytest.raises(ValueError, match="same number of classes"):
        entropy_weights(torch.rand(3, 2), torch.rand(3, 4))
    with pytest.raises(ValueError, match="weights must be a tensor of shape"):
        DomainAdversarialLoss(4)(zs, zt, weights=torch.ones(3))


# --------------------------------------------------------------------------- with fit_adapt
@pytest.mark.parametrize("method", ["cdan", "cdan_e"])
def test_fit_adapt_trains_with_cdan_and_its_defaults(method):
    assert defaults(method) == defaults("dann")  # weight 1, per_domain, reestimate_bn …
    assert METHODS[method].lr_schedule(1.0) == pytest.approx(METHODS["dann"].lr_schedule(1.0))
    adversary = METHODS[method].build(6, num_classes=3)
    assert adversary.entropy_conditioning == (method == "cdan_e")
    assert adversary.map.output_dim == 18
    torch.manual_seed(123)
    before = Tiny()  # the initialisation _fit starts from
    net, hist = _fit(method, lr=0.01)
    rec = hist.last
    assert rec["align_loss"] > 0 and 0 < rec["lambda"] <= 1 and 0 <= rec["domain_accuracy"] <= 1
    assert rec["train_loss"] == pytest.approx(rec["class_loss"] + rec["align_loss"], rel=1e-5)
    assert any(
        not torch.equal(p, q) for p, q in zip(net.parameters(), before.parameters(), strict=True)
    )


def test_fit_adapt_cdan_never_reads_target_labels():
    target = _domain(20, 2, 0.5)
    a, _ = _fit("cdan_e", target=target)
    b, _ = _fit("cdan_e", target=Poisoned(target.images))
    c, _ = _fit("cdan_e", target=DigitDataset(target.images, torch.zeros(20, dtype=torch.long)))
    for other in (b, c):
        for (k, va), vb in zip(a.state_dict().items(), other.state_dict().values(), strict=True):
            assert torch.equal(va, vb), k


def test_fit_adapt_tells_the_builder_the_number_of_classes():
    seen = {}

    def build(d, num_classes, **kw):
        seen.update(d=d, num_classes=num_classes, **kw)
        return ConditionalAdversarialLoss(d, num_classes, **kw)

    from tlearn.adapt import register_method

    register_method("cdan_spy", build)
    try:
        _fit("cdan_spy", epochs=1, randomized=True, randomized_dim=8)
    finally:
        del METHODS["cdan_spy"]
    assert seen == {"d": 6, "num_classes": 3, "randomized": True, "randomized_dim": 8}


class NoLogits(nn.Module):
    """Features, but an output that is not (N, C) class logits."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(64, 6))

    def forward(self, x):
        return self.features(x).sum(1)


def test_fit_adapt_cdan_on_a_model_without_logits_says_what_is_needed():
    with pytest.raises(ValueError, match="needs num_classes.*logits of shape"):
        fit_adapt(NoLogits(), _domain(16, 1), _domain(16, 2), "cdan", epochs=1, batch_size=8,
                  device="cpu", progress=False)  # fmt: skip
