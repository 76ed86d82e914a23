"""Kernels: pairwise distances, Gaussian / multi / linear kernels and γ₀ against SciPy and loops."""

import math

import numpy as np
import pytest
import scipy.spatial.distance
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tlearn.adapt.kernels import (
    DEFAULT_MULTIPLIERS,
    gaussian_kernel,
    linear_kernel,
    mean_sq_distance,
    multi_kernel,
    sq_distances,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 7), st.integers(1, 7), st.integers(1, 5), st.integers(0, 2**31 - 1))
def test_sq_distances_match_scipy(m, n, d, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(m, d)) * 10, rng.normal(size=(n, d)) * 10 + 3
    expected = scipy.spatial.distance.cdist(a, b, "sqeuclidean")
    got = sq_distances(torch.tensor(a), torch.tensor(b))
    assert got.shape == (m, n) and (got >= 0).all()
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-9, atol=1e-9)


def test_kernels_match_their_formulas_by_loops():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4, 3)), rng.normal(size=(5, 3))
    d2 = sq_distances(torch.tensor(a), torch.tensor(b)).numpy()
    gamma0 = 1.7
    for i in range(4):
        for j in range(5):
            sq = sum((a[i, k] - b[j, k]) ** 2 for k in range(3))
            gauss = gaussian_kernel(torch.tensor(sq), gamma0).item()
            assert gauss == pytest.approx(math.exp(-sq / gamma0), rel=1e-12)
            multi = sum(math.exp(-sq / (al * gamma0)) for al in DEFAULT_MULTIPLIERS)
            assert multi_kernel(torch.tensor(d2[i, j]), gamma0).item() == pytest.approx(multi)
            dot = sum(a[i, k] * b[j, k] for k in range(3))
            lin = linear_kernel(torch.tensor(a), torch.tensor(b))[i, j].item()
            assert lin == pytest.approx(dot, rel=1e-12)


def test_mean_sq_distance_is_the_joint_mean_and_detached():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(6, 2)), rng.normal(size=(9, 2)) + 2.0
    pooled = np.vstack([a, b])
    expected = scipy.spatial.distance.cdist(pooled, pooled, "sqeuclidean").mean()
    zs = torch.tensor(a, requires_grad=True)
    gamma0 = mean_sq_distance(zs, torch.tensor(b))
    assert gamma0.item() == pytest.approx(expected, rel=1e-12) and not gamma0.requires_grad
    same = mean_sq_distance(torch.ones(3, 2), torch.ones(4, 2))  # identical points: floored
    assert 0 < same.item() < 1e-15 and torch.isfinite(1 / same)
