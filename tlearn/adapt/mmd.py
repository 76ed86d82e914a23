r"""Maximum Mean Discrepancy (MMD): how far apart two samples are, through a kernel.

For a kernel :math:`k` the squared MMD between distributions :math:`P` and :math:`Q` is
(Gretton et al., "A Kernel Two-Sample Test", JMLR 2012)

.. math::  \mathrm{MMD}^2(P, Q) = \mathbb E\,k(x, x') + \mathbb E\,k(y, y') - 2\,\mathbb E\,k(x, y),
           \qquad x, x' \sim P,\; y, y' \sim Q .

It is zero iff :math:`P = Q` (for a characteristic kernel such as the Gaussian). Deep
Adaptation Networks (DAN; Long et al., ICML 2015) add it, with a *sum of Gaussian kernels*
of different widths, to the training loss so the network's source and target features match.

Conventions used here (see :func:`mmd`):

* Gaussian kernel :math:`k_\gamma(x, y) = \exp(-\lVert x - y\rVert^2 / \gamma)`.
* Multi-kernel: :math:`k = \sum_u k_{\gamma_u}` (a **sum**, not a mean) with
  :math:`\gamma_u = \alpha_u \gamma_0`, :math:`\alpha \in \{2^{-2}, 2^{-1}, 1, 2, 2^2\}` and
  :math:`\gamma_0` the mean pairwise squared distance over the joint sample :math:`[x; y]`,
  treated as a constant (no gradient flows through the bandwidth).
  In TLlib's notation, :math:`\exp(-d^2 / 2\sigma^2)` with
  :math:`\sigma^2 = \alpha' \cdot \mathrm{mean}\, d^2`, :math:`\alpha' \in \{2^{-3},\dots,2\}` —
  the same five kernels.
* Estimators: ``"biased"`` (V-statistic, never negative), ``"unbiased"`` (U-statistic, can
  be negative), ``"linear-time"`` (Gretton et al. 2012 §6, used by DAN; equal batch sizes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from tlearn.adapt._checks import as_tensor_pair, finite_or_raise, float_compute

__all__ = ["mmd", "MMDLoss", "mmd_test", "DEFAULT_MULTIPLIERS"]

Kernel = Literal["multi", "gaussian", "linear"]
Estimator = Literal["biased", "unbiased", "linear-time"]

#: Bandwidth multipliers α_u of the default multi-kernel: γ_u = α_u · γ₀.
DEFAULT_MULTIPLIERS: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)

_KERNELS = ("multi", "gaussian", "linear")
_ESTIMATORS = ("biased", "unbiased", "linear-time")


# --------------------------------------------------------------------------- kernels
def _resolve_kernel(
    kernel: str, bandwidth: float | Sequence[float] | None
) -> tuple[float | None, tuple[float, ...]]:
    """Turn ``(kernel, bandwidth)`` into ``(fixed γ₀ or None, multipliers α)``.

    ``multipliers == ()`` means the linear kernel.
    """
    if kernel not in _KERNELS:
        raise ValueError(f"kernel must be one of {_KERNELS}, got {kernel!r}")
    if kernel == "linear":
        if bandwidth is not None:
            raise ValueError("the linear kernel k(x, y) = x·y has no bandwidth: use bandwidth=None")
        return None, ()
    if bandwidth is None:
        return None, (DEFAULT_MULTIPLIERS if kernel == "multi" else (1.0,))
    if isinstance(bandwidth, (np.ndarray, Tensor)) and bandwidth.ndim == 0:
        bandwidth = float(bandwidth)  # a 0-d array or tensor is one number
    if isinstance(bandwidth, (Sequence, np.ndarray, Tensor)) and not isinstance(bandwidth, str):
        if kernel != "multi":
            raise ValueError(
                "a list of bandwidth multipliers needs kernel='multi'; for one Gaussian kernel "
                "pass a number γ (k = exp(-‖x-y‖²/γ)) or None (γ = mean squared distance)"
            )
        multipliers = tuple(float(a) for a in np.asarray(bandwidth, dtype=float).ravel())
        if not multipliers or not all(math.isfinite(a) and a > 0 for a in multipliers):
            raise ValueError(f"bandwidth multipliers must be positive numbers, got {bandwidth!r}")
        return None, multipliers
    try:
        gamma = float(bandwidth)
    except (TypeError, ValueError):
        raise ValueError(
            f"bandwidth must be None, a positive number or a list of multipliers, got {bandwidth!r}"
        ) from None
    if not (math.isfinite(gamma) and gamma > 0):
        raise ValueError(f"bandwidth γ must be a positive number, got {bandwidth!r}")
    return gamma, (DEFAULT_MULTIPLIERS if kernel == "multi" else (1.0,))


def _squaring_plan(ratios: tuple[float, ...]) -> list[int] | None:
    """If every ratio r_u = γ_max/γ_u is a power of two 2^k_u (k_u ≤ 16), return the k_u.

    Then exp(−d/γ_u) = exp(−d/γ_max)^(2^k_u): one ``exp`` and a few squarings give all
    the kernels — the default family (multipliers 1/4 … 4, ratios 1 … 16) is such a ladder.
    """
    plan = []
    for r in ratios:
        k = math.log2(r)
        if abs(k - round(k)) > 1e-9 or not 0 <= round(k) <= 16:
            return None
        plan.append(round(k))
    return plan


def _gaussian_sum(d2: Tensor, gamma0: Tensor | float, multipliers: tuple[float, ...]) -> Tensor:
    r"""Σ_u exp(−d2 / (α_u γ₀)), elementwise over a tensor of squared distances ``d2``."""
    top = max(multipliers)
    plan = _squaring_plan(tuple(top / a for a in multipliers))
    if plan is None:  # general family: one exp of the stacked, scaled distances
        inv = torch.tensor([-1.0 / a for a in multipliers], dtype=d2.dtype, device=d2.device)
        scaled = d2.unsqueeze(0) * (inv / gamma0).view(-1, *([1] * d2.dim()))
        return torch.exp(scaled).sum(0)
    # the k_u-th power of two of e = exp(-d2/γ_max), by repeated squaring
    power = torch.exp(d2 * (-1.0 / (max(multipliers) * gamma0)))
    total = power * plan.count(0) if plan.count(0) != 1 else power
    for k in range(1, max(plan) + 1):
        power = power * power
        if k in plan:
            total = total + (power * plan.count(k) if plan.count(k) != 1 else power)
    return total


class _GaussianKernelSum(torch.autograd.Function):
    r"""S = Σ_{i,j} Σ_u exp(−‖a_i − b_j‖² / γ_u) over a block of pairs, with its gradient by hand.

    ``b=None`` means the symmetric block ``b = a``; ``exclude_diagonal`` drops ``i = j``.
    ``inv_top`` is 1/γ_max (a tensor), ``ratios`` the numbers r_u = γ_max/γ_u ≥ 1.

    Forward: one matrix product gives every −‖a_i − b_j‖²/γ_max at once,

        −D_ij/γ_max = [a_i, ‖a_i‖², 1] · [2 b_j, −1, −‖b_j‖²] / γ_max,

    then k_u = exp(−D/γ_u) = exp(−D/γ_max)^{r_u}: for a power-of-two family (the default
    r = 1, 2, 4, 8, 16) one ``exp`` and repeated squaring make all of them.

    Backward: autograd would keep every kernel matrix and replay each exp and multiply;
    by hand it is two matrix products. With M_ij = ∂S/∂D_ij = −Σ_u k_u(i,j)/γ_u
    = −G_ij/γ_max, where G = Σ_u r_u k_u, and ∂D_ij/∂a_i = 2(a_i − b_j):

        ∂S/∂a = (2/γ_max) (G b − rowsum(G) ⊙ a),   ∂S/∂b = (2/γ_max) (Gᵀ a − colsum(G) ⊙ b),

    (the symmetric block counts both roles: ∂S/∂a = (4/γ_max)(G a − rowsum(G) ⊙ a)).
    The forward pass therefore keeps only G.
    """

    @staticmethod
    def forward(ctx, a, b, inv_top, ratios, exclude_diagonal):  # noqa: D102
        other = a if b is None else b
        sq_a, sq_b = (a * a).sum(1, keepdim=True), (other * other).sum(1, keepdim=True)
        left = torch.cat([a, sq_a, torch.ones_like(sq_a)], dim=1)
        right = torch.cat([2.0 * other, -torch.ones_like(sq_b), -sq_b], dim=1) * inv_top
        work = (left @ right.T).clamp_max_(0.0)  # −D/γ_max; round-off above 0 → 0
        if exclude_diagonal:
            work.diagonal().fill_(-math.inf)  # exp(−inf) = 0: every kernel skips i = j
        plan = _squaring_plan(ratios)
        if plan is not None:  # r_u = 2^k_u: square the widest kernel k times
            work.exp_()
            weights = [plan.count(k) for k in range(max(plan) + 1)]  # kernels per k
            total = work.sum() * weights[0]
            grad_weights = work * weights[0]  # G = Σ_u r_u k_u, built up as we go
            for k in range(1, len(weights)):
                work.mul_(work)
                if weights[k]:
                    total = total + work.sum() * weights[k]
                    grad_weights.add_(work, alpha=weights[k] * 2**k)
        else:  # any other family: one exp per kernel
            total = torch.zeros((), dtype=a.dtype, device=a.device)
            grad_weights = torch.zeros_like(work)
            for r in ratios:
                kernel = torch.exp(work * r)
                total = total + kernel.sum()
                grad_weights.add_(kernel, alpha=r)
        ctx.save_for_backward(a, b, grad_weights, inv_top)
        return total

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_total):  # noqa: D102
        a, b, g, inv_top = ctx.saved_tensors
        scale = 2.0 * inv_top * grad_total
        grad_a = grad_b = None
        with float_compute(a.device):  # backward() may be called inside an autocast region
            if b is None:  # symmetric block: a plays both roles
                grad_a = 2.0 * scale * (g @ a - g.sum(1, keepdim=True) * a)
            else:
                if ctx.needs_input_grad[0]:
                    grad_a = scale * (g @ b - g.sum(1, keepdim=True) * a)
                if ctx.needs_input_grad[1]:
                    grad_b = scale * (g.T @ a - g.sum(0).unsqueeze(1) * b)
        return grad_a, grad_b, None, None, None


def _centre(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Subtract the joint mean (MMD is translation invariant; float32 distances get exact)."""
    n = x.shape[0] + y.shape[0]
    mean = (x.sum(0) + y.sum(0)) / n
    return x - mean, y - mean


