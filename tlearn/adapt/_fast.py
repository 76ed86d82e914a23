r"""Speed kernels for :func:`tlearn.adapt.mmd.mmd` (private: read ``kernels.py`` and ``mmd.py`` first).

Every function here computes *exactly* what the plain definitions compute — the tests
compare value and gradient (``torch.autograd.grad``, float64 and float32, unequal batch
sizes, every estimator and kernel that comes here) with :func:`tlearn.adapt.mmd.plain_mmd`.
Three tricks, for the biased/unbiased MMD with a Gaussian kernel or a multi-kernel whose
widths are power-of-two multiples of each other (the default; other families take the
plain path):

1. **γ₀ in O(N·d)**: for the joint sample :math:`z`,
   :math:`\frac{1}{N^2}\sum_{ij}\lVert z_i - z_j\rVert^2 = \frac{2}{N}\sum_i \lVert z_i - \bar z\rVert^2`.
2. **One Gram matrix, one exp for all kernels**: each block of pairs (ss, tt, st) is one
   matrix product; with ratios :math:`r_u = \gamma_{max}/\gamma_u = 2^{k_u}` (the default:
   1, 2, 4, 8, 16), :math:`\exp(-D/\gamma_u) = \exp(-D/\gamma_{max})^{r_u}` by repeated
   squaring.
3. **An analytic backward** that keeps one ``(m, n)`` matrix per block instead of every
   kernel matrix (see :class:`_GaussianKernelSum`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from tlearn.checks import float_compute


def mean_sq_distance(zs: Tensor, zt: Tensor, detach: bool = True) -> Tensor:
    """γ₀ of :func:`tlearn.adapt.kernels.mean_sq_distance` in O(N·d) (trick 1)."""
    z = torch.cat([zs, zt])
    z = z.detach() if detach else z
    gamma0 = (2.0 / len(z)) * (z - z.mean(0)).pow(2).sum()
    return gamma0.clamp_min(math.sqrt(torch.finfo(gamma0.dtype).tiny))


def squaring_plan(multipliers: tuple[float, ...]) -> list[int] | None:
    """k_u with γ_max/γ_u = 2^k_u (0 ≤ k_u ≤ 16) for every kernel, or None: then no fast path."""
    plan = [math.log2(max(multipliers) / a) for a in multipliers]
    if all(abs(k - round(k)) <= 1e-9 and 0 <= round(k) <= 16 for k in plan):
        return [round(k) for k in plan]
    return None


class _GaussianKernelSum(torch.autograd.Function):
    r"""S = Σ_{i,j} Σ_u exp(−‖a_i − b_j‖² / γ_u) over a block of pairs, with its gradient by hand.

    ``b=None`` means the symmetric block ``b = a``; ``exclude_diagonal`` drops ``i = j``.
    ``inv_top`` is 1/γ_max (a tensor), ``plan`` the k_u of :func:`squaring_plan`: the
    kernels are r_u = 2^k_u powers of the widest one, made by repeated squaring.

    Forward: one matrix product gives every −D_ij/γ_max at once,
    −D_ij/γ_max = [a_i, ‖a_i‖², 1] · [2 b_j, −1, −‖b_j‖²] / γ_max.

    Backward: with G = Σ_u r_u k_u, ∂S/∂D_ij = −G_ij/γ_max and ∂D_ij/∂a_i = 2(a_i − b_j):

        ∂S/∂a = (2/γ_max) (G b − rowsum(G) ⊙ a),   ∂S/∂b = (2/γ_max) (Gᵀ a − colsum(G) ⊙ b),

    (the symmetric block counts both roles: ∂S/∂a = (4/γ_max)(G a − rowsum(G) ⊙ a)).
    """

    @staticmethod
    def forward(ctx, a, b, inv_top, plan, exclude_diagonal):  # noqa: D102
        other = a if b is None else b
        sq_a, sq_b = (a * a).sum(1, keepdim=True), (other * other).sum(1, keepdim=True)
        left = torch.cat([a, sq_a, torch.ones_like(sq_a)], dim=1)
        right = torch.cat([2.0 * other, -torch.ones_like(sq_b), -sq_b], dim=1) * inv_top
        work = (left @ right.T).clamp_max_(0.0)  # −D/γ_max; round-off above 0 → 0
        if exclude_diagonal:
            work.diagonal().fill_(-math.inf)  # exp(−inf) = 0: every kernel skips i = j
        work.exp_()  # the widest kernel; squaring it k times gives the kernel with r = 2^k
        weights = [plan.count(k) for k in range(max(plan) + 1)]  # kernels per k
        total = work.sum() * weights[0]
        grad_weights = work * weights[0]  # G = Σ_u r_u k_u, built up as we go
        for k in range(1, len(weights)):
            work.mul_(work)
            if weights[k]:
                total = total + work.sum() * weights[k]
                grad_weights.add_(work, alpha=weights[k] * 2**k)
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


def gaussian_mmd(
    zs: Tensor, zt: Tensor, gamma0: Tensor | float, multipliers: tuple[float, ...], unbiased: bool
) -> Tensor:
    """Biased or unbiased MMD² with a power-of-two family of Gaussians: ``plain_mmd``, faster.

    Expects ``zs, zt`` centred on their joint mean (exact float32 distances in trick 2) and
    ``squaring_plan(multipliers)`` not None.
    """
    m, n = len(zs), len(zt)
    plan = squaring_plan(multipliers)
    inv_top = torch.as_tensor(1.0 / (max(multipliers) * gamma0), dtype=zs.dtype, device=zs.device)
    s_ss = _GaussianKernelSum.apply(zs, None, inv_top, plan, unbiased)
    s_tt = _GaussianKernelSum.apply(zt, None, inv_top, plan, unbiased)
    s_st = _GaussianKernelSum.apply(zs, zt, inv_top, plan, False)
    if unbiased:
        return s_ss / (m * (m - 1)) + s_tt / (n * (n - 1)) - s_st * (2.0 / (m * n))
    return s_ss / (m * m) + s_tt / (n * n) - s_st * (2.0 / (m * n))
