r"""Is this run broken? Collapsed predictions and non-finite losses, named instead of averaged.

An adaptation run can fail without raising: the alignment term pulls the target features
together until the classifier sends **every target image to one class**. Its accuracy is
then the share of that class in the target (≈ 10 % on a balanced 10-class target), and a
mean ± std over seeds silently mixes that failure with the runs that worked. The check
here needs no labels, only the predictions:

.. math::  \text{majority share} = \max_c \frac{\#\{i : \hat y_i = c\}}{n} ,

and a run is **collapsed** when that share is at least :data:`COLLAPSE_SHARE` (0.9) or
when a loss it recorded is NaN or ±Inf.

Why 0.9: a healthy but poor 10-class model often has a *sink* class that soaks up its
errors — at 40 % accuracy that sink can take 30–40 % of all predictions (lesson 00 shows
one) — so a threshold near those values would flag honest weak runs. At ≥ 90 % at most
one image in ten is given any of the other classes: on a target whose classes are roughly
balanced the model has stopped telling them apart. A target in which one class really
makes up 90 % of the images would need a higher threshold (pass ``share``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

__all__ = ["COLLAPSE_SHARE", "CollapseWarning", "majority_share", "diagnose", "collapsed"]

#: A run whose most-predicted class takes at least this share of the predictions is collapsed.
COLLAPSE_SHARE = 0.9


class CollapseWarning(RuntimeWarning):
    """Training finished, but the run collapsed (see :func:`diagnose`)."""


def _as_predictions(predictions: Any) -> torch.Tensor:
    """Predicted classes as a 1-d int64 tensor; ``(n, C)`` logits are turned into argmaxes."""
    p = torch.as_tensor(predictions if torch.is_tensor(predictions) else np.asarray(predictions))
    if p.dim() == 2:  # logits or probabilities
        p = p.argmax(1)
    if p.dim() != 1 or len(p) == 0:
        raise ValueError(
            f"expected predicted classes of shape (n,) or logits (n, C) with n >= 1, "
            f"got shape {tuple(p.shape)}"
        )
    if p.is_floating_point() or p.is_complex() or (p < 0).any():
        raise ValueError("predicted classes must be non-negative integers (or pass logits (n, C))")
    return p.long().cpu()


def majority_share(predictions: Any) -> tuple[int, float]:
    """The most predicted class and the fraction of predictions it takes.

    ``predictions``: predicted classes ``(n,)`` or logits ``(n, C)`` (tensor or array).

    >>> majority_share(torch.tensor([3, 3, 3, 1]))
    (3, 0.75)
    """
    counts = torch.bincount(_as_predictions(predictions))
    top = int(counts.argmax())
    return top, float(counts[top]) / float(counts.sum())


def diagnose(
    predictions: Any, losses: Iterable[float] = (), share: float = COLLAPSE_SHARE
) -> str | None:
    """Why a run is broken, in one sentence — or None when it is not.

    Args:
        predictions: the run's predicted classes on (unlabelled) target images, ``(n,)``,
            or its logits ``(n, C)``. No labels are read.
        losses: loss values the run recorded (per epoch, say); any NaN or ±Inf flags it.
        share: the majority share at or above which predictions count as collapsed
            (default :data:`COLLAPSE_SHARE`), in (0, 1].

    >>> print(diagnose(torch.zeros(200, dtype=torch.long)))
    collapsed: class 0 takes 100% of 200 target predictions
    >>> print(diagnose(torch.arange(200) % 10))
    None
    >>> print(diagnose(torch.arange(200) % 10, losses=[2.3, float("nan")]))
    diverged: the loss became nan (record 2)
    """
    if not (isinstance(share, (int, float)) and 0 < share <= 1):
        raise ValueError(f"share must be a number in (0, 1], got {share!r}")
    for i, loss in enumerate(losses):
        if not math.isfinite(loss):
            return f"diverged: the loss became {loss} (record {i + 1})"
    top, fraction = majority_share(predictions)
    if fraction >= share:
        n = len(_as_predictions(predictions))
        return f"collapsed: class {top} takes {fraction:.0%} of {n} target predictions"
    return None


def collapsed(
    predictions: Any,
    num_classes: int | None = None,
    share: float = COLLAPSE_SHARE,
    losses: Iterable[float] = (),
) -> bool:
    """True when :func:`diagnose` flags the run: one class takes ``≥ share`` of the
    predictions, or a loss is non-finite.

    ``num_classes``, when given, checks the predictions lie in ``0 … num_classes − 1``
    and that ``share`` is above chance (1/``num_classes``): below it every run would be
    flagged.

    >>> collapsed(torch.full((50,), 7), num_classes=10)
    True
    """
    if num_classes is not None:
        p = _as_predictions(predictions)
        if int(p.max()) >= num_classes:
            raise ValueError(f"a predicted class is {int(p.max())}, not below {num_classes}")
        if share <= 1 / num_classes:
            raise ValueError(
                f"share {share} is at or below chance (1/{num_classes}): every run would be flagged"
            )
    return diagnose(predictions, losses, share) is not None
