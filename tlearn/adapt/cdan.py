r"""CDAN: conditional domain-adversarial training — DANN on features *and* predictions.

Long, Cao, Wang & Jordan, "Conditional Adversarial Domain Adaptation", NeurIPS 2018. DANN's
discriminator sees only the features :math:`f`, so it can be fooled by features whose
*overall* distributions match while class 3 of the target lands on class 8 of the source.
CDAN's discriminator :math:`D` sees the features **conditioned on the class prediction**
:math:`g = \mathrm{softmax}(\text{logits})`, through the multilinear map

.. math::  T_\otimes(f, g) = f \otimes g \in \mathbb R^{d_f \cdot C},
           \qquad (f \otimes g)_{i, c} = f_i\, g_c

(``(N, d_f)`` and ``(N, C)`` → ``(N, d_f·C)``), which carries the joint distribution of
features and predictions. When :math:`d_f \cdot C` is large (the paper: > 4096) it uses the
randomized multilinear map, an unbiased estimate of the same inner products in :math:`d`
dimensions:

.. math::  T_\odot(f, g) = \tfrac{1}{\sqrt d}\, (R_f f) \odot (R_g g),
           \qquad R_f \in \mathbb R^{d \times d_f},\; R_g \in \mathbb R^{d \times C}

with fixed Gaussian :math:`R_f, R_g` (drawn once, never trained). The rest is DANN: a
gradient reversal layer before :math:`D`, the :math:`\lambda_p` schedule, binary
cross-entropy with source = 1 and target = 0. As in the authors' code, :math:`g` is
*detached*: the adversarial gradient reaches the network only through :math:`f`.

**CDAN+E** (entropy conditioning) weights each example's domain loss by
:math:`w = 1 + e^{-H(g)}`, :math:`H(g) = -\sum_c g_c \log g_c`, so confident predictions
count more than uncertain ones, whose conditioning is least reliable. The weights are
normalised per domain (see :func:`entropy_weights`). Written out::

    g_s, g_t = logits_s.softmax(1).detach(), logits_t.softmax(1).detach()
    h = grad_reverse(torch.cat([multilinear_map(zs, g_s), multilinear_map(zt, g_t)]), λ_p)
    domain_labels = torch.cat([torch.ones(len(zs)), torch.zeros(len(zt))])  # 1 = source
    loss = bce_with_logits(D(h), domain_labels)           # CDAN+E: Σ_i w_i · bce_i
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tlearn import checks
from tlearn.adapt.dann import DomainAdversarialLoss, dann_lambda

__all__ = [
    "multilinear_map", "MultilinearMap", "RandomizedMultilinearMap", "entropy_weights",
    "ConditionalAdversarialLoss", "RANDOMIZE_ABOVE",
]  # fmt: skip

#: The paper's rule: use the randomized map when :math:`d_f \cdot C` exceeds this.
RANDOMIZE_ABOVE = 4096


# --------------------------------------------------------------------------- the maps
def multilinear_map(f: Tensor, g: Tensor) -> Tensor:
    r"""The multilinear map :math:`T_\otimes(f, g) = f \otimes g`, flattened per example.

    ``(N, d_f)`` and ``(N, C)`` → ``(N, d_f·C)``; entry ``[n, i·C + c]`` is ``f[n, i]·g[n, c]``.

    Example:
        >>> f, g = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.25, 0.75]])
        >>> multilinear_map(f, g)
        tensor([[0.2500, 0.7500, 0.5000, 1.5000]])
    """
    _check_rows(f, g)
    return (f.unsqueeze(2) * g.unsqueeze(1)).flatten(1)


class MultilinearMap(nn.Module):
    """:func:`multilinear_map` as a module, ``output_dim = in_features · num_classes``."""

    product = "⊗"  # how extra_repr writes the map

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.in_features = checks.positive_int("in_features", in_features)
        self.num_classes = checks.positive_int("num_classes", num_classes)
        self.output_dim = in_features * num_classes

    def forward(self, f: Tensor, g: Tensor) -> Tensor:
        _check_widths(f, g, self.in_features, self.num_classes)
        return multilinear_map(f, g)

    def extra_repr(self) -> str:
        return f"{self.in_features} {self.product} {self.num_classes} → {self.output_dim}"


class RandomizedMultilinearMap(MultilinearMap):
    r"""The randomized multilinear map :math:`T_\odot(f, g) = \frac{1}{\sqrt d}(R_f f) \odot (R_g g)`.

    :math:`R_f` (``output_dim × in_features``) and :math:`R_g` (``output_dim × num_classes``)
    have i.i.d. standard normal entries, drawn from the global RNG when the module is built
    (seed first for a reproducible map). They are buffers: saved in the ``state_dict``, moved
    by ``.to(device)``, never trained. In expectation the map keeps the multilinear map's
    inner products: :math:`E[\langle T_\odot(f, g), T_\odot(f', g')\rangle] = \langle f,
    f'\rangle \langle g, g'\rangle` (Long et al., NeurIPS 2018, Theorem 1).

    Shapes: ``(N, in_features)``, ``(N, num_classes)`` → ``(N, output_dim)``.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> T = RandomizedMultilinearMap(128, 10, output_dim=256)
        >>> T(torch.randn(4, 128), torch.softmax(torch.randn(4, 10), 1)).shape
        torch.Size([4, 256])
    """

    product = "⊙"

    def __init__(self, in_features: int, num_classes: int, output_dim: int = 1024) -> None:
        super().__init__(in_features, num_classes)
        self.output_dim = checks.positive_int("output_dim", output_dim)
        self.register_buffer("R_f", torch.randn(output_dim, in_features))
        self.register_buffer("R_g", torch.randn(output_dim, num_classes))

    def forward(self, f: Tensor, g: Tensor) -> Tensor:
        _check_widths(f, g, self.in_features, self.num_classes)
        R_f, R_g = self.R_f.to(f.dtype), self.R_g.to(g.dtype)
        return (f @ R_f.T) * (g @ R_g.T) / math.sqrt(self.output_dim)


# --------------------------------------------------------------------------- CDAN+E weights
def entropy_weights(g_s: Tensor, g_t: Tensor) -> Tensor:
    r"""CDAN+E's example weights for the rows of :math:`[g_s; g_t]`, shape ``(n_s + n_t,)``.

    Each example gets :math:`w_i = 1 + e^{-H(g_i)}` with :math:`H(g) = -\sum_c g_c \log g_c`
    (:math:`0 \log 0 = 0`): from 2 for a one-hot prediction down to :math:`1 + 1/C` for a
    uniform one. The weights are then normalised **per domain** so that each domain's weights
    sum to its share of the batch:

    .. math::  \tilde w_i = \frac{w_i}{\sum_{j \in D(i)} w_j} \cdot \frac{n_{D(i)}}{n_s + n_t}

    and the loss is :math:`\sum_i \tilde w_i \ell_i`. Equal weights give back the plain mean
    of CDAN, and with :math:`n_s = n_t` this is exactly the authors' normalisation (their
    ``pytorch/loss.py`` divides by each domain's sum, then by the total, 2): each domain
    contributes half the loss however confident its predictions are. The weights carry no
    gradient (the authors' code also sends a reversed gradient into the entropy; we follow
    the paper's equation, in which the weights only reweight examples).

    Args:
        g_s, g_t: class probabilities (rows on the simplex), ``(n_s, C)`` and ``(n_t, C)``.

    Example:
        >>> one_hot, uniform = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.5, 0.5]])
        >>> entropy_weights(torch.cat([one_hot, uniform]), one_hot)  # w = 2 and 1.5 in source
        tensor([0.3810, 0.2857, 0.3333])
    """
    _check_rows(g_s, g_t, ("g_s", "g_t"), same_rows=False)
    n = len(g_s) + len(g_t)
    parts = []
    for g in (g_s, g_t):
        g = g.detach()
        h = -torch.special.xlogy(g, g).sum(1)  # prediction entropy H(g) per example
        w = 1.0 + torch.exp(-h)
        parts.append(w / w.sum() * (len(g) / n))
    return torch.cat(parts)


# --------------------------------------------------------------------------- the loss module
class ConditionalAdversarialLoss(nn.Module):
    r"""CDAN's (and CDAN+E's) conditional domain-adversarial loss as an alignment module.

    .. math::  \mathcal L_d = \sum_i \tilde w_i\,\mathrm{BCE}\Big(D\big(R_{\lambda_p}
               (T(f_i, g_i))\big),\; d_i\Big),\qquad g_i = \mathrm{softmax}(\text{logits}_i)

    with :math:`T` the multilinear map (randomized when :math:`d_f \cdot C` is large),
    :math:`g` detached, :math:`R_{\lambda_p}` gradient reversal with DANN's schedule, domain
    labels :math:`d_i` = 1 for source and 0 for target, and :math:`\tilde w_i = 1/N` (CDAN)
    or the normalised entropy weights of :func:`entropy_weights` (CDAN+E). Its parameters are
    the discriminator's: give them to the same optimiser as the model's (``fit_adapt`` does).

    Args:
        in_features: feature dimension :math:`d_f`.
        num_classes: number of classes :math:`C` (the width of the logits).
        entropy_conditioning: CDAN+E's weights :math:`1 + e^{-H(g)}`.
        randomized: use the randomized map; None → when ``in_features · num_classes`` >
            :data:`RANDOMIZE_ABOVE` (4096), as in the paper.
        randomized_dim: output dimension :math:`d` of the randomized map (the paper: 1024).
        discriminator: your own :math:`D`, ``(N, map dim)`` → one logit per row (the map dim
            is ``self.map.output_dim``); default ``DomainClassifier(map dim)``.
        schedule: :math:`\lambda_p` as a function of progress p ∈ [0, 1] (default DANN's).

    ``forward(zs, zt, *, logits_s, logits_t, progress=1.0)``: features ``(n_s, d_f)``,
    ``(n_t, d_f)`` and class logits ``(n_s, C)``, ``(n_t, C)`` → scalar loss. ``logs``
    holds ``{"domain_accuracy", "lambda"}`` of the last call.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> adversary = ConditionalAdversarialLoss(8, 3, entropy_conditioning=True)
        >>> zs, zt = torch.randn(16, 8, requires_grad=True), torch.randn(16, 8) + 1
        >>> logits_s, logits_t = torch.randn(16, 3), torch.randn(16, 3)
        >>> loss = adversary(zs, zt, logits_s=logits_s, logits_t=logits_t, progress=0.5)
        >>> loss.backward()
        >>> adversary.map, sorted(adversary.logs), zs.grad.shape
        (MultilinearMap(8 ⊗ 3 → 24), ['domain_accuracy', 'lambda'], torch.Size([16, 8]))
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int | None,
        *,
        entropy_conditioning: bool = False,
        randomized: bool | None = None,
        randomized_dim: int = 1024,
        discriminator: nn.Module | None = None,
        schedule: Callable[[float], float] = dann_lambda,
    ) -> None:
        super().__init__()
        if num_classes is None:
            raise ValueError(
                "CDAN conditions on the class predictions: it needs num_classes, the width of "
                "the model's class logits, and a model whose output is logits of shape (N, C)"
            )
        in_features = checks.positive_int("in_features", in_features)
        num_classes = checks.positive_int("num_classes", num_classes)
        if randomized or (randomized is None and in_features * num_classes > RANDOMIZE_ABOVE):
            self.map = RandomizedMultilinearMap(in_features, num_classes, randomized_dim)
        else:
            self.map = MultilinearMap(in_features, num_classes)
        self.adversary = DomainAdversarialLoss(self.map.output_dim, discriminator, schedule)
        self.entropy_conditioning = bool(entropy_conditioning)
        self.logs: dict[str, float] = {}

    def forward(
        self,
        zs: Tensor,
        zt: Tensor,
        *,
        logits_s: Tensor | None = None,
        logits_t: Tensor | None = None,
        progress: float = 1.0,
    ) -> Tensor:
        if logits_s is None or logits_t is None:
            raise ValueError(
                "CDAN needs the class logits of both batches: call it with logits_s= and "
                "logits_t= (fit_adapt passes them when the model returns class logits)"
            )
        dtype = torch.float64 if zs.dtype == torch.float64 else torch.float32
        zs, zt = zs.to(dtype), zt.to(dtype)
        g_s = _probabilities(logits_s, zs, "logits_s", "zs").to(dtype)
        g_t = _probabilities(logits_t, zt, "logits_t", "zt").to(dtype)
        weights = entropy_weights(g_s, g_t) if self.entropy_conditioning else None
        loss = self.adversary(self.map(zs, g_s), self.map(zt, g_t), progress, weights=weights)
        self.logs = dict(self.adversary.logs)
        return loss

    def extra_repr(self) -> str:
        return f"entropy_conditioning={self.entropy_conditioning}"