def _base_bandwidth(sq_x: Tensor, sq_y: Tensor, fixed: float | None) -> Tensor | float:
    r"""γ₀: the fixed value, or the mean squared distance over all N² pairs of the joint sample.

    For jointly centred points, :math:`\frac{1}{N^2}\sum_{ij}\lVert z_i - z_j\rVert^2 =
    \frac{2}{N}\sum_i \lVert z_i\rVert^2`, so it costs O(N·d), not O(N²·d). Detached.
    Identical points give 0; a floor of √(smallest normal float) keeps exp(−0/γ) = 1 and
    the gradients finite (1/γ must not overflow when it is multiplied by the kernel sum).
    """
    if fixed is not None:
        return fixed
    n = sq_x.shape[0] + sq_y.shape[0]
    gamma0 = (2.0 / n) * (sq_x.sum() + sq_y.sum())
    return gamma0.detach().clamp_min(math.sqrt(torch.finfo(gamma0.dtype).tiny))


# --------------------------------------------------------------------------- the estimators
def mmd(
    x: Tensor,
    y: Tensor,
    kernel: Kernel = "multi",
    bandwidth: float | Sequence[float] | None = None,
    estimator: Estimator = "biased",
) -> Tensor:
    r"""Squared Maximum Mean Discrepancy between samples ``x`` and ``y`` (a differentiable loss).

    .. math::  \widehat{\mathrm{MMD}}^2_b = \frac{1}{m^2}\sum_{i,j} k(x_i, x_j)
               + \frac{1}{n^2}\sum_{i,j} k(y_i, y_j) - \frac{2}{mn}\sum_{i,j} k(x_i, y_j)

    (Gretton et al., JMLR 2012; multi-kernel as in DAN, Long et al., ICML 2015.)

    Args:
        x: source features, shape ``(m, d)``, ``m >= 2``.
        y: target features, shape ``(n, d)``, ``n >= 2``.
        kernel: ``"multi"`` (default) — :math:`\sum_u \exp(-\lVert x-y\rVert^2/(\alpha_u\gamma_0))`,
            a **sum** over :data:`DEFAULT_MULTIPLIERS` α = (1/4, 1/2, 1, 2, 4) (divide by 5
            for the "mean of kernels" convention of e.g. pytorch-adapt);
            ``"gaussian"`` — :math:`\exp(-\lVert x-y\rVert^2/\gamma)`;
            ``"linear"`` — :math:`x^\top y`, whose biased MMD is
            :math:`\lVert \bar x - \bar y\rVert^2` (means only).
        bandwidth: ``None`` — γ₀ = mean squared distance over all pairs of the joint
            sample ``[x; y]`` (constant, no gradient); a number — use it as γ₀ (``"gaussian"``:
            γ = that number); a list — multipliers α_u for ``"multi"`` (γ_u = α_u·γ₀).
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

    Returns:
        Scalar tensor (float32 for half/float32 input, float64 for float64 input). Computed
        with autocast off: fine under fp16/bf16 mixed precision.

    Implementation: inputs are centred on the joint mean (exact float32 distances far
    from the origin); each block (xx, yy, xy) of squared distances is one matrix product
    that every kernel reuses; with a power-of-two family one ``exp`` and repeated squaring
    give all the kernels; the backward pass is written out by hand (two matrix products
    per block, see ``_GaussianKernelSum``). NaN/Inf inputs raise ``ValueError``.

    Example:
        >>> x, y = torch.randn(64, 16), torch.randn(64, 16) + 1.0
        >>> mmd(x, y) > mmd(x, torch.randn(64, 16))
        tensor(True)
        >>> lin = mmd(x, y, kernel="linear")   # = ‖mean(x) − mean(y)‖²
        >>> torch.allclose(lin, (x.mean(0) - y.mean(0)).pow(2).sum(), rtol=1e-4)
        True
    """
    if estimator not in _ESTIMATORS:
        raise ValueError(f"estimator must be one of {_ESTIMATORS}, got {estimator!r}")
    fixed, multipliers = _resolve_kernel(kernel, bandwidth)
    names = ("x (source features)", "y (target features)")
    x, y = as_tensor_pair(x, y, names, check_finite=False)  # the result is checked instead
    m, n = x.shape[0], y.shape[0]
    if estimator == "linear-time" and m != n:
        raise ValueError(
            f"the linear-time MMD estimator pairs source and target samples, so it needs equal "
            f"batch sizes; got {m} and {n}. Use estimator='biased' or 'unbiased', or equal batches."
        )
    with float_compute(x.device):
        value = _mmd(x, y, fixed, multipliers, estimator)
    return finite_or_raise(value, {names[0]: x, names[1]: y})


