r"""DANN: domain-adversarial training with a gradient reversal layer.

Ganin et al., "Domain-Adversarial Training of Neural Networks", JMLR 2016. A feature
extractor :math:`G_f` feeds a label predictor :math:`G_y` *and*, through a gradient reversal
layer (GRL), a domain classifier :math:`G_d` that tells source from target. The GRL is the
identity going forward and multiplies the gradient by :math:`-\lambda` going back, so one
backward pass trains :math:`G_d` to *separate* the domains while it trains :math:`G_f` to
make them *inseparable*:

.. math::  E(\theta_f, \theta_y, \theta_d) = \mathcal L_y(\theta_f, \theta_y)
           - \lambda\, \mathcal L_d(\theta_f, \theta_d)

(:math:`\theta_d` minimises :math:`\mathcal L_d`; :math:`\theta_f` maximises it.)

The paper's schedules (§5.2.2), with training progress :math:`p \in [0, 1]`:

* :func:`dann_lambda` — :math:`\lambda_p = \frac{2}{1 + \exp(-\gamma p)} - 1`, γ = 10: the
  domain signal is switched on gradually, while the domain classifier is still noise.
* :func:`dann_lr` — :math:`\mu_p = \frac{\mu_0}{(1 + \alpha p)^\beta}`, α = 10, β = 0.75.

:class:`DomainAdversarialLoss` packs :math:`G_d`, the GRL and the schedule into one
alignment module — ``loss = ce(G_y(zs), ys) + adversary(zs, zt, progress=p)`` — whose
discriminator is trained by the same optimiser as the network. Written out::

    z = grad_reverse(torch.cat([zs, zt]), dann_lambda(p))
    domain_labels = torch.cat([torch.ones(len(zs)), torch.zeros(len(zt))])  # 1 = source
    loss = ce(G_y(zs), ys) + bce_with_logits(domain_clf(z), domain_labels)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tlearn import checks

__all__ = [
    "grad_reverse", "GradientReversal", "DomainClassifier", "DomainAdversarialLoss", "dann_lambda",
    "dann_lr",
]  # fmt: skip


# --------------------------------------------------------------------------- gradient reversal
class _GradReverse(torch.autograd.Function):
    """R(x) = x going forward; the gradient times −λ going back."""

    @staticmethod
    def forward(ctx, x: Tensor, lambda_: float) -> Tensor:
        ctx.lambda_ = lambda_
        return x.view_as(x)  # a new tensor node sharing x's memory: no copy

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor, None]:
        return grad_output * (-ctx.lambda_), None


def grad_reverse(x: Tensor, lambda_: float = 1.0) -> Tensor:
    r"""Gradient reversal: :math:`R(x) = x` forward, :math:`dR/dx = -\lambda I` backward.

    Args:
        x: any tensor.
        lambda_: λ ≥ 0, the weight of the domain-confusion signal (see :func:`dann_lambda`).

    Example:
        >>> x = torch.ones(3, requires_grad=True)
        >>> grad_reverse(x, 0.5).sum().backward()
        >>> x.grad
        tensor([-0.5000, -0.5000, -0.5000])
    """
    return _GradReverse.apply(x, _check_lambda(lambda_))


class GradientReversal(nn.Module):
    r"""Gradient reversal layer (GRL; Ganin et al., JMLR 2016) as a module.

    Forward: ``y = x`` (any shape). Backward: ``dL/dx = −λ · dL/dy``. Set ``.lambda_``
    during training to follow a schedule (``grl.lambda_ = dann_lambda(p)``).

    Example:
        >>> grl = GradientReversal(lambda_=1.0)
        >>> net = nn.Sequential(grl, DomainClassifier(128))
        >>> net(torch.randn(4, 128)).shape
        torch.Size([4])
    """

    def __init__(self, lambda_: float = 1.0) -> None:
        super().__init__()
        self.lambda_ = _check_lambda(lambda_)

    def forward(self, x: Tensor) -> Tensor:
        return grad_reverse(x, self.lambda_)

    def extra_repr(self) -> str:
        return f"lambda_={self.lambda_:g}"


# --------------------------------------------------------------------------- schedules
def dann_lambda(p: float, gamma: float = 10.0) -> float:
    r"""DANN's domain-weight schedule: :math:`\lambda_p = \frac{2}{1 + e^{-\gamma p}} - 1`.

    Rises from 0 at ``p = 0`` to ≈ 1 at ``p = 1`` (0.99991 for γ = 10). ``p`` is the
    training progress, e.g. ``step / total_steps`` (Ganin et al., JMLR 2016, §5.2.2).

    Example:
        >>> dann_lambda(0.0), round(dann_lambda(1.0), 4)
        (0.0, 0.9999)
    """
    p = _check_progress(p)
    return 2.0 / (1.0 + math.exp(-gamma * p)) - 1.0


def dann_lr(p: float, lr0: float, alpha: float = 10.0, beta: float = 0.75) -> float:
    r"""DANN's learning-rate annealing: :math:`\mu_p = \frac{\mu_0}{(1 + \alpha p)^\beta}`.

    With α = 10, β = 0.75 the rate falls to ``lr0 / 11**0.75 ≈ 0.166·lr0`` at ``p = 1``
    (Ganin et al., JMLR 2016, §5.2.2).

    Example:
        >>> dann_lr(0.0, 0.01), round(dann_lr(1.0, 0.01), 5)
        (0.01, 0.00166)
    """
    p = _check_progress(p)
    lr0 = checks.positive_float("lr0", lr0)
    return lr0 / (1.0 + alpha * p) ** beta


# --------------------------------------------------------------------------- adversarial loss
class DomainClassifier(nn.Module):
    r"""The domain discriminator :math:`G_d`: an MLP from features to one domain logit.

    ``Linear → ReLU → Dropout`` for every hidden width, then ``Linear(·, 1)``; the output
    is squeezed to shape ``(N,)`` to pair with
    ``F.binary_cross_entropy_with_logits(logits, domain_labels)`` (1 = source, 0 = target,
    or the other way round — be consistent). Ganin et al. use 1024–1024 with dropout 0.5 on
    Office; for 128-d digit features (256, 256) is plenty.

    Args:
        in_features: feature dimension d.
        hidden: hidden widths (an int for one hidden layer; ``()`` for a linear classifier).
        dropout: dropout probability after each hidden layer.
        negative_slope: 0 → ``ReLU``; > 0 → ``LeakyReLU(negative_slope)``, whose units cannot
            die: an adversarial feature extractor can push a ReLU discriminator's units into
            the region where they output zero for every input, which silences the game (the
            GAN practice of Radford et al. 2016).

    Shapes: ``(N, in_features)`` → ``(N,)`` logits.

    Example:
        >>> clf = DomainClassifier(128, hidden=(64,), dropout=0.0)
        >>> clf(torch.randn(5, 128)).shape
        torch.Size([5])
    """

    def __init__(
        self,
        in_features: int,
        hidden: int | Sequence[int] = (256, 256),
        dropout: float = 0.5,
        negative_slope: float = 0.0,
    ) -> None:
        super().__init__()
        self.in_features = checks.positive_int("in_features", in_features)
        widths = (hidden,) if isinstance(hidden, int) else tuple(hidden)
        widths = tuple(checks.positive_int("hidden (each width)", w) for w in widths)
        for name, value in (("dropout", dropout), ("negative_slope", negative_slope)):
            if not (isinstance(value, (int, float)) and 0.0 <= value < 1.0):
                raise ValueError(f"{name} must be in [0, 1), got {value!r}")
        layers: list[nn.Module] = []
        for d_in, d_out in zip((in_features, *widths), widths, strict=False):
            layers += [nn.Linear(d_in, d_out)]
            layers += [nn.LeakyReLU(negative_slope) if negative_slope > 0 else nn.ReLU()]
            layers += [nn.Dropout(dropout)] if dropout > 0 else []
        self.net = nn.Sequential(*layers, nn.Linear((in_features, *widths)[-1], 1))

    def forward(self, x: Tensor) -> Tensor:
        what = f"features of shape (N, {self.in_features})"
        checks.matrix(x, "the input of DomainClassifier", what, columns=self.in_features)
        return self.net(x).squeeze(1)


class DomainAdversarialLoss(nn.Module):
    r"""DANN's domain-adversarial loss as an alignment module (Ganin et al., JMLR 2016).

    .. math::  \mathcal L_d = \mathrm{BCE}\big(G_d(R_{\lambda_p}([z_s; z_t])),\,
               [\mathbf 1; \mathbf 0]\big), \qquad \lambda_p = \mathrm{schedule}(p)

    The discriminator :math:`G_d` sits behind gradient reversal :math:`R_{\lambda_p}`: one
    backward pass trains :math:`G_d` to tell source (label 1) from target (label 0) and
    sends :math:`-\lambda_p` times that gradient into the features, which learn to make the
    domains inseparable. Its parameters are the discriminator's: give them to the same
    optimiser as the model's.

    Args:
        in_features: feature dimension d, for the default ``DomainClassifier(in_features)``.
        discriminator: your own :math:`G_d`, ``(N, d)`` → one logit ``(N,)`` / ``(N, 1)``
            (binary cross-entropy) or two ``(N, 2)`` (cross-entropy, class 1 = source).
            Give ``in_features`` or ``discriminator``.
        schedule: λ_p as a function of training progress p ∈ [0, 1] (default
            :func:`dann_lambda`; ``lambda p: 1.0`` for a constant weight).

    ``forward(zs, zt, progress=1.0, *, weights=None)``: features ``(n_s, d)`` and
    ``(n_t, d)`` → scalar loss (float32 even under autocast). ``weights``, optional, shape
    ``(n_s + n_t,)``: per-example weights :math:`w_i \ge 0` of the rows of
    :math:`[z_s; z_t]`, giving :math:`\sum_i w_i \ell_i` instead of the mean
    :math:`\frac1N \sum_i \ell_i` (CDAN+E's entropy weights; they are not differentiated).
    ``logs`` holds ``{"domain_accuracy", "lambda"}`` of the last call.

    Example (one hand-written training step):
        >>> _ = torch.manual_seed(0)
        >>> net, head = nn.Linear(4, 8), nn.Linear(8, 3)
        >>> adversary = DomainAdversarialLoss(in_features=8)
        >>> params = [*net.parameters(), *head.parameters(), *adversary.parameters()]
        >>> xs, ys, xt = torch.randn(16, 4), torch.randint(0, 3, (16,)), torch.randn(16, 4) + 1
        >>> zs, zt = net(xs), net(xt)
        >>> loss = F.cross_entropy(head(zs), ys) + adversary(zs, zt, progress=0.5)
        >>> loss.backward()
        >>> with torch.no_grad():                   # one SGD step on every parameter
        ...     for p in params:
        ...         p -= 0.1 * p.grad
        >>> sorted(adversary.logs), round(adversary.logs["lambda"], 4)
        (['domain_accuracy', 'lambda'], 0.9866)
    """

    def __init__(
        self,
        in_features: int | None = None,
        discriminator: nn.Module | None = None,
        schedule: Callable[[float], float] = dann_lambda,
    ) -> None:
        super().__init__()
        if discriminator is None:
            if in_features is None:
                raise ValueError(
                    "DomainAdversarialLoss needs in_features (for the default "
                    "DomainClassifier(in_features)) or your own discriminator=nn.Module"
                )
            discriminator = DomainClassifier(in_features)
        self.discriminator, self.schedule = discriminator, schedule
        self.logs: dict[str, float] = {}

    def forward(
        self, zs: Tensor, zt: Tensor, progress: float = 1.0, *, weights: Tensor | None = None
    ) -> Tensor:
        checks.feature_pair(zs, zt, ("zs (source features)", "zt (target features)"), min_rows=1)
        lambda_ = float(self.schedule(_check_progress(progress)))
        logits = self.discriminator(grad_reverse(torch.cat([zs, zt]), lambda_))
        logits = logits if logits.dtype == torch.float64 else logits.float()
        source = torch.cat([zs.new_ones(len(zs)), zs.new_zeros(len(zt))]).to(logits.dtype)
        reduction = "mean" if weights is None else "none"
        if logits.dim() == 1 or logits.shape[1] == 1:  # one logit: P(source) = σ(logit)
            logits = logits.reshape(-1)
            loss = F.binary_cross_entropy_with_logits(logits, source, reduction=reduction)
            correct = (logits > 0) == source.bool()
        else:  # two logits: class 1 = source
            loss = F.cross_entropy(logits, source.long(), reduction=reduction)
            correct = logits.argmax(1) == source.long()
        if weights is not None:
            loss = (_check_weights(weights, len(source)).to(loss) * loss).sum()
        self.logs = {"domain_accuracy": correct.float().mean().item(), "lambda": lambda_}
        return loss


# --------------------------------------------------------------------------- checks
def _check_lambda(lambda_: float) -> float:
    why = " (a negative λ would undo the reversal and help the features *separate* the domains)"
    return checks.nonnegative_float("lambda_", lambda_, why=why)


def _check_weights(weights: Tensor, n: int) -> Tensor:
    if not isinstance(weights, Tensor) or weights.shape != (n,):
        shape = tuple(weights.shape) if isinstance(weights, Tensor) else type(weights).__name__
        raise ValueError(
            f"weights must be a tensor of shape ({n},), one per row of [zs; zt], got {shape}"
        )
    if not bool(torch.isfinite(weights).all()) or bool((weights < 0).any()):
        raise ValueError("weights must be finite and >= 0")
    return weights.detach()


def _check_progress(p: float) -> float:
    return checks.probability("training progress p (step / total_steps)", p)
