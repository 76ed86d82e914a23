"""Proxy A-distance: ≈ 0 for one distribution, ≈ 2 for separated ones, honest with unequal sizes."""

import numpy as np
import pytest
import torch

from tlearn.adapt import proxy_a_distance

pytestmark = pytest.mark.usefixtures("one_thread")


def _gauss(seed, n, d=5, shift=0.0):
    return np.random.default_rng(seed).normal(size=(n, d)) + shift


def test_same_distribution_is_near_zero_and_separated_is_two():
    assert proxy_a_distance(_gauss(0, 400), _gauss(1, 400)) < 0.3
    assert proxy_a_distance(_gauss(0, 400), _gauss(1, 400, shift=5.0)) > 1.95
    separable = proxy_a_distance(np.r_[0.0, 1, 2, 3][:, None], np.r_[10.0, 11, 12, 13][:, None])
    assert separable == 2.0


def test_grows_with_the_shift():
    values = [proxy_a_distance(_gauss(0, 300), _gauss(1, 300, shift=s)) for s in (0.0, 0.3, 1.0)]
    assert values == sorted(values) and values[2] - values[0] > 1.0


def test_unequal_sizes_do_not_inflate_the_distance():
    # 1000 vs 100 samples of one distribution: "always say source" has plain error 0.09,
    # which would read as d_A = 1.64; the balanced error keeps it near 0
    assert proxy_a_distance(_gauss(0, 1000), _gauss(1, 100)) < 0.4


def test_far_apart_is_exactly_two_and_a_tiny_perturbation_is_near_zero():
    zs, zt = _gauss(2, 200, d=2), _gauss(3, 200, d=2, shift=8.0)
    value = proxy_a_distance(zs, zt, test_size=0.5, seed=0)
    assert value == 2.0
    assert 0.0 <= proxy_a_distance(zs, zs + 1e-3 * _gauss(4, 200, d=2)) <= 0.3


def test_types_range_and_determinism():
    zs, zt = _gauss(0, 120), _gauss(1, 150, shift=0.5)
    a = proxy_a_distance(zs, zt, seed=3)
    assert isinstance(a, float) and 0.0 <= a <= 2.0
    assert proxy_a_distance(zs, zt, seed=3) == a
    assert proxy_a_distance(zs=zs, zt=zt, seed=3) == a  # the feature sets are zs, zt
    b = proxy_a_distance(torch.tensor(zs, dtype=torch.float32), torch.tensor(zt), seed=3)
    assert b == pytest.approx(a, abs=0.05)


@pytest.mark.parametrize(
    "zs,zt,kwargs,match",
    [
        (np.zeros(10), np.zeros((10, 2)), {}, "2-D"),
        (np.zeros((10, 3)), np.zeros((10, 2)), {}, "same number of features"),
        (np.zeros((1, 2)), np.zeros((10, 2)), {}, "at least 2 rows"),
        (np.full((10, 2), np.nan), np.zeros((10, 2)), {}, "NaN or Inf"),
        (np.zeros((10, 2)), np.zeros((10, 2)), dict(test_size=1.5), "test_size"),
        (np.zeros((10, 2)), np.zeros((10, 2)), dict(test_size=1), "test_size"),
        (np.zeros((10, 2)), np.zeros((10, 2)), dict(C=0.0), "C must"),
        (np.zeros((2, 2)), np.zeros((10, 2)), dict(test_size=0.1), "too few"),
    ],
)
def test_bad_inputs_raise(zs, zt, kwargs, match):
    with pytest.raises(ValueError, match=match):
        proxy_a_distance(zs, zt, **kwargs)