def _mmd(
    x: Tensor, y: Tensor, fixed: float | None, multipliers: tuple[float, ...], estimator: str
) -> Tensor:
    """The estimators of :func:`mmd` on validated float tensors (see its docstring)."""
    m, n = x.shape[0], y.shape[0]
    x, y = _centre(x, y)
    if estimator == "linear-time":
        return _mmd_linear_time(x, y, fixed, multipliers)
    unbiased = estimator == "unbiased"
    if not multipliers:
        # Linear kernel: Σ_ij x_i·x_j = ‖Σ_i x_i‖², so the kernel sums cost O(n·d).
        sum_x, sum_y = x.sum(0), y.sum(0)
        s_xx, s_yy, s_xy = sum_x @ sum_x, sum_y @ sum_y, sum_x @ sum_y
        if unbiased:  # drop the diagonal terms k(x_i, x_i) = ‖x_i‖²
            s_xx, s_yy = s_xx - (x * x).sum(), s_yy - (y * y).sum()
    else:
        top = max(multipliers)
        gamma0 = _base_bandwidth((x * x).sum(1), (y * y).sum(1), fixed)
        inv_top = torch.as_tensor(1.0 / (top * gamma0), dtype=x.dtype, device=x.device)
        ratios = tuple(top / a for a in multipliers)  # γ_max / γ_u >= 1
        s_xx = _GaussianKernelSum.apply(x, None, inv_top, ratios, unbiased)
        s_yy = _GaussianKernelSum.apply(y, None, inv_top, ratios, unbiased)
        s_xy = _GaussianKernelSum.apply(x, y, inv_top, ratios, False)
    cross = s_xy * (2.0 / (m * n))
    if not unbiased:
        return (s_xx / (m * m) + s_yy / (n * n) - cross).clamp_min(0.0)
    return s_xx / (m * (m - 1)) + s_yy / (n * (n - 1)) - cross


