"""MMD: every kernel × estimator against explicit Python loops, gradients, the permutation test."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tlearn.adapt import MMDLoss, mmd, mmd_test
from tlearn.adapt.kernels import DEFAULT_MULTIPLIERS
from tlearn.adapt.mmd import plain_mmd

pytestmark = pytest.mark.usefixtures("one_thread")


# --------------------------------------------------------------------------- reference
def reference_mmd(x, y, kernel="multi", bandwidth=None, estimator="biased"):
    """MMD² by explicit loops over pairs, in Python floats: the definitions, nothing clever."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    pooled = np.vstack([x, y])

    def sqdist(a, b):
        return sum((ai - bi) ** 2 for ai, bi in zip(a, b, strict=True))

    if kernel == "linear":

        def k(a, b):
            return sum(ai * bi for ai, bi in zip(a, b, strict=True))
    else:
        if bandwidth is None or isinstance(bandwidth, list):
            total = sum(sqdist(a, b) for a in pooled for b in pooled)
            gamma0 = total / len(pooled) ** 2
        else:
            gamma0 = bandwidth
        if kernel == "gaussian":
            alphas = [1.0]
        else:
            alphas = bandwidth if isinstance(bandwidth, list) else list(DEFAULT_MULTIPLIERS)

        def k(a, b):
            return sum(math.exp(-sqdist(a, b) / (al * gamma0)) for al in alphas)

    m, n = len(x), len(y)
    if estimator == "linear-time":
        h = [
            k(x[2 * i], x[2 * i + 1])
            + k(y[2 * i], y[2 * i + 1])
            - k(x[2 * i], y[2 * i + 1])
            - k(x[2 * i + 1], y[2 * i])
            for i in range(m // 2)
        ]
        return sum(h) / len(h)
    skip = estimator == "unbiased"
    kxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if not (skip and i == j))
    kyy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if not (skip and i == j))
    kxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n))
    if skip:
        return kxx / (m * (m - 1)) + kyy / (n * (n - 1)) - 2 * kxy / (m * n)
    return kxx / m**2 + kyy / n**2 - 2 * kxy / (m * n)


KERNELS = [
    ("multi", None),
    ("gaussian", None),
    ("linear", None),
    ("gaussian", 2.5),
    ("multi", 3.0),
    ("multi", [0.3, 1.7]),  # not a power-of-two ladder: one exp per kernel
    ("multi", [1.0, 1.0, 2.0]),  # a ladder with a repeated kernel
    ("multi", [0.5, 2**0.5, 8.0]),
]


@pytest.mark.parametrize("kernel,bandwidth", KERNELS)
@pytest.mark.parametrize("estimator", ["biased", "unbiased", "linear-time"])
def test_matches_explicit_loops(kernel, bandwidth, estimator):
    rng = np.random.default_rng(len(str(bandwidth)) + len(kernel))
    m, n = (7, 7) if estimator == "linear-time" else (5, 4)  # odd: the last sample is dropped
    x = rng.normal(size=(m, 3))
    y = rng.normal(size=(n, 3)) * 1.5 + 0.7
    expected = reference_mmd(x, y, kernel, bandwidth, estimator)
    got = mmd(torch.tensor(x), torch.tensor(y), kernel, bandwidth, estimator)
    assert got.dtype == torch.float64 and got.shape == ()
    assert got.item() == pytest.approx(
        max(expected, 0.0) if estimator == "biased" else expected, rel=1e-9, abs=1e-12
    )
    got32 = mmd(torch.tensor(x).float(), torch.tensor(y).float(), kernel, bandwidth, estimator)
    assert got32.dtype == torch.float32
    assert got32.item() == pytest.approx(expected, rel=1e-4, abs=1e-5)
    module = MMDLoss(kernel, bandwidth, estimator)
    assert module(torch.tensor(x), torch.tensor(y)).item() == pytest.approx(got.item(), rel=1e-12)
    assert repr(module).startswith("MMDLoss(kernel=")


