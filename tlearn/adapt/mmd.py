r"""Maximum Mean Discrepancy (MMD): how far apart two samples are, through a kernel.

For a kernel :math:`k` the squared MMD between distributions :math:`P` and :math:`Q` is
(Gretton et al., "A Kernel Two-Sample Test", JMLR 2012)

.. math::  \mathrm{MMD}^2(P, Q) = \mathbb E\,k(x, x') + \mathbb E\,k(y, y') - 2\,\mathbb E\,k(x, y),
           \qquad x, x' \sim P,\; y, y' \sim Q .

It is zero iff :math:`P = Q` (for a characteristic kernel such as the Gaussian). Deep
Adaptation Networks (DAN; Long et al., ICML 2015) add it, with a *sum of Gaussian kernels*
of different widths (see ``kernels.py``), to the training loss so the network's source
and target features match. Read :func:`plain_mmd` first: pairwise squared distances →
kernel matrices → an estimator, in a dozen lines. :func:`mmd` is the same number with
input checks and, where tests prove them equal, the speed tricks of ``_fast.py``.

Estimators (see :func:`mmd`): ``"biased"`` (V-statistic, never negative), ``"unbiased"``
(U-statistic, can be negative), ``"linear-time"`` (Gretton et al. 2012 §6, used by DAN).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from tlearn import checks
from tlearn.adapt import _fast
from tlearn.adapt.kernels import (
    DEFAULT_MULTIPLIERS,
    linear_kernel,
    mean_sq_distance,
    multi_kernel,
    resolve_kernel,
    sq_distances,
)
from tlearn.checks import finite_or_raise, float_compute, tensor_pair

__all__ = ["mmd", "plain_mmd", "mmd_from_kernels", "MMDLoss", "mmd_test", "DEFAULT_MULTIPLIERS"]

Kernel = Literal["multi", "gaussian", "linear"]
Estimator = Literal["biased", "unbiased", "linear-time"]
ESTIMATORS = ("biased", "unbiased", "linear-time")


# --------------------------------------------------------------------------- the definition
def mmd_from_kernels(k_ss: Tensor, k_tt: Tensor, k_st: Tensor, estimator: str = "biased") -> Tensor:
    r"""MMD² from the three kernel matrices ``(m, m)``, ``(n, n)``, ``(m, n)``.

    Biased (V-statistic): :math:`\overline{K_{ss}} + \overline{K_{tt}} - 2\,\overline{K_{st}}`.
    Unbiased (U-statistic): the same with the diagonals ``i = j`` left out of the
    within-domain means (divided by ``m(m-1)`` and ``n(n-1)``).
    """
    if estimator == "biased":
        return k_ss.mean() + k_tt.mean() - 2 * k_st.mean()
    m, n = len(k_ss), len(k_tt)
    off_ss = (k_ss.sum() - k_ss.diagonal().sum()) / (m * (m - 1))
    off_tt = (k_tt.sum() - k_tt.diagonal().sum()) / (n * (n - 1))
    return off_ss + off_tt - 2 * k_st.mean()


def plain_mmd(
    zs: Tensor,
    zt: Tensor,
    kernel: Kernel = "multi",
    bandwidth: float | Sequence[float] | None = None,
    estimator: Estimator = "biased",
    gamma0: Tensor | float | None = None,
    detach_bandwidth: bool = False,
) -> Tensor:
    """MMD² exactly as the papers write it: no input checks, no speed tricks (see :func:`mmd`).

    ``gamma0``: γ₀ when it is already known; by default the ``bandwidth`` or
    :func:`~tlearn.adapt.kernels.mean_sq_distance` (a constant of the gradient only with
    ``detach_bandwidth``).
    """
    fixed, alphas = resolve_kernel(kernel, bandwidth)  # alphas == (): the linear kernel
    if gamma0 is None:
        gamma0 = mean_sq_distance(zs, zt, detach_bandwidth) if fixed is None else fixed

    def k(a: Tensor, b: Tensor, pairs: bool = False) -> Tensor:
        """k(a_i, b_j) for every i, j; or, with ``pairs``, only k(a_i, b_i)."""
        if not alphas:
            return (a * b).sum(1) if pairs else linear_kernel(a, b)
        return multi_kernel((a - b).pow(2).sum(1) if pairs else sq_distances(a, b), gamma0, alphas)

    if estimator == "linear-time":  # quad-tuples (x_{2i-1}, x_{2i}, y_{2i-1}, y_{2i})
        h = len(zs) // 2
        x1, x2, y1, y2 = zs[0 : 2 * h : 2], zs[1 : 2 * h : 2], zt[0 : 2 * h : 2], zt[1 : 2 * h : 2]
        return (k(x1, x2, True) + k(y1, y2, True) - k(x1, y2, True) - k(x2, y1, True)).mean()
    return mmd_from_kernels(k(zs, zs), k(zt, zt), k(zs, zt), estimator)


# --------------------------------------------------------------------------- the loss
def mmd(
    zs: Tensor,
    zt: Tensor,
    kernel: Kernel = "multi",
    bandwidth: float | Sequence[float] | None = None,
    estimator: Estimator = "biased",
    detach_bandwidth: bool = False,
) -> Tensor:
    r"""Squared Maximum Mean Discrepancy between feature sets ``zs`` and ``zt`` (a differentiable loss).

    .. math::  \widehat{\mathrm{MMD}}^2_b = \frac{1}{m^2}\sum_{i,j} k(x_i, x_j)
               + \frac{1}{n^2}\sum_{i,j} k(y_i, y_j) - \frac{2}{mn}\sum_{i,j} k(x_i, y_j)

    with :math:`x_i` the rows of ``zs`` and :math:`y_j` those of ``zt`` (Gretton et al.,
    JMLR 2012; multi-kernel as in DAN, Long et al., ICML 2015).

    Args:
        zs: source features, shape ``(m, d)``, ``m >= 2``.
        zt: target features, shape ``(n, d)``, ``n >= 2``.
        kernel: ``"multi"`` (default) — :math:`\sum_u \exp(-\lVert x-y\rVert^2/(\alpha_u\gamma_0))`,
            a **sum** over :data:`DEFAULT_MULTIPLIERS` α = (1/4, 1/2, 1, 2, 4) (divide by 5
            for the "mean of kernels" convention of e.g. pytorch-adapt);
            ``"gaussian"`` — :math:`\exp(-\lVert x-y\rVert^2/\gamma)`;
            ``"linear"`` — :math:`x^\top y`, whose biased MMD is
            :math:`\lVert \bar x - \bar y\rVert^2` (means only).
        bandwidth: ``None`` — γ₀ = mean squared distance over all pairs of the joint
            sample ``[zs; zt]`` (see ``detach_bandwidth``); a number — use it as γ₀
            (``"gaussian"``: γ = that number); a list — multipliers α_u for ``"multi"``
            (γ_u = α_u·γ₀).
        estimator:
            ``"biased"`` (default) — the V-statistic above, diagonals included. It is the
            squared RKHS distance between the two empirical mean embeddings, so it is never
            negative (round-off below 0 is clamped to 0). Its expectation is slightly above
            0 even when P = Q.

            ``"unbiased"`` — the U-statistic: the within-domain sums exclude ``i = j``,
            divided by ``m(m-1)`` and ``n(n-1)``. Its *expectation* is MMD², so when P = Q
            it scatters around 0 and is **negative on about half the batches** — that is
            expected, not a bug (it is an unbiased estimate of a non-negative number, not a
            squared norm). As a loss, its gradient is still right; don't clamp it.

            ``"linear-time"`` — Gretton et al. 2012 §6 / DAN: pair consecutive samples and
            average :math:`h = k(x_{2i-1},x_{2i}) + k(y_{2i-1},y_{2i}) - k(x_{2i-1},y_{2i}) -
            k(x_{2i},y_{2i-1})` over ``⌊n/2⌋`` quad-tuples. O(n·d), unbiased, high variance;
            needs ``m == n`` (an odd last sample is dropped). Can be negative too.
        detach_bandwidth: with ``bandwidth=None``, whether γ₀ is a constant of the gradient
            (``True``: DAN's and TLlib's code) or a function of the features, differentiated
            like the rest of the loss (``False``, the default). **The value is the same**;
            training is not. With the data-driven γ₀ the value does not change when every
            feature is multiplied by c > 0 (all distances and γ₀ scale by c²). A detached
            γ₀ hides that from the gradient: at fixed γ₀ shrinking the features moves every
            kernel towards 1 and MMD² towards 0, so the gradient always pulls the features
            towards the origin, and that pull grows like 1/c as they shrink. A network
            without a normalisation layer (the ADDA LeNet of ``tlearn.reproduce``) follows
            it until its ReLUs die and every image gets one class; with the gradient
            through γ₀ the pull is exactly zero (the loss is scale invariant, so its gradient
            is orthogonal to the features: Σ zᵢ·∂ℓ/∂zᵢ = 0). Measured in
            ``benchmarks/README.md`` ("MMD collapse"). Gretton et al. (2012) pick a
            data-driven bandwidth for a *test*, where no gradient is taken.

    Returns:
        Scalar tensor (float32 for half/float32 input, float64 for float64 input). Computed
        with autocast off: fine under fp16/bf16 mixed precision.

    The value is :func:`plain_mmd`'s. Inputs are first centred on their joint mean (MMD is
    translation invariant; float32 distances stay exact far from the origin). The biased
    and unbiased estimates with the Gaussian kernel or a power-of-two multi-kernel family
    (the default) use the tricks of ``_fast.py`` (one ``exp`` and repeated squaring for all
    kernels, a backward pass by hand); every estimator gets γ₀ in O(N·d). The tests prove
    the tricks equal to :func:`plain_mmd` in value and gradient. NaN/Inf inputs raise
    ``ValueError``.

    Example:
        >>> zs, zt = torch.randn(64, 16), torch.randn(64, 16) + 1.0
        >>> mmd(zs, zt) > mmd(zs, torch.randn(64, 16))
        tensor(True)
        >>> lin = mmd(zs, zt, kernel="linear")   # = ‖mean(zs) − mean(zt)‖²
        >>> torch.allclose(lin, (zs.mean(0) - zt.mean(0)).pow(2).sum(), rtol=1e-4)
        True
    """
    checks.one_of("estimator", estimator, ESTIMATORS)
    fixed, multipliers = resolve_kernel(kernel, bandwidth)
    names = ("zs (source features)", "zt (target features)")
    zs, zt = tensor_pair(zs, zt, names, finite=False)  # the result is checked instead
    if estimator == "linear-time" and len(zs) != len(zt):
        raise ValueError(
            f"the linear-time MMD estimator pairs source and target samples, so it needs equal "
            f"batch sizes; got {len(zs)} and {len(zt)}. Use estimator='biased' or 'unbiased', "
            "or equal batches."
        )
    with float_compute(zs.device):
        mean = torch.cat([zs, zt]).mean(0)
        cs, ct = zs - mean, zt - mean
        gamma0 = fixed
        if multipliers and fixed is None:
            gamma0 = _fast.mean_sq_distance(cs, ct, detach_bandwidth)
            gamma0 = finite_or_raise(gamma0, {names[0]: zs, names[1]: zt})  # no silent inf/inf
            if not detach_bandwidth:  # k(x, y; γ₀) = k(x/√γ₀, y/√γ₀; 1): autograd carries
                root = gamma0.sqrt()  # γ₀'s gradient through the rescaled features
                cs, ct, gamma0 = cs / root, ct / root, 1.0
        if estimator != "linear-time" and multipliers and _fast.squaring_plan(multipliers):
            value = _fast.gaussian_mmd(cs, ct, gamma0, multipliers, estimator == "unbiased")
        else:
            value = plain_mmd(cs, ct, kernel, bandwidth, estimator, gamma0=gamma0)
        if estimator == "biased":  # a squared norm: round-off below 0 is 0
            value = value.clamp_min(0.0)
    return finite_or_raise(value, {names[0]: zs, names[1]: zt})


class MMDLoss(nn.Module):
    r"""MMD as an alignment module: ``MMDLoss(kernel, bandwidth, estimator)(zs, zt) == mmd(zs, zt, …)``.

    .. math::  \widehat{\mathrm{MMD}}^2 = \overline{k(x, x')} + \overline{k(y, y')}
               - 2\,\overline{k(x, y)}

    Shapes: ``zs`` ``(m, d)``, ``zt`` ``(n, d)`` → scalar (float32 even under autocast).
    Defaults: a sum of five Gaussian kernels with γ_u ∈ {1/4, 1/2, 1, 2, 4} × mean squared
    distance, biased estimator, the gradient taken through γ₀ too. See :func:`mmd` for
    every option (why the unbiased estimate can be negative; why γ₀ is not detached).

    Example:
        >>> criterion = MMDLoss()                    # DAN-style multi-kernel MMD
        >>> zs = torch.randn(32, 8, requires_grad=True)
        >>> criterion(zs, torch.randn(32, 8) + 0.5).backward()
    """

    def __init__(
        self,
        kernel: Kernel = "multi",
        bandwidth: float | Sequence[float] | None = None,
        estimator: Estimator = "biased",
        detach_bandwidth: bool = False,
    ) -> None:
        super().__init__()
        checks.one_of("estimator", estimator, ESTIMATORS)
        resolve_kernel(kernel, bandwidth)  # fail at construction, not at the first batch
        self.options = dict(
            kernel=kernel,
            bandwidth=bandwidth,
            estimator=estimator,
            detach_bandwidth=detach_bandwidth,
        )

    def forward(self, zs: Tensor, zt: Tensor) -> Tensor:
        return mmd(zs, zt, **self.options)

    def extra_repr(self) -> str:
        return ", ".join(f"{key}={value!r}" for key, value in self.options.items())


# --------------------------------------------------------------------------- two-sample test
def mmd_test(
    zs: Any,
    zt: Any,
    permutations: int = 500,
    seed: int = 0,
    *,
    kernel: Kernel = "multi",
    bandwidth: float | Sequence[float] | None = None,
    estimator: Literal["biased", "unbiased"] = "biased",
) -> dict[str, Any]:
    r"""Permutation two-sample test: are ``zs`` and ``zt`` drawn from the same distribution?

    Under H₀: P = Q the domain labels are exchangeable, so the MMD of random re-splits of
    the pooled sample :math:`[z_s; z_t]` into groups of sizes ``m`` and ``n`` is a draw from the
    statistic's null distribution (Gretton et al., JMLR 2012). The p-value is

    .. math::  p = \frac{1 + \#\{b : \mathrm{MMD}^2_b \ge \mathrm{MMD}^2_{obs}\}}{1 + B},

    never 0, valid at any sample size. Vectorised: one ``(N, N)`` kernel matrix (float64)
    of the pooled sample; each permutation is a 0/1 group-indicator row ``a``, and
    :math:`a^\top K a`, :math:`a^\top K (1-a)`, … for all B rows are one matrix product. The bandwidth γ₀ (pooled mean squared distance) is the same for every split.

    Args:
        zs, zt: samples ``(m, d)`` and ``(n, d)``, arrays or tensors, ``m, n >= 2``.
        permutations: B, the number of random re-splits (≥ 1; 500–1000 is usual).
        seed: seed of the permutations (NumPy ``default_rng``).
        kernel, bandwidth: as in :func:`mmd`.
        estimator: ``"biased"`` or ``"unbiased"`` (both give a valid test).

    Returns:
        ``{"statistic": float, "p_value": float, "null": ndarray (B,), "permutations": B,
        "kernel": str, "estimator": str}``. ``statistic`` equals ``mmd(zs, zt, …)`` (up to
        float precision).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> res = mmd_test(rng.normal(size=(50, 2)), rng.normal(1, 1, size=(50, 2)))
        >>> res["p_value"] < 0.05
        True
    """
    checks.one_of("estimator (of mmd_test)", estimator, ("biased", "unbiased"))
    checks.positive_int("permutations", permutations)
    fixed, multipliers = resolve_kernel(kernel, bandwidth)
    zs, zt = tensor_pair(zs, zt, ("zs", "zt"))
    dtype = torch.float32 if zs.device.type == "mps" else torch.float64  # no float64 on MPS
    m, n = len(zs), len(zt)
    rng = np.random.default_rng(seed)
    labels = np.r_[np.ones(m), np.zeros(n)]
    rows = np.vstack([labels, rng.permuted(np.tile(labels, (permutations, 1)), axis=1)])
    with torch.no_grad(), float_compute(zs.device):
        z = torch.cat([zs, zt]).detach().to(dtype)
        z = z - z.mean(0)  # MMD is translation invariant; distances get exact
        if multipliers:
            gamma0 = mean_sq_distance(z[:m], z[m:]) if fixed is None else fixed
            kmat = multi_kernel(sq_distances(z, z), gamma0, multipliers)
        else:
            kmat = linear_kernel(z, z)
        a = torch.as_tensor(rows, dtype=dtype, device=z.device)  # (B + 1, N), row 0 observed
        stats = _split_statistics(kmat, a, m, n, estimator == "unbiased")
    observed, null = float(stats[0]), stats[1:]
    if estimator == "biased":
        observed = max(observed, 0.0)
        null = np.maximum(null, 0.0)
    p_value = (1.0 + np.count_nonzero(null >= observed)) / (1.0 + permutations)
    return {
        "statistic": observed,
        "p_value": float(p_value),
        "null": null,
        "permutations": int(permutations),
        "kernel": kernel,
        "estimator": estimator,
    }


def _split_statistics(kmat: Tensor, a: Tensor, m: int, n: int, unbiased: bool) -> np.ndarray:
    r"""MMD² of every split of the pooled sample at once, as float64: one split per row of the
    0/1 group indicator ``a`` (``(B + 1, N)``, ``m`` ones and ``n`` zeros), with :math:`K` =
    ``kmat`` ``(N, N)``.

    :math:`S_{11} = a^\top K a` (pairs within group 1), :math:`S_{12} = a^\top K (1 - a)`,
    :math:`S_{22}` the rest; the unbiased estimate leaves out the diagonals ``i = j``.
    """
    diag, total = kmat.diagonal(), kmat.sum()
    ka = a @ kmat  # row sums of K restricted to group 1
    s_11 = (ka * a).sum(1)  # Σ_{i,j in group 1} K_ij
    s_12 = ka.sum(1) - s_11  # Σ_{i in group 1, j in group 2} K_ij
    s_22 = total - s_11 - 2.0 * s_12
    if unbiased:  # leave out the diagonals i = j
        tr_1 = a @ diag
        s_11, s_22 = s_11 - tr_1, s_22 - (diag.sum() - tr_1)
        m2, n2 = m * (m - 1), n * (n - 1)
    else:
        m2, n2 = m * m, n * n
    return (s_11 / m2 + s_22 / n2 - 2.0 * s_12 / (m * n)).cpu().numpy().astype(np.float64)