def _mmd_linear_time(
    x: Tensor, y: Tensor, fixed: float | None, multipliers: tuple[float, ...]
) -> Tensor:
    """Linear-time estimate over the quad-tuples (x_{2i-1}, x_{2i}, y_{2i-1}, y_{2i})."""
    half = x.shape[0] // 2
    x1, x2 = x[0 : 2 * half : 2], x[1 : 2 * half : 2]
    y1, y2 = y[0 : 2 * half : 2], y[1 : 2 * half : 2]
    if not multipliers:  # x1·x2 + y1·y2 − x1·y2 − x2·y1 = (x1 − y1)·(x2 − y2)
        return ((x1 - y1) * (x2 - y2)).sum(1).mean()
    gamma0 = _base_bandwidth((x * x).sum(1), (y * y).sum(1), fixed)
    pairs = torch.stack([x1 - x2, y1 - y2, x1 - y2, x2 - y1])  # (4, half, d)
    k = _gaussian_sum((pairs * pairs).sum(-1), gamma0, multipliers)  # (4, half)
    return (k[0] + k[1] - k[2] - k[3]).mean()


class MMDLoss(nn.Module):
    r"""MMD as a loss module: ``MMDLoss(kernel, bandwidth, estimator)(x, y) == mmd(x, y, …)``.

    .. math::  \widehat{\mathrm{MMD}}^2 = \overline{k(x, x')} + \overline{k(y, y')}
               - 2\,\overline{k(x, y)}

    Shapes: ``x`` ``(m, d)``, ``y`` ``(n, d)`` → scalar. Defaults: a sum of five Gaussian
    kernels with γ_u ∈ {1/4, 1/2, 1, 2, 4} × mean squared distance, biased estimator.
    See :func:`mmd` for every option (and why the unbiased estimate can be negative).

    Example:
        >>> criterion = MMDLoss()                    # DAN-style multi-kernel MMD
        >>> loss = criterion(torch.randn(32, 8), torch.randn(32, 8) + 0.5)
        >>> loss.backward() if loss.requires_grad else None
    """

    def __init__(
        self,
        kernel: Kernel = "multi",
        bandwidth: float | Sequence[float] | None = None,
        estimator: Estimator = "biased",
    ) -> None:
        super().__init__()
        if estimator not in _ESTIMATORS:
            raise ValueError(f"estimator must be one of {_ESTIMATORS}, got {estimator!r}")
        _resolve_kernel(kernel, bandwidth)  # fail at construction, not at the first batch
        self.kernel, self.bandwidth, self.estimator = kernel, bandwidth, estimator

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return mmd(x, y, kernel=self.kernel, bandwidth=self.bandwidth, estimator=self.estimator)

    def extra_repr(self) -> str:
        return f"kernel={self.kernel!r}, bandwidth={self.bandwidth!r}, estimator={self.estimator!r}"


