r"""Kernels: similarity of two feature vectors, the building block of MMD.

A kernel :math:`k(x, y)` is a similarity whose matrix over any sample is positive
semi-definite. The ones MMD uses here, each on a matrix of pairwise squared distances
:math:`D_{ij} = \lVert a_i - b_j\rVert^2` (computed once, shared by every kernel):

* Gaussian: :math:`k_\gamma(x, y) = \exp(-\lVert x - y\rVert^2 / \gamma)`, width γ.
* Multi-kernel (DAN; Long et al., "Learning Transferable Features with Deep Adaptation
  Networks", ICML 2015): a **sum** of Gaussians :math:`\sum_u k_{\alpha_u \gamma_0}` with
  :math:`\gamma_0` the mean pairwise squared distance of the joint sample. As a training
  loss the gradient flows through :math:`\gamma_0` too (``mmd``'s ``detach_bandwidth``
  says why; DAN's and TLlib's code treat it as a constant). The default
  :math:`\alpha \in \{2^{-2}, 2^{-1}, 1, 2, 2^2\}` is TLlib's family
  :math:`\exp(-d^2 / 2\sigma^2)`, :math:`\sigma^2 = \alpha' \cdot \mathrm{mean}\, d^2`,
  :math:`\alpha' \in \{2^{-3}, \dots, 2\}` — the same five kernels.
* Linear: :math:`k(x, y) = x^\top y` (its MMD compares the means only).

Shapes: ``a`` is ``(m, d)``, ``b`` is ``(n, d)``; kernel matrices are ``(m, n)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from tlearn import checks

__all__ = [
    "DEFAULT_MULTIPLIERS", "sq_distances", "gaussian_kernel", "multi_kernel", "mean_sq_distance",
    "linear_kernel",
]  # fmt: skip

#: Bandwidth multipliers α_u of the default multi-kernel: γ_u = α_u · γ₀.
DEFAULT_MULTIPLIERS: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)


def sq_distances(a: Tensor, b: Tensor) -> Tensor:
    r"""Pairwise squared distances :math:`D_{ij} = \lVert a_i\rVert^2 + \lVert b_j\rVert^2 - 2 a_i^\top b_j`.

    One matrix product instead of an ``(m, n, d)`` difference tensor; round-off below 0
    is clamped to 0.

    Example:
        >>> sq_distances(torch.tensor([[0.0, 0.0]]), torch.tensor([[3.0, 4.0], [1.0, 0.0]]))
        tensor([[25.,  1.]])
    """
    sq_a, sq_b = (a * a).sum(1), (b * b).sum(1)
    return (sq_a[:, None] + sq_b[None, :] - 2.0 * a @ b.T).clamp_min(0.0)


def gaussian_kernel(d2: Tensor, gamma: Tensor | float) -> Tensor:
    r"""Gaussian kernel of squared distances: :math:`\exp(-d^2 / \gamma)`."""
    return torch.exp(-d2 / gamma)


def multi_kernel(
    d2: Tensor, gamma0: Tensor | float, multipliers: Sequence[float] = DEFAULT_MULTIPLIERS
) -> Tensor:
    r"""DAN's multi-kernel: :math:`\sum_u \exp(-d^2 / (\alpha_u \gamma_0))` (a sum, not a mean).

    Example:
        >>> d2 = torch.tensor([0.0, 1.0])
        >>> multi_kernel(d2, 1.0, [1.0, 2.0])      # [1 + 1, e^-1 + e^-0.5]
        tensor([2.0000, 0.9744])
    """
    return sum(gaussian_kernel(d2, alpha * gamma0) for alpha in multipliers)


def mean_sq_distance(zs: Tensor, zt: Tensor, detach: bool = True) -> Tensor:
    r"""γ₀: the mean squared distance over all :math:`N^2` pairs of the joint sample ``[zs; zt]``.

    ``detach=True``: a constant of the loss, as DAN's code treats it; ``False``: a function
    of the features, differentiated like the rest. Identical points give 0; a floor of
    √(smallest normal float) keeps :math:`\exp(-0/\gamma_0) = 1` and the gradients finite.
    """
    z = torch.cat([zs, zt])
    gamma0 = sq_distances(z, z).mean()
    gamma0 = gamma0.detach() if detach else gamma0
    return gamma0.clamp_min(math.sqrt(torch.finfo(gamma0.dtype).tiny))


def linear_kernel(a: Tensor, b: Tensor) -> Tensor:
    r"""Linear kernel :math:`k(a_i, b_j) = a_i^\top b_j`, shape ``(m, n)``."""
    return a @ b.T


# --------------------------------------------------------------------------- options
KERNELS = ("multi", "gaussian", "linear")


def resolve_kernel(
    kernel: str, bandwidth: float | Sequence[float] | None
) -> tuple[float | None, tuple[float, ...]]:
    """Validate ``(kernel, bandwidth)``; return ``(fixed γ₀ or None, multipliers α)``.

    ``bandwidth``: None (γ₀ = :func:`mean_sq_distance`), a number (γ₀ itself), or, for
    ``"multi"``, a list of multipliers α_u. ``multipliers == ()`` means the linear kernel.
    """
    checks.one_of("kernel", kernel, KERNELS)
    if kernel == "linear":
        if bandwidth is not None:
            raise ValueError("the linear kernel k(x, y) = x·y has no bandwidth: use bandwidth=None")
        return None, ()
    default = DEFAULT_MULTIPLIERS if kernel == "multi" else (1.0,)
    if bandwidth is None:
        return None, default
    if np.ndim(bandwidth) == 0:  # one number (or a 0-d array or tensor): γ₀ itself
        try:
            gamma = float(bandwidth)
        except (TypeError, ValueError):
            gamma = math.nan
        if not (math.isfinite(gamma) and gamma > 0):
            raise ValueError(
                "bandwidth must be None, a positive number γ or a list of positive "
                f"multipliers, got {bandwidth!r}"
            )
        return gamma, default
    if kernel != "multi":
        raise ValueError(
            "a list of bandwidth multipliers needs kernel='multi'; for one Gaussian kernel "
            "pass a number γ (k = exp(-‖x-y‖²/γ)) or None (γ = mean squared distance)"
        )
    multipliers = tuple(float(a) for a in np.asarray(bandwidth, dtype=float).ravel())
    if not multipliers or not all(math.isfinite(a) and a > 0 for a in multipliers):
        raise ValueError(f"bandwidth multipliers must be positive numbers, got {bandwidth!r}")
    return None, multipliers
