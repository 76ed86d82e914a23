"""Transferability scores in tlearn.probes: LEEP written out from its definition with explicit
loops, LogME against the Bayesian evidence computed with dense linear algebra (and maximised
numerically), and cases whose answer is known."""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import linalg, optimize, stats

from tlearn.probes import leep, logme


def _softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _leep_loops(theta, y):
    """LEEP exactly as Nguyen et al. (ICML 2020) write it, one sum at a time."""
    n, Z = len(theta), len(theta[0])
    C = max(y) + 1
    joint = [
        [sum(theta[i][z] for i in range(n) if y[i] == c) / n for z in range(Z)] for c in range(C)
    ]
    cond = [
        [joint[c][z] / sum(joint[c2][z] for c2 in range(C)) for z in range(Z)] for c in range(C)
    ]
    total = 0.0
    for i in range(n):
        total += math.log(sum(cond[y[i]][z] * theta[i][z] for z in range(Z)))
    return total / n


def test_leep_matches_its_definition():
    rng = np.random.default_rng(0)
    for n, Z, C in [(40, 5, 3), (25, 2, 4), (60, 10, 10)]:
        theta = _softmax(rng.normal(0, 2, (n, Z)))
        y = rng.integers(0, C, n)
        expected = _leep_loops(theta.tolist(), y.tolist())
        assert leep(theta, y) == pytest.approx(expected, rel=1e-12)
        assert leep(torch.tensor(theta), torch.tensor(y)) == pytest.approx(expected, rel=1e-12)


def test_leep_known_answers():
    rng = np.random.default_rng(1)
    n, Z = 200, 6
    z = rng.integers(0, Z, n)
    z[:Z] = np.arange(Z)
    onehot = np.eye(Z)[z]
    g = np.array([0, 0, 1, 2, 2, 1])  # target label a function of the source label
    assert leep(onehot, g[z]) == pytest.approx(0.0, abs=1e-12)  # log 1
    # uninformative source: P̂(y | z) = p(y), so LEEP = Σ_y p(y) log p(y) = −H(target labels)
    y = rng.integers(0, 4, n)
    p = np.bincount(y) / n
    assert leep(np.full((n, Z), 1 / Z), y) == pytest.approx((p * np.log(p)).sum(), rel=1e-12)
    # a source that predicts the target well scores above the same predictions shuffled
    theta = _softmax(3 * np.eye(Z)[z] + rng.normal(0, 1, (n, Z)))
    assert leep(theta, g[z]) > leep(theta, rng.permutation(g[z])) + 0.3


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 30), st.integers(1, 6), st.integers(1, 5), st.integers(0, 2**32 - 1))
def test_leep_at_most_zero_and_invariant_to_renaming_source_labels(n, Z, C, seed):
    rng = np.random.default_rng(seed)
    theta = _softmax(rng.normal(0, 3, (n, Z)))
    y = rng.integers(0, C, n)
    assume(len(np.unique(y)) >= 2)  # one target class is refused (test_checks.py)
    score = leep(theta, y)
    assert score <= 1e-12
    perm = rng.permutation(Z)
    assert leep(theta[:, perm], y) == pytest.approx(score, rel=1e-10, abs=1e-12)


# --- LogME ---------------------------------------------------------------------------------


def _direct_evidence(F, y, alpha, beta):
    """log p(y | F, α, β) by the textbook formula with dense matrices (Bishop, PRML eq. 3.86),
    in 40-digit arithmetic: at large β the float64 residual term β/2 ‖F m − y‖² loses digits."""
    mp.mp.dps = 40
    n, d = F.shape
    F_, y_, alpha, beta = mp.matrix(F.tolist()), mp.matrix(y.tolist()), mp.mpf(alpha), mp.mpf(beta)
    A = alpha * mp.eye(d) + beta * F_.T * F_
    m = beta * mp.lu_solve(A, F_.T * y_)
    r = F_ * m - y_
    value = (
        n / 2 * mp.log(beta) + d / 2 * mp.log(alpha) - n / 2 * mp.log(2 * mp.pi)
        - beta / 2 * (r.T * r)[0] - alpha / 2 * (m.T * m)[0] - mp.log(mp.det(A)) / 2
    )  # fmt: skip
    return float(value)


def _evidence_float(F, y, alpha, beta):
    """The same evidence in float64, inverting the smaller matrix: A (d × d) when n > d, else the
    covariance of y once w is integrated out, y ~ N(0, β⁻¹I + α⁻¹FFᵀ) (n × n). Each is well
    conditioned there, so an optimiser can search (α, β) far from LogME's answer."""
    n, d = F.shape
    if n > d:
        A = alpha * np.eye(d) + beta * F.T @ F
        m = beta * np.linalg.solve(A, F.T @ y)
        return (
            n / 2 * np.log(beta) + d / 2 * np.log(alpha) - n / 2 * np.log(2 * np.pi)
            - beta / 2 * np.sum((F @ m - y) ** 2) - alpha / 2 * m @ m
            - np.linalg.slogdet(A)[1] / 2
        )  # fmt: skip
    L = linalg.cholesky(np.eye(n) / beta + F @ F.T / alpha, lower=True)
    z = linalg.solve_triangular(L, y, lower=True)
    return -z @ z / 2 - np.log(np.diag(L)).sum() - n / 2 * np.log(2 * np.pi)


def _data(n, d, C, seed, sep=1.5):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, C, n)
    y[:C] = np.arange(C)
    F = rng.normal(size=(n, d)) + sep * rng.normal(size=(C, d))[y] + 1.0
    return F, y