# --------------------------------------------------------------------------- checks
def _probabilities(logits: Tensor, z: Tensor, name: str, z_name: str) -> Tensor:
    """softmax(logits), detached, after checking they are (N, C) logits for the N rows of z."""
    what = f"class logits of shape ({len(z)}, C), one row per row of {z_name}"
    checks.matrix(logits, name, what, rows=len(z))
    return F.softmax(logits.detach().float(), dim=1)


def _check_rows(
    f: Tensor, g: Tensor, names: tuple[str, str] = ("f", "g"), same_rows: bool = True
) -> None:
    for t, name in zip((f, g), names, strict=True):
        checks.matrix(t, name, "a 2-D tensor (N, width)")
    if same_rows and len(f) != len(g):
        raise ValueError(
            f"{names[0]} and {names[1]} must have one row per example each, got {len(f)} and "
            f"{len(g)} rows"
        )
    if not same_rows and f.shape[1] != g.shape[1]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same number of classes, got "
            f"{f.shape[1]} and {g.shape[1]}"
        )


def _check_widths(f: Tensor, g: Tensor, in_features: int, num_classes: int) -> None:
    _check_rows(f, g)
    if f.shape[1] != in_features or g.shape[1] != num_classes:
        raise ValueError(
            f"expected features (N, {in_features}) and class probabilities (N, {num_classes}), "
            f"got {tuple(f.shape)} and {tuple(g.shape)}"
        )