def test_zero_dimensional_bandwidth_is_a_number():
    x, y = torch.randn(6, 2, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    for bw in (torch.tensor(2.0), np.float64(2.0), np.array(2.0)):
        assert mmd(x, y, "gaussian", bw).item() == mmd(x, y, "gaussian", 2.0).item()


def test_numpy_input_and_unequal_batches():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 2)), rng.normal(size=(9, 2))
    assert mmd(x, y).item() == pytest.approx(reference_mmd(x, y), rel=1e-9)


def test_linear_kernel_is_squared_mean_difference_even_far_from_the_origin():
    torch.manual_seed(0)
    x, y = torch.randn(300, 20) + 1000.0, torch.randn(200, 20) * 2 + 1000.5
    expected = (x.double().mean(0) - y.double().mean(0)).pow(2).sum()
    assert mmd(x, y, kernel="linear").item() == pytest.approx(expected.item(), rel=1e-4)
    # the Gaussian kernels in float32 must not lose the signal to the large offset
    exact = mmd(x.double(), y.double()).item()
    assert mmd(x, y).item() == pytest.approx(exact, rel=1e-3)


def test_multi_kernel_is_the_sum_of_its_gaussians():
    rng = np.random.default_rng(1)
    x, y = torch.tensor(rng.normal(size=(8, 3))), torch.tensor(rng.normal(size=(6, 3)) + 0.5)
    pooled = torch.cat([x, y])
    gamma0 = torch.cdist(pooled, pooled).pow(2).mean().item()
    for estimator in ("biased", "unbiased"):
        parts = [mmd(x, y, "gaussian", a * gamma0, estimator) for a in DEFAULT_MULTIPLIERS]
        assert mmd(x, y, estimator=estimator).item() == pytest.approx(sum(parts).item(), rel=1e-9)
    assert mmd(x, y, "multi", [1.0]).item() == pytest.approx(
        mmd(x, y, "gaussian").item(), rel=1e-12
    )


def test_unbiased_is_centred_on_zero_and_biased_is_positive_when_p_equals_q():
    gen = torch.Generator().manual_seed(0)
    draws = {"biased": [], "unbiased": [], "linear-time": []}
    for _ in range(300):
        x, y = torch.randn(16, 3, generator=gen), torch.randn(16, 3, generator=gen)
        for est in draws:
            draws[est].append(mmd(x, y, estimator=est).item())
    for est in ("unbiased", "linear-time"):
        v = np.array(draws[est])
        assert abs(v.mean()) < 3.5 * v.std() / np.sqrt(len(v)), est
        assert 0.2 < (v < 0).mean() < 0.8, est  # negative on a good share of batches: expected
    b = np.array(draws["biased"])
    assert (b > 0).all() and b.mean() > 10 * b.std() / np.sqrt(len(b))
    # ... while a real shift moves the unbiased estimate clearly above zero
    x, y = torch.randn(64, 3, generator=gen), torch.randn(64, 3, generator=gen) + 1.0
    assert mmd(x, y, estimator="unbiased").item() > 4 * np.array(draws["unbiased"]).std()


def test_larger_shift_gives_larger_mmd():
    torch.manual_seed(0)
    x, noise = torch.randn(128, 4), torch.randn(128, 4)
    values = [mmd(x, noise + s).item() for s in (0.0, 0.5, 1.0, 2.0)]
    assert values == sorted(values) and values[0] < 0.3 * values[1]


# --------------------------------------------------------------------------- gradients
@pytest.mark.parametrize(
    "kernel,bandwidth",
    [("multi", 2.0), ("gaussian", 1.5), ("linear", None), ("multi", 0.2)],
)
@pytest.mark.parametrize("estimator", ["biased", "unbiased", "linear-time"])
def test_gradcheck(kernel, bandwidth, estimator):
    # a fixed bandwidth: the data-driven γ₀ is a constant by design, which finite
    # differences would not know
    gen = torch.Generator().manual_seed(3)
    m = 6 if estimator == "linear-time" else 5
    x = torch.randn(m, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    y = (torch.randn(6, 3, dtype=torch.float64, generator=gen) + 0.5).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: mmd(a, b, kernel, bandwidth, estimator), (x, y))
    assert torch.autograd.gradcheck(
        lambda a: mmd(a, y.detach(), kernel, bandwidth, estimator), (x,)
    )