def test_direct_evidence_is_the_marginal_likelihood():
    F, y = _data(12, 5, 2, seed=3)
    yc = (y == 1).astype(float)
    for alpha, beta in [(0.5, 2.0), (30.0, 0.1)]:
        exact = _direct_evidence(F, yc, alpha, beta)
        # y ~ N(0, β⁻¹I + α⁻¹FFᵀ) once w is integrated out
        cov = np.eye(len(F)) / beta + F @ F.T / alpha
        assert stats.multivariate_normal(np.zeros(len(F)), cov).logpdf(yc) == pytest.approx(exact)
        assert _evidence_float(F, yc, alpha, beta) == pytest.approx(exact, rel=1e-10)
        assert _evidence_float(F[:4], yc[:4], alpha, beta) == pytest.approx(
            _direct_evidence(F[:4], yc[:4], alpha, beta), rel=1e-10
        )


@pytest.mark.parametrize("n,d,C", [(80, 6, 3), (40, 15, 2), (12, 30, 3), (20, 20, 4)])
def test_logme_is_the_maximum_evidence(n, d, C):
    F, y = _data(n, d, C, seed=n + d)
    score, params = logme(F, y, return_params=True)
    assert params["evidence"].shape == (C,)
    assert score == pytest.approx(params["evidence"].mean(), rel=1e-12)
    for c in range(C):
        yc = (y == c).astype(float)
        a, b, best = params["alpha"][c], params["beta"][c], params["evidence"][c]
        # (a) the evidence LogME reports is the evidence at its (α*, β*)
        assert best == pytest.approx(_direct_evidence(F, yc, a, b) / n, abs=1e-10)

        # (b) nothing beats it: a grid and a numerical optimiser over (log α, log β)
        def neg(log_ab, yc=yc):
            return -_evidence_float(F, yc, *np.exp(np.clip(log_ab, -20, 25))) / n

        grid = np.linspace(-8, 14, 45)
        assert -min(neg((la, lb)) for la in grid for lb in grid) <= best + 1e-9
        for start in [(0.0, 0.0), (5.0, 5.0), np.log([a, b])]:
            res = optimize.minimize(neg, np.clip(start, -20, 25), method="Nelder-Mead",
                                    options={"xatol": 1e-8, "fatol": 1e-12, "maxiter": 4000})  # fmt: skip
            assert -res.fun <= best + 1e-9


def test_logme_informative_features_score_above_shuffled_labels():
    rng = np.random.default_rng(4)
    for n, d in [(200, 8), (30, 64)]:
        F, y = _data(n, d, 4, seed=n, sep=3.0)
        shuffled = rng.permutation(y)
        assert logme(F, y) > logme(F, shuffled) + 0.1
        # clearer class structure (means further apart) scores higher
        weak, _ = _data(n, d, 4, seed=n, sep=0.3)
        assert logme(F, y) > logme(weak, y)


def test_logme_inputs_it_should_not_care_about():
    F, y = _data(50, 7, 3, seed=5)
    score = logme(F, y)
    assert logme(torch.tensor(F, dtype=torch.float32), torch.tensor(y)) == pytest.approx(
        score, rel=1e-5
    )
    assert logme(F, np.array([3, 7, 9])[y]) == pytest.approx(score, rel=1e-12)  # label names
    assert logme(F[:, ::-1], y) == pytest.approx(score, rel=1e-10)  # feature order
    # features that explain nothing (orthogonal to every label) give the noise-only evidence
    F0 = np.zeros((4, 2))
    F0[:2, 0], F0[2:, 1] = [1, -1], [1, -1]
    y0 = np.array([0, 0, 1, 1])
    # the best noise-only model: β = n / ‖y‖² = 2, every y_i ~ N(0, 1/β)
    expected = stats.norm(0, np.sqrt(0.5)).logpdf([1, 1, 0, 0]).sum() / 4
    assert logme(F0, y0) == pytest.approx(expected, abs=1e-9)


# --- bad input -----------------------------------------------------------------------------

_P = _softmax(np.random.default_rng(0).normal(size=(6, 3)))


@pytest.mark.parametrize(
    "probs,labels,match",
    [
        (np.random.default_rng(0).normal(size=(6, 3)), [0, 1, 0, 1, 0, 1], "sum to 1|negative"),
        (_P * 2, [0, 1, 0, 1, 0, 1], "sum to 1"),
        (np.array([[1.5, -0.5]] * 6), [0, 1, 0, 1, 0, 1], "negative"),
        (_P, [0, 1, 0, 1, 0, -1], "class indices"),
        (_P, [0, 1, 0, 1, 0, 0.5], "integer"),
        (_P, [0, 1, 0, 1, 0], "6 labels"),
        (_P[0], [0], "n × Z"),
        (np.where(np.eye(6, 3) > 0, np.nan, _P), [0, 1, 0, 1, 0, 1], "NaN"),
    ],
)
def test_leep_rejects_bad_input(probs, labels, match):
    with pytest.raises(ValueError, match=match):
        leep(probs, labels)


@pytest.mark.parametrize(
    "features,labels,match",
    [
        (np.ones((1, 3)), [0], "at least 2"),
        (np.array([[1.0, np.nan], [0.0, 1.0]]), [0, 1], "NaN"),
        (np.array([[1.0, np.inf], [0.0, 1.0]]), [0, 1], "NaN or Inf"),
        (np.eye(3), [1, 1, 1], "single class"),
        (np.eye(3), [0, 1], "3 labels"),
        (np.ones(3), [0, 1, 0], "n × d"),
        (np.eye(3), [0, 1, -2], "class indices"),
    ],
)
def test_logme_rejects_bad_input(features, labels, match):
    with pytest.raises(ValueError, match=match):
        logme(features, labels)