# --------------------------------------------------------------------------- two-sample test
def mmd_test(
    x: Any,
    y: Any,
    permutations: int = 500,
    seed: int = 0,
    *,
    kernel: Kernel = "multi",
    bandwidth: float | Sequence[float] | None = None,
    estimator: Literal["biased", "unbiased"] = "biased",
    chunk_size: int = 256,
    progress: bool = False,
) -> dict[str, Any]:
    r"""Permutation two-sample test: are ``x`` and ``y`` drawn from the same distribution?

    Under H₀: P = Q the domain labels are exchangeable, so the MMD of random re-splits of
    the pooled sample :math:`[x; y]` into groups of sizes ``m`` and ``n`` is a draw from the
    statistic's null distribution (Gretton et al., JMLR 2012). The p-value is

    .. math::  p = \frac{1 + \#\{b : \mathrm{MMD}^2_b \ge \mathrm{MMD}^2_{obs}\}}{1 + B},

    never 0, valid at any sample size. Vectorised: one ``(N, N)`` kernel matrix (float64)
    of the pooled sample; each permutation is a 0/1 group-indicator row ``a``, and
    :math:`a^\top K a`, :math:`a^\top K (1-a)`, … for a whole block of rows are one matrix
    product. The bandwidth γ₀ (pooled mean squared distance) is the same for every split.

    Args:
        x, y: samples ``(m, d)`` and ``(n, d)``, arrays or tensors, ``m, n >= 2``.
        permutations: B, the number of random re-splits (≥ 1; 500–1000 is usual).
        seed: seed of the permutations (NumPy ``default_rng``).
        kernel, bandwidth: as in :func:`mmd`.
        estimator: ``"biased"`` or ``"unbiased"`` (both give a valid test).
        chunk_size: permutations per matrix product (memory ≈ chunk_size × N floats).
        progress: show a progress bar over chunks.

    Returns:
        ``{"statistic": float, "p_value": float, "null": ndarray (B,), "permutations": B,
        "kernel": str, "estimator": str}``. ``statistic`` equals ``mmd(x, y, …)`` (up to
        float precision).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> res = mmd_test(rng.normal(size=(50, 2)), rng.normal(1, 1, size=(50, 2)))
        >>> res["p_value"] < 0.05
        True
    """
    if estimator not in ("biased", "unbiased"):
        raise ValueError(
            f"mmd_test supports estimator 'biased' or 'unbiased', got {estimator!r} "
            "(the permutation test needs the full kernel matrix anyway)"
        )
    if isinstance(permutations, bool) or not isinstance(permutations, (int, np.integer)):
        raise ValueError(f"permutations must be a positive int, got {permutations!r}")
    if permutations < 1:
        raise ValueError(f"permutations must be >= 1, got {permutations}")
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    fixed, multipliers = _resolve_kernel(kernel, bandwidth)
    x, y = as_tensor_pair(x, y, ("x", "y"))
    dtype = torch.float32 if x.device.type == "mps" else torch.float64  # no float64 on MPS
    with torch.no_grad(), float_compute(x.device):
        x, y = _centre(x.detach().to(dtype), y.detach().to(dtype))
        m, n = x.shape[0], y.shape[0]
        z = torch.cat([x, y])
        sq = (z * z).sum(1)
        gram = z @ z.T
        if multipliers:
            gamma0 = _base_bandwidth(sq[:m], sq[m:], fixed)
            dist = (sq.unsqueeze(1) + sq.unsqueeze(0) - 2.0 * gram).clamp_min(0.0)
            gram = _gaussian_sum(dist, gamma0, multipliers)
        kmat, diag, total = gram, gram.diagonal(), gram.sum()

        rng = np.random.default_rng(seed)
        labels = np.r_[np.ones(m), np.zeros(n)]
        rows = np.vstack([labels, rng.permuted(np.tile(labels, (permutations, 1)), axis=1)])
        stats = []
        starts = range(0, len(rows), chunk_size)
        for start in tqdm(starts, desc="mmd_test", disable=not progress):
            a = torch.as_tensor(rows[start : start + chunk_size], dtype=dtype, device=z.device)
            ka = a @ kmat  # (b, N): row sums of K restricted to group x
            s_xx = (ka * a).sum(1)  # Σ_{i,j ∈ x} K_ij
            s_xy = ka.sum(1) - s_xx  # Σ_{i ∈ x, j ∈ y} K_ij
            s_yy = total - s_xx - 2.0 * s_xy
            if estimator == "biased":
                stat = s_xx / m**2 + s_yy / n**2 - 2.0 * s_xy / (m * n)
            else:
                tr_x = a @ diag
                tr_y = diag.sum() - tr_x
                stat = (
                    (s_xx - tr_x) / (m * (m - 1))
                    + (s_yy - tr_y) / (n * (n - 1))
                    - 2.0 * s_xy / (m * n)
                )
            stats.append(stat)
        stats = torch.cat(stats).cpu().numpy().astype(np.float64)
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
