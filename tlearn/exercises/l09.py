r"""Lesson 09's grader: Soft Neighborhood Density (Saito et al., ICCV 2021).

The student writes ``snd(probs, temperature=0.05)`` for the softmax outputs ``probs`` ``(n, C)``
of ``n`` target examples:

    p̂_i = p_i / ‖p_i‖₂                           (rows L2-normalised)
    s_ij = p̂_i · p̂_j / τ     for j ≠ i            (the diagonal excluded)
    P_ij = exp(s_ij) / Σ_{k≠i} exp(s_ik)          (a softmax over each row's neighbours)
    SND = −(1/n) Σ_i Σ_{j≠i} P_ij log P_ij         (the mean row entropy, natural log)

:func:`check_snd` compares with ``tlearn.adapt.selection.snd`` and says *what* differs: the
diagonal kept (every point its own nearest neighbour), rows not normalised, the temperature
multiplied or forgotten, a sum over rows where the mean belongs, a base-2 logarithm, the sign
flipped, or NaN / inf where a large similarity overflowed ``exp``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from tlearn.exercises import _call, _feedback

__all__ = ["check_snd"]


def _cases() -> dict[str, tuple[np.ndarray, float]]:
    rng = np.random.default_rng(0)

    def softmax(logits):
        e = np.exp(logits - logits.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    two_clusters = np.array([[0.9, 0.1, 0.0], [0.85, 0.1, 0.05], [0.1, 0.9, 0.0],
                             [0.05, 0.9, 0.05], [0.8, 0.15, 0.05]])  # fmt: skip
    return {
        "random predictions (6 × 4), τ = 0.05": (softmax(2 * rng.normal(size=(6, 4))), 0.05),
        "random predictions (12 × 10), τ = 0.05": (softmax(rng.normal(size=(12, 10))), 0.05),
        "two clusters (5 × 3), τ = 0.5": (two_clusters, 0.5),
        "confident one-hot rows (4 × 3), τ = 0.001": (np.eye(3)[[0, 1, 2, 0]], 0.001),
    }


def _variant(p: np.ndarray, tau: float, *, normalise=True, diagonal=False, scale="divide",
             reduce="mean", log=np.log) -> float:  # fmt: skip
    """SND computed with one ingredient changed (the slips the grader recognises)."""
    if normalise:
        p = p / np.linalg.norm(p, axis=1, keepdims=True)
    s = p @ p.T
    s = {"divide": s / tau, "multiply": s * tau, "none": s}[scale]
    if not diagonal:
        np.fill_diagonal(s, -np.inf)
    s = s - s.max(1, keepdims=True)
    q = np.exp(s) / np.exp(s).sum(1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(q > 0, q * log(np.where(q > 0, q, 1)), 0.0).sum(1)
    return float(h.mean() if reduce == "mean" else h.sum())


#: Wrong answers the grader recognises: name → (variant's options, or a transform, message).
_SLIPS: dict[str, tuple[dict, str]] = {
    "diagonal": ({"diagonal": True}, "the diagonal is included: each example is its own most "
                 "similar neighbour (s_ii = 1/τ, the largest entry), so it takes most of its "
                 "row's softmax. Set s_ii to −inf before the softmax"),
    "normalise": ({"normalise": False}, "the rows are not L2-normalised: divide each row of "
                  "probs by its Euclidean norm first, so s_ij is a cosine similarity"),
    "multiply": ({"scale": "multiply"}, "the similarities are multiplied by τ: divide them by "
                 "the temperature (τ = 0.05 sharpens the softmax)"),
    "no_temperature": ({"scale": "none"}, "the temperature is missing: divide the "
                       "similarities by τ before the softmax"),
    "sum": ({"reduce": "sum"}, "you sum the row entropies: SND is their *mean* over the rows"),
    "log2": ({"log": np.log2}, "your logarithm is base 2: use the natural log (np.log)"),
}  # fmt: skip


_OVERFLOW = (
    "exp(s / τ) overflows for a small τ (τ = 0.001: e¹⁰⁰⁰): subtract each row's "
    "maximum before exp (the softmax does not change), and give the −inf diagonal "
    "weight 0 in the entropy (0 · log 0 = 0)"
)


def check_snd(fn: Callable) -> bool:
    """Lesson 09: ``fn(probs, temperature)`` must return Soft Neighborhood Density as a number.

    Four cases: random predictions of two shapes, two clusters at τ = 0.5, and confident
    one-hot rows at τ = 0.001 (where ``exp(s / τ)`` overflows unless the row maximum is
    subtracted first). Recognises the slips in ``_SLIPS``, a flipped sign, NaN or inf, and a
    result that is not one number.
    """
    from tlearn.adapt.selection import snd

    name = "check_snd"
    problems: list[str] = []
    hints: list[str] = []
    matches = {slip: 0 for slip in (*_SLIPS, "sign")}
    wrong = 0
    for label, (probs, tau) in _cases().items():
        with np.errstate(over="raise"):  # an overflow in exp is named, not hidden by NaN
            out, err = _call(fn, probs.copy(), tau)
        if err:
            problems.append(f"{label}: {err}")
            if "overflow" in err:
                hints.append(_OVERFLOW)
            continue
        try:
            if out is None:
                raise TypeError
            value = float(np.asarray(out, dtype=float).item())
        except (TypeError, ValueError):
            problems.append(f"{label}: expected one number, got {type(out).__name__} {out!r:.60}")
            hints.append("return the mean entropy as a single float")
            continue
        expected = snd(probs, temperature=tau)
        if not math.isfinite(value):
            problems.append(f"{label}: got {value} (expected {expected:.4f})")
            hints.append(_OVERFLOW)
            continue
        if abs(value - expected) <= 1e-6 * max(1.0, abs(expected)):
            continue
        wrong += 1
        for slip, (options, _) in _SLIPS.items():
            if abs(value - _variant(probs, tau, **options)) < 1e-6 * max(1.0, abs(value)):
                matches[slip] += 1
        if abs(value + expected) < 1e-6 * max(1.0, abs(value)):
            matches["sign"] += 1
        problems.append(f"{label}: expected {expected:.4f}, got {value:.4f}")
    found = [s for s, n in matches.items() if wrong and n == wrong]
    if found and found[0] == "sign":
        hints.insert(0, "the sign is flipped: an entropy −Σ P log P is ≥ 0 (and SND with it)")
    elif found:
        hints.insert(0, _SLIPS[found[0]][1])
    elif wrong:
        hints.append("normalise the rows, s = p̂ p̂ᵀ / τ, s_ii = −inf, softmax each row, "
                     "then the mean over rows of −Σ_j P_ij log P_ij")  # fmt: skip
    return _feedback(name, problems, list(dict.fromkeys(hints)))
