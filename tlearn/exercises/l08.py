"""Lesson 08's grader: SHOT's information-maximisation loss (Liang, Hu & Feng, ICML 2020).

The student writes ``information_maximization_loss(logits)`` for logits ``(N, C)``:

    p_n = softmax(logits_n)                       (each row a probability vector)
    H(q) = −Σ_c q_c log q_c                       (natural log; 0 · log 0 = 0)
    L = (1/N) Σ_n H(p_n)  −  H(p̄),   p̄ = (1/N) Σ_n p_n

the *mean of the entropies* (each prediction confident) minus the *entropy of the mean*
prediction (the predictions together spread over the classes). :func:`check_information_maximization`
compares with ``tlearn.adapt.shot.information_maximization_loss`` and says *what* differs:
the sign flipped, a term missing, the two terms swapped into the same quantity, a sum where a
mean belongs, a base-2 logarithm, NaN on confident rows, or a result that is not a
differentiable scalar tensor.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from tlearn.exercises import _call, _feedback

__all__ = ["check_information_maximization"]


def _cases():
    import torch

    g = torch.Generator().manual_seed(0)
    spread = torch.eye(4, dtype=torch.float64)[[0, 1, 2, 3, 1]] * 8  # confident, every class
    collapsed = torch.zeros(6, 4, dtype=torch.float64)
    collapsed[:, 2] = 8  # confident, all one class
    return {
        "random logits (5 × 4)": 2 * torch.randn(5, 4, generator=g, dtype=torch.float64),
        "random logits (9 × 10)": torch.randn(9, 10, generator=g, dtype=torch.float64),
        "confident rows spread over the classes": spread,
        "confident rows all of one class": collapsed,
        "very confident rows (logits ±1000)": torch.tensor(
            [[1e3, -1e3, 0.0], [-1e3, 1e3, 0.0], [0.0, -1e3, 1e3]], dtype=torch.float64
        ),
    }


def _parts(logits):
    """Mean of the row entropies and entropy of the mean prediction (nats), for the report."""
    import torch

    log_p = torch.log_softmax(logits, 1)
    mean_entropy = -(log_p.exp() * log_p).sum(1).mean()
    p_bar = log_p.exp().mean(0)
    entropy_of_mean = -torch.special.xlogy(p_bar, p_bar).sum()
    return float(mean_entropy), float(entropy_of_mean)


#: Wrong answers the grader recognises: name → (value from the two parts and N, message).
_SLIPS: dict[str, tuple[Callable[[float, float, int], float], str]] = {
    "sign": (
        lambda m, h, n: h - m,
        "the sign is flipped: you return H(p̄) − mean H(p_n). Minimising that would make "
        "each prediction *less* confident and the classes *less* evenly used",
    ),
    "mean_only": (
        lambda m, h, n: m,
        "you return only the mean entropy (TENT's loss): the diversity term −H(p̄) is "
        "missing — without it, predicting one class for everything is a minimum",
    ),
    "diversity_only": (
        lambda m, h, n: -h,
        "you return only −H(p̄): the confidence term, the mean of the row entropies, is missing",
    ),
    "same": (
        lambda m, h, n: 0.0,
        "you return 0 on every input: both terms are the same quantity. One is the *mean "
        "of the entropies* of the rows (entropy first, then average), the other the "
        "*entropy of the mean* prediction (average the probabilities first, then entropy)",
    ),
    "sum": (
        lambda m, h, n: n * m - h,
        "the first term sums the row entropies: average them over the batch (÷ N), so the "
        "loss does not grow with the batch size",
    ),
    "log2": (
        lambda m, h, n: (m - h) / math.log(2),
        "your logarithm is base 2: use the natural log (torch.log / log_softmax), in nats",
    ),
}


def check_information_maximization(fn: Callable) -> bool:
    """Lesson 08: ``fn(logits)`` must return SHOT's ``mean_n H(p_n) − H(p̄)`` as a scalar tensor.

    Five cases (random logits of two shapes; confident rows spread over the classes, whose
    loss is −log 4 + a little; confident rows all of one class, whose loss is ≈ 0; very
    confident rows where ``softmax(…).log()`` gives ``0 · −inf = NaN``). Recognises the slips
    in ``_SLIPS``, NaN, a non-scalar or non-tensor result, and a result with no gradient.
    """
    import torch

    from tlearn.adapt.shot import information_maximization_loss

    name = "check_information_maximization"
    problems: list[str] = []
    hints: list[str] = []
    matches = {slip: 0 for slip in _SLIPS}
    wrong = 0
    cases = _cases()
    for label, logits in cases.items():
        x = logits.clone().requires_grad_(True)
        out, err = _call(fn, x)
        if err:
            problems.append(f"{label}: {err}")
            continue
        if not isinstance(out, torch.Tensor):
            problems.append(f"{label}: expected a torch tensor, got {type(out).__name__}")
            hints.append("return the loss as a tensor (no .item(), no numpy), so it can be "
                         "back-propagated")  # fmt: skip
            continue
        if out.numel() != 1:
            problems.append(f"{label}: expected a scalar, got shape {tuple(out.shape)}")
            hints.append("average over the batch: one number for the whole batch")
            continue
        value = float(out.detach())
        expected = float(information_maximization_loss(logits))
        if math.isnan(value):
            problems.append(f"{label}: got NaN (expected {expected:.4f})")
            hints.append(
                "softmax(…).log() is −inf where a probability underflows to 0, and "
                "0 · −inf = NaN: take the row entropies from log_softmax"
            )
            continue
        if not out.requires_grad:
            problems.append(f"{label}: the result carries no gradient (was it detached?)")
            continue
        if abs(value - expected) > 1e-6 * max(1.0, abs(expected)):
            wrong += 1
            m, h = _parts(logits)
            for slip, (formula, _) in _SLIPS.items():
                if abs(value - formula(m, h, len(logits))) < 1e-6 * max(1.0, abs(value)):
                    matches[slip] += 1
            problems.append(
                f"{label}: expected {expected:.4f} = {m:.4f} (mean of the entropies) − "
                f"{h:.4f} (entropy of the mean), got {value:.4f}"
            )
    found = [s for s, n in matches.items() if wrong and n == wrong]
    if found:
        hints.insert(0, _SLIPS[found[0]][1])
    elif wrong:
        hints.append("p = softmax(logits) per row; L = mean over rows of −Σ p log p, minus "
                     "−Σ p̄ log p̄ with p̄ the mean of the rows of p")  # fmt: skip
    return _feedback(name, problems, list(dict.fromkeys(hints)))