# --------------------------------------------------------------------------- fast == plain
FAST_KERNELS = [
    ("multi", None),  # the default power-of-two ladder: repeated squaring
    ("gaussian", None),
    ("gaussian", 1.7),
    ("multi", 2.0),
    ("multi", [1.0, 1.0, 2.0]),  # a ladder with a repeated kernel
    ("multi", [0.3, 1.7]),  # not a ladder: one exp per kernel
    ("linear", None),  # plain path: checked too, so every kernel is covered
]
SHAPES = [(5, 5, 3), (9, 6, 4), (4, 11, 1), (33, 17, 8)]


@pytest.mark.parametrize("kernel,bandwidth", FAST_KERNELS)
@pytest.mark.parametrize("estimator", ["biased", "unbiased", "linear-time"])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 2e-4)])
def test_fast_equals_plain_in_value_and_gradient(kernel, bandwidth, estimator, dtype, tol):
    """mmd (with the tricks of _fast.py) vs plain_mmd (the textbook), value and gradient."""
    gen = torch.Generator().manual_seed(11)
    for m, n, d in SHAPES:
        if estimator == "linear-time":
            n = m
        x = (torch.randn(m, d, generator=gen) * 2.0 + 3.0).to(dtype).requires_grad_()
        y = (torch.randn(n, d, generator=gen) * 1.3 + 2.5).to(dtype).requires_grad_()
        fast = mmd(x, y, kernel, bandwidth, estimator)
        plain = plain_mmd(x, y, kernel, bandwidth, estimator)
        assert fast.dtype == plain.dtype == dtype
        scale = max(abs(plain.item()), 1e-3)
        assert abs(fast.item() - plain.item()) <= tol * scale, (m, n, d)
        g_fast = torch.autograd.grad(fast, (x, y))
        g_plain = torch.autograd.grad(plain, (x, y))
        for a, b in zip(g_fast, g_plain, strict=True):
            g_scale = max(b.abs().max().item(), 1e-6)
            assert (a - b).abs().max().item() <= 10 * tol * g_scale, (m, n, d)


@settings(max_examples=30, deadline=None)
@given(
    st.integers(2, 12),
    st.integers(2, 12),
    st.integers(1, 6),
    st.sampled_from(["biased", "unbiased"]),
    st.integers(0, 2**31 - 1),
)
def test_property_fast_equals_plain_float64(m, n, d, estimator, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(m, d, dtype=torch.float64, generator=gen).requires_grad_()
    y = (torch.randn(n, d, dtype=torch.float64, generator=gen) + 0.5).requires_grad_()
    fast, plain = mmd(x, y, estimator=estimator), plain_mmd(x, y, estimator=estimator)
    if estimator == "biased":
        plain = plain.clamp_min(0.0)
    torch.testing.assert_close(fast, plain, rtol=1e-9, atol=1e-12)
    g_fast, g_plain = torch.autograd.grad(fast, (x, y)), torch.autograd.grad(plain, (x, y))
    for a, b in zip(g_fast, g_plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-11)


@pytest.mark.parametrize("estimator", ["biased", "unbiased"])
@pytest.mark.parametrize("multipliers", [DEFAULT_MULTIPLIERS, (0.3, 1.7)])
def test_gradient_matches_autograd_of_a_plain_implementation(estimator, multipliers):
    """The hand-written backward vs autograd through the textbook formula (γ₀ detached)."""
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(9, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    y = (torch.randn(7, 4, dtype=torch.float64, generator=gen) * 2).requires_grad_()

    def plain(a, b):
        pooled = torch.cat([a, b])
        gamma0 = torch.cdist(pooled, pooled).pow(2).mean().detach()

        def k(p, q):
            d2 = (p[:, None, :] - q[None, :, :]).pow(2).sum(-1)
            return sum(torch.exp(-d2 / (al * gamma0)) for al in multipliers)

        kxx, kyy, kxy = k(a, a), k(b, b), k(a, b)
        m, n = len(a), len(b)
        if estimator == "biased":
            return kxx.mean() + kyy.mean() - 2 * kxy.mean()
        off = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
        return off + (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1)) - 2 * kxy.mean()

    ours = mmd(x, y, "multi", list(multipliers), estimator, detach_bandwidth=True)
    ours = torch.autograd.grad(ours, (x, y))
    ref = torch.autograd.grad(plain(x, y), (x, y))
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, b)


