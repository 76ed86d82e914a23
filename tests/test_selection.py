"""tlearn.adapt.selection: IWCV, DEV, density ratios, SND, prediction entropy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr

from tlearn.adapt import selection

SIZES = st.integers(min_value=2, max_value=40)
SEEDS = st.integers(min_value=0, max_value=2**32 - 1)


def _errors_and_weights(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 3, n), rng.lognormal(0.0, 1.0, n)


@settings(max_examples=60, deadline=None)
@given(n=SIZES, seed=SEEDS)
def test_dev_risk_is_the_formula(n, seed):
    """mean(w·e) + η·mean(w) − η, η = −Cov(w·e, w)/Var(w), written with plain sums (ddof 1)."""
    e, w = _errors_and_weights(n, seed)
    we = w * e
    cov = ((we - we.mean()) * (w - w.mean())).sum() / (n - 1)
    var = ((w - w.mean()) ** 2).sum() / (n - 1)
    eta = -cov / var
    expected = we.mean() + eta * w.mean() - eta
    assert selection.dev_risk(e, w) == pytest.approx(expected, abs=1e-10, rel=1e-10)
    assert selection.iwcv_risk(e, w) == pytest.approx(we.mean(), abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(min_value=3, max_value=40), seed=SEEDS, shift=st.floats(-5, 5))
def test_dev_shifts_with_the_errors_where_iwcv_does_not(n, seed, shift):
    """DEV(e + c) = DEV(e) + c exactly (the control variate absorbs c·(w̄ − 1)); a wrong sign of
    η would give DEV + c·(2w̄ − 1) instead. IWCV shifts by c·w̄."""
    e, w = _errors_and_weights(n, seed)
    assert selection.dev_risk(e + shift, w) == pytest.approx(
        selection.dev_risk(e, w) + shift, abs=1e-9
    )
    assert selection.iwcv_risk(e + shift, w) == pytest.approx(
        selection.iwcv_risk(e, w) + shift * w.mean(), abs=1e-9
    )


def test_dev_removes_the_part_of_the_weighted_error_that_follows_the_weights():
    """When w·e = a + b·w exactly, the weights' sample mean is the only noise: DEV = a + b
    (the value at E[w] = 1) on any sample, while IWCV = a + b·w̄ is off by b·(w̄ − 1)."""
    rng = np.random.default_rng(0)
    a, b = 0.3, 0.5
    for _ in range(5):
        w = rng.lognormal(0.0, 0.8, 25)
        e = (a + b * w) / w
        assert selection.dev_risk(e, w) == pytest.approx(a + b, abs=1e-10)
        assert abs(selection.iwcv_risk(e, w) - (a + b)) == pytest.approx(b * abs(w.mean() - 1))


def test_dev_equals_iwcv_for_constant_weights_and_accepts_tensors():
    e = np.array([0.0, 1.0, 1.0, 0.0, 1.0])
    for c in (1.0, 2.5):
        w = np.full(5, c)
        assert selection.dev_risk(e, w) == selection.iwcv_risk(e, w) == pytest.approx(0.6 * c)
    assert selection.dev_risk(torch.tensor(e), torch.ones(5)) == pytest.approx(0.6)


@pytest.mark.parametrize("fn", [selection.dev_risk, selection.iwcv_risk])
def test_risk_inputs_are_checked(fn):
    with pytest.raises(ValueError, match="one value per example"):
        fn([1.0, 2.0, 3.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="at least 2"):
        fn([1.0], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        fn([1.0, math.nan], [1.0, 1.0])
    with pytest.raises(ValueError, match=">= 0"):
        fn([1.0, 1.0], [1.0, -1.0])
    with pytest.raises(ValueError, match="shape"):
        fn([[1.0, 1.0]], [[1.0, 1.0]])


def _snd_by_loops(probs: np.ndarray, temperature: float) -> float:
    """SND as the paper describes it, one example and one neighbour at a time."""
    n = len(probs)
    unit = [p / math.sqrt(sum(v * v for v in p)) for p in probs]
    total = 0.0
    for i in range(n):
        sims = [float(np.dot(unit[i], unit[j])) / temperature for j in range(n) if j != i]
        top = max(sims)
        z = sum(math.exp(s - top) for s in sims)
        row = [math.exp(s - top) / z for s in sims]
        total += -sum(q * math.log(q) for q in row if q > 0)
    return total / n


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 12), c=st.integers(2, 6), seed=SEEDS, t=st.sampled_from([0.05, 0.5, 2.0]))
def test_snd_matches_a_plain_loop(n, c, seed, t):
    logits = np.random.default_rng(seed).normal(0, 3, (n, c))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert selection.snd(probs, temperature=t) == pytest.approx(_snd_by_loops(probs, t), abs=1e-6)


def test_snd_is_higher_when_each_example_has_more_near_neighbours():
    """Ten examples in two clusters of five: each has four near neighbours (SND ≈ log 4); in
    five pairs each has one (SND ≈ 0: its softmax puts almost everything on its mate)."""
    clustered = np.repeat(np.eye(2), 5, axis=0) * 0.9 + 0.05
    pairs = np.repeat(np.eye(5), 2, axis=0) * 0.9 + 0.02
    assert selection.snd(clustered) == pytest.approx(math.log(4), abs=1e-3)
    assert selection.snd(pairs) < 0.1
    with pytest.raises(ValueError, match="n >= 2"):
        selection.snd(np.ones((1, 3)) / 3)
    with pytest.raises(ValueError, match="temperature"):
        selection.snd(clustered, temperature=0.0)
    with pytest.raises(ValueError, match="negative"):
        selection.snd(-clustered)


def test_prediction_entropy():
    assert selection.prediction_entropy([[0.25] * 4, [1.0, 0, 0, 0]]) == pytest.approx(
        math.log(4) / 2
    )
    assert selection.prediction_entropy(torch.eye(3)) == 0.0
    with pytest.raises(ValueError, match="NaN"):
        selection.prediction_entropy([[math.nan, 1.0]])


def test_density_ratios_recover_the_ratio_of_two_gaussians():
    """Source N(0, I), target N(μ, I) in 2-d: p_t(x)/p_s(x) = exp(μ·x − ‖μ‖²/2), and its mean
    over the source is 1. Unequal domain sizes test the n_s/n_t factor (a factor 2 here)."""
    rng = np.random.default_rng(0)
    mu = np.array([1.0, -0.5])
    xs, xt = rng.normal(size=(2000, 2)), rng.normal(size=(1000, 2)) + mu
    w = selection.density_ratios(xs, xt, seed=0)
    true = np.exp(xs @ mu - mu @ mu / 2)
    assert w.shape == (2000,) and (w > 0).all()
    assert spearmanr(w, true).statistic > 0.95
    assert np.median(np.abs(np.log(w) - np.log(true))) < 0.15
    assert w.mean() == pytest.approx(1.0, abs=0.1)
    same = selection.density_ratios(xs[:500], rng.normal(size=(500, 2)), seed=0)
    assert np.median(np.abs(np.log(same))) < 0.15  # one domain twice: ratios near 1


def test_density_ratios_inputs_are_checked():
    x = np.zeros((10, 3))
    with pytest.raises(ValueError, match="same number of features, got 3 and 2"):
        selection.density_ratios(x, np.zeros((10, 2)))
    with pytest.raises(ValueError, match="folds"):
        selection.density_ratios(x, x, folds=1)
    with pytest.raises(ValueError, match="NaN"):
        selection.density_ratios(np.full((10, 3), np.nan), x)