# --------------------------------------------------------------------------- precision
def test_float32_under_bf16_autocast_and_half_inputs():
    torch.manual_seed(0)
    x, y = torch.randn(64, 32), torch.randn(48, 32) + 0.3
    expected = {est: mmd(x, y, estimator=est) for est in ("biased", "unbiased")}
    lin = torch.nn.Linear(32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for est, value in expected.items():
            got = mmd(x, y, estimator=est)
            assert got.dtype == torch.float32
            torch.testing.assert_close(got, value)
        feats_x, feats_y = lin(x), lin(y)
        assert feats_x.dtype == torch.bfloat16
        loss = mmd(feats_x, feats_y)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(lin.weight.grad).all() and lin.weight.grad.abs().sum() > 0
    x.requires_grad_()
    grad_fp32 = torch.autograd.grad(mmd(x, y), x)[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):  # backward inside autocast, too
        grad_amp = torch.autograd.grad(mmd(x, y), x)[0]
    assert grad_amp.dtype == torch.float32
    torch.testing.assert_close(grad_amp, grad_fp32)
    x = x.detach()
    for dtype in (torch.float16, torch.bfloat16):
        xh, yh = (x * 300).to(dtype), (y * 300).to(dtype)  # squared distances overflow fp16
        for est in ("biased", "unbiased", "linear-time"):
            yy = yh[:64] if est != "linear-time" else torch.cat([yh, yh])[:64]
            got = mmd(xh, yy, estimator=est)
            assert got.dtype == torch.float32 and torch.isfinite(got)
            assert got.item() == pytest.approx(mmd(xh.float(), yy.float(), estimator=est).item())


def test_loss_modules_follow_the_alignment_contract_under_autocast():
    """forward(zs, zt) → a float32 scalar, even when the features are bf16."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(8, 8)
    for module in (MMDLoss(), MMDLoss("gaussian", estimator="unbiased"), MMDLoss("linear")):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = module(lin(torch.randn(16, 8)), lin(torch.randn(12, 8) + 1.0))
        assert loss.dtype == torch.float32 and loss.shape == () and torch.isfinite(loss)


pairs = st.integers(2, 9).flatmap(
    lambda n: st.integers(1, 5).flatmap(
        lambda d: st.tuples(
            arrays(np.float32, (n, d), elements=st.floats(-1e3, 1e3, width=32)),
            arrays(np.float32, (n, d), elements=st.floats(-1e3, 1e3, width=32)),
        )
    )
)


@settings(max_examples=60, deadline=None)
@given(pairs, st.sampled_from(["multi", "gaussian", "linear"]))
def test_property_finite_and_biased_nonnegative(pair, kernel):
    x, y = (torch.tensor(a, requires_grad=True) for a in pair)
    for est in ("biased", "unbiased", "linear-time"):
        value = mmd(x, y, kernel=kernel, estimator=est)
        assert torch.isfinite(value)
        if est == "biased":
            assert value.item() >= 0.0
        gx, gy = torch.autograd.grad(value, (x, y))
        assert torch.isfinite(gx).all() and torch.isfinite(gy).all()


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 8), st.integers(1, 4), st.floats(-1e3, 1e3))
def test_identical_points_give_zero(n, d, value):
    x = torch.full((n, d), value, requires_grad=True)
    for kernel in ("multi", "gaussian", "linear"):
        assert mmd(x, x.detach().clone(), kernel=kernel).item() == pytest.approx(0.0, abs=1e-6)
        (grad,) = torch.autograd.grad(mmd(x, x.detach() + 1.0, kernel=kernel), (x,))
        assert torch.isfinite(grad).all()


# --------------------------------------------------------------------------- γ₀'s gradient
@pytest.mark.parametrize("estimator", ["biased", "unbiased", "linear-time"])
@pytest.mark.parametrize("kernel", ["multi", "gaussian"])
def test_the_data_driven_bandwidth_is_differentiated_by_default(kernel, estimator):
    # γ₀ = mean squared distance is now part of the function: finite differences agree
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(6, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    y = (torch.randn(6, 3, dtype=torch.float64, generator=gen) + 0.5).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: mmd(a, b, kernel, None, estimator), (x, y))
    # the fast path (rescaled features) equals autograd through the textbook formula
    fast = torch.autograd.grad(mmd(x, y, kernel, None, estimator), (x, y))
    plain = torch.autograd.grad(plain_mmd(x, y, kernel, None, estimator), (x, y))
    for a, b in zip(fast, plain, strict=True):
        torch.testing.assert_close(a, b)


def test_a_detached_bandwidth_pulls_features_to_the_origin_the_differentiated_one_does_not():
    """The cause of the MMD collapse (benchmarks/README.md): with γ₀ detached the gradient
    has a radial component Σ zᵢ·∂ℓ/∂zᵢ > 0 (descent shrinks every feature) that grows like
    1/c as the features shrink by c; differentiated, the loss is scale invariant and that
    component is 0."""
    gen = torch.Generator().manual_seed(0)
    zs = torch.randn(64, 50, dtype=torch.float64, generator=gen).relu()
    zt = (torch.randn(64, 50, dtype=torch.float64, generator=gen) + 0.3).relu()
    for c in (1.0, 0.01):
        a, b = (c * zs).requires_grad_(), (c * zt).requires_grad_()
        values, radial = [], []
        for detach in (True, False):
            value = mmd(a, b, detach_bandwidth=detach)
            ga, gb = torch.autograd.grad(value, (a, b))
            values.append(value.item())
            radial.append(((ga * a).sum() + (gb * b).sum()).item())
        assert values[0] == pytest.approx(values[1], rel=1e-12)  # the same number
        assert radial[0] > 0.01 * values[0]  # detached: a pull towards the origin …
        assert abs(radial[1]) < 1e-9 * radial[0]  # … that the differentiated γ₀ cancels
        if c == 1.0:
            pull = torch.autograd.grad(mmd(a, b, detach_bandwidth=True), a)[0].norm()
        else:  # … and grows like 1/c as the features shrink
            shrunk = torch.autograd.grad(mmd(a, b, detach_bandwidth=True), a)[0].norm()
            assert shrunk.item() == pytest.approx(100 * pull.item(), rel=1e-6)


def test_mmd_loss_passes_detach_bandwidth_on():
    zs, zt = torch.randn(8, 3, requires_grad=True), torch.randn(8, 3) + 1
    for detach in (True, False):
        (ours,) = torch.autograd.grad(MMDLoss(detach_bandwidth=detach)(zs, zt), zs)
        (ref,) = torch.autograd.grad(mmd(zs, zt, detach_bandwidth=detach), zs)
        torch.testing.assert_close(ours, ref)
    assert "detach_bandwidth=False" in repr(MMDLoss())


# --------------------------------------------------------------------------- bad input
BAD = [
    (dict(zs=torch.zeros(5)), "2-D"),
    (dict(zs=torch.zeros(3, 2, 2)), "2-D"),
    (dict(zs=torch.zeros(1, 4)), "at least 2 rows"),
    (dict(zt=torch.zeros(5, 3)), "same number of features"),
    (dict(zs=torch.full((5, 4), float("nan"))), "NaN or Inf"),
    (dict(zt=torch.tensor([[float("inf")] * 4] * 5)), "NaN or Inf"),
    (dict(zs=torch.full((5, 4), 1e20), zt=torch.full((5, 4), -1e20)), "overflowed"),
    (dict(estimator="quadratic"), "estimator"),
    (dict(kernel="rbf"), "kernel"),
    (dict(bandwidth=-1.0), "positive"),
    (dict(bandwidth=float("nan")), "positive"),
    (dict(bandwidth="wide"), "bandwidth"),
    (dict(kernel="gaussian", bandwidth=[1.0, 2.0]), "kernel='multi'"),
    (dict(bandwidth=[1.0, 0.0]), "positive"),
    (dict(kernel="linear", bandwidth=1.0), "no bandwidth"),
    (dict(zt=torch.zeros(6, 4), estimator="linear-time"), "equal batch sizes"),
]


@pytest.mark.parametrize("kwargs,match", BAD)
def test_bad_inputs_raise(kwargs, match):
    args = dict(zs=torch.randn(5, 4), zt=torch.randn(5, 4)) | kwargs
    with pytest.raises(ValueError, match=match):
        mmd(**args)


def test_module_rejects_bad_options_at_construction():
    with pytest.raises(ValueError, match="estimator"):
        MMDLoss(estimator="U")
    with pytest.raises(ValueError, match="kernel"):
        MMDLoss(kernel="laplace")


# --------------------------------------------------------------------------- two-sample test
def test_mmd_test_rejects_a_shift():
    rng = np.random.default_rng(0)
    res = mmd_test(rng.normal(size=(50, 2)), rng.normal(size=(50, 2)) + 1.0, permutations=200)
    assert res["p_value"] == pytest.approx(1 / 201)
    assert res["null"].shape == (200,) and res["permutations"] == 200
    assert res["statistic"] > res["null"].max()


def test_mmd_test_p_values_are_roughly_uniform_under_the_null():
    p = []
    for seed in range(40):
        rng = np.random.default_rng(100 + seed)
        p.append(mmd_test(rng.normal(size=(30, 2)), rng.normal(size=(25, 2)), 99, seed)["p_value"])
    p = np.array(p)
    assert 0.35 < p.mean() < 0.65 and (p <= 0.05).mean() <= 0.15, p


@pytest.mark.parametrize("kernel", ["multi", "gaussian", "linear"])
@pytest.mark.parametrize("estimator", ["biased", "unbiased"])
def test_mmd_test_statistic_null_and_p_value_formula(kernel, estimator):
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(12, 3)), rng.normal(size=(9, 3)) + 0.4
    res = mmd_test(x, y, permutations=30, seed=5, kernel=kernel, estimator=estimator)
    expected = mmd(torch.tensor(x), torch.tensor(y), kernel=kernel, estimator=estimator)
    assert res["statistic"] == pytest.approx(expected.item(), rel=1e-9, abs=1e-12)
    # the vectorised null equals MMD recomputed on each re-split (the pooled γ₀ is the same)
    labels = np.r_[np.ones(12), np.zeros(9)]
    rows = np.random.default_rng(5).permuted(np.tile(labels, (30, 1)), axis=1)
    pooled = torch.tensor(np.vstack([x, y]))
    by_loop = [mmd(pooled[r == 1], pooled[r == 0], kernel, None, estimator).item() for r in rows]
    np.testing.assert_allclose(res["null"], by_loop, rtol=1e-9, atol=1e-12)
    p = (1 + np.sum(res["null"] >= res["statistic"])) / 31
    assert res["p_value"] == pytest.approx(p)
    again = mmd_test(x, y, permutations=30, seed=5, kernel=kernel, estimator=estimator)
    np.testing.assert_allclose(again["null"], res["null"], rtol=1e-12)


def test_mmd_test_bad_arguments():
    x, y = torch.randn(6, 2), torch.randn(6, 2)
    with pytest.raises(ValueError, match="estimator"):
        mmd_test(x, y, estimator="linear-time")
    with pytest.raises(ValueError, match="permutations"):
        mmd_test(x, y, permutations=0)
    with pytest.raises(ValueError, match="NaN or Inf"):
        mmd_test(x, torch.full((6, 2), float("nan")))
    with pytest.raises(ValueError, match="at least 2 rows"):
        mmd_test(x[:1], y)
