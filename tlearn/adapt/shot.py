r"""Self-training and SHOT: adapt with the model's own predictions — no source data, no labels.

**Pseudo-labelling** (self-training): treat the model's confident target predictions as labels
and train on them (:func:`pseudo_labels`). Its failure mode is *confirmation bias*: a wrong
confident prediction becomes a label, and training on it makes the model more sure of it.

**SHOT** (Liang, Hu & Feng, "Do We Really Need to Access the Source Data? Source Hypothesis
Transfer for Unsupervised Domain Adaptation", ICML 2020) is source-free: it keeps the source
classifier head :math:`h` **frozen** (the "hypothesis") and trains only the feature extractor
:math:`g` so that target features suit it. Its loss, on a batch of target predictions
:math:`p = \mathrm{softmax}(h(g(x)))`, is

.. math::  \mathcal{L} = \underbrace{\frac1N \sum_n H(p_n) \;-\; H(\bar p)}_{\text{information
           maximisation}} \;+\; \beta\, \mathrm{CE}(p, \hat y), \qquad
           \bar p = \frac1N \sum_n p_n

* :math:`\frac1N \sum_n H(p_n)` — each prediction should be confident (TENT's loss);
* :math:`-H(\bar p)` — but the predictions together should use every class (diversity: without
  it, predicting one class for everything minimises the entropy);
* :math:`\mathrm{CE}(p, \hat y)` — cross-entropy with **centroid pseudo-labels**
  :math:`\hat y` (:func:`centroid_pseudo_labels`), recomputed once per epoch: class centroids in
  feature space, weighted by the predictions, then each example labelled by its nearest
  centroid — less noisy than the classifier's own argmax. The paper uses β = 0.3.

Written out::

    for epoch in range(epochs):
        y_hat = centroid_pseudo_labels(g(X), softmax(h(g(X))))       # whole target, eval mode
        for x, y in batches(X, y_hat):
            logits = h(g(x))                                         # h frozen
            loss = information_maximization_loss(logits) + beta * cross_entropy(logits, y)
            loss.backward(); optimizer.step()                        # only g moves
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tlearn import checks, models, runtime, train
from tlearn.adapt.tent import TargetImages, entropy, train_only
from tlearn.data.base import input_batches

__all__ = ["pseudo_labels", "information_maximization_loss", "centroid_pseudo_labels", "shot"]


# --------------------------------------------------------------------------- the definitions
def pseudo_labels(probs: Tensor, threshold: float = 0.9) -> tuple[Tensor, Tensor]:
    """The predicted class of each row of ``probs`` ``(N, C)``, and which rows are confident.

    Returns ``(labels, mask)``: ``labels = probs.argmax(1)``; ``mask[i]`` is True when the
    largest probability of row i is at least ``threshold`` (in [0, 1]; 0 keeps every row).

    >>> pseudo_labels(torch.tensor([[0.95, 0.05], [0.4, 0.6]]), threshold=0.9)
    (tensor([0, 1]), tensor([ True, False]))
    """
    _check_probs(probs)
    checks.probability("threshold", threshold)
    confidence, labels = probs.max(1)
    return labels, confidence >= threshold


def information_maximization_loss(logits: Tensor) -> Tensor:
    r"""SHOT's :math:`\mathcal{L}_{ent} + \mathcal{L}_{div} = \frac1N \sum_n H(p_n) - H(\bar p)`.

    ``logits`` ``(N, C)`` → scalar, in nats, with :math:`p_n = \mathrm{softmax}(\text{logits}_n)`
    and :math:`\bar p` their mean (computed from ``log_softmax``, so confident rows stay
    finite). Its minimum, :math:`-\log C`, is reached by one-hot predictions spread evenly over
    the C classes; predicting one class for everything gives 0.

    >>> round(information_maximization_loss(torch.tensor([[9.0, 0.0], [0.0, 9.0]])).item(), 3)
    -0.692
    """
    log_p = F.log_softmax(logits.float(), dim=1)
    log_mean = torch.logsumexp(log_p, dim=0) - math.log(len(log_p))  # log of p̄
    return entropy(logits) + (log_mean.exp() * log_mean).sum()


def centroid_pseudo_labels(features: Tensor, probs: Tensor) -> Tensor:
    r"""SHOT's self-supervised pseudo-labels (Liang et al. 2020, eqs. 4–5): nearest class centroid.

    1. Centroids weighted by the predictions:
       :math:`c_k = \sum_i p_{ik}\, z_i \,/\, \sum_i p_{ik}`.
    2. Each example takes the class of its nearest centroid by cosine distance:
       :math:`\hat y_i = \arg\min_k \big(1 - \cos(z_i, c_k)\big)`.
    3. Once more with hard labels: :math:`c_k = \mathrm{mean}\{z_i : \hat y_i = k\}`, and
       step 2 again (a class no example chose keeps no centroid).

    ``features`` ``(N, D)`` are the inputs of the classifier head, ``probs`` ``(N, C)`` its
    softmax outputs. Returns ``(N,)`` class indices.
    """
    _check_probs(probs)
    checks.matrix(
        features, "features", f"(N, D) with N = {len(probs)} rows of probs", rows=len(probs)
    )
    z = features.double()
    weights = probs.double()
    labels = _nearest(z, weights.T @ z / weights.sum(0).clamp_min(1e-12)[:, None])
    hard = F.one_hot(labels, probs.shape[1]).double()
    centroids = hard.T @ z / hard.sum(0).clamp_min(1)[:, None]
    return _nearest(z, centroids, empty=hard.sum(0) == 0)


def _nearest(z: Tensor, centroids: Tensor, empty: Tensor | None = None) -> Tensor:
    """Index of the centroid with the largest cosine similarity to each row of ``z``."""
    similarity = F.normalize(z, dim=1) @ F.normalize(centroids, dim=1).T
    if empty is not None:
        similarity[:, empty] = -math.inf
    return similarity.argmax(1)


# --------------------------------------------------------------------------- training
def shot(
    model: nn.Module,
    target: Any,
    *,
    epochs: int = 5,
    lr: float = 1e-3,
    beta: float = 0.3,
    batch_size: int = 64,
    optimizer: str = "adam",
    seed: int | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> train.History:
    """Source-free adaptation with SHOT (Liang, Hu & Feng, ICML 2020), through ``train.fit``.

    The classifier head (``models.head_name``; for another model its last ``nn.Linear``) is
    frozen; the rest of ``model`` trains on the information-maximisation loss plus ``beta`` ×
    cross-entropy with centroid pseudo-labels, recomputed on the whole target (eval mode) at
    the start of every epoch. BatchNorm layers train as usual (batch statistics, running ones
    updated), as in the paper. Differences from the paper: no label smoothing or weight-normed
    bottleneck in the source model, and the optimizer is ``train.fit``'s.

    Args:
        model: a trained source classifier returning logits ``(N, C)``; adapted in place.
        target: target images — a Dataset (items ``x`` or ``(x, y)``), DataLoader or tensor.
            **Its labels are never read.**
        epochs, lr, batch_size, optimizer, seed, device, progress: as in ``train.fit``.
        beta: weight of the pseudo-label cross-entropy (the paper: 0.3; 0 gives IM alone).

    Returns:
        ``train.History`` with per epoch ``train_loss``, ``im_loss``, ``pseudo_label_loss`` and
        ``train_accuracy`` — agreement with the epoch's *pseudo-labels*, not accuracy. The
        head's parameters (and their ``requires_grad``) are exactly as before; ``model`` is
        left in eval mode.
    """
    head = model.get_submodule(_head_name(model))
    checks.nonnegative_float("beta (the paper: 0.3)", beta)
    data = TargetImages(target, "SHOT")  # the pseudo-labels go into data.labels
    device = runtime.get_device(device)
    in_head = set(head.parameters())
    with train_only(model, [p for p in model.parameters() if p.requires_grad and p not in in_head]):
        return train.fit(
            model, data, epochs=epochs, lr=lr, batch_size=batch_size, optimizer=optimizer,
            seed=seed, device=device, progress=progress, objective=_SHOTObjective(beta),
            callbacks=[_Relabel(data, head, device)],
        )  # fmt: skip


class _SHOTObjective:
    """``IM(logits) + β · CE(logits, pseudo-labels)``: the objective ``shot`` hands to ``fit``."""

    name = "SHOT"

    def __init__(self, beta: float):
        self.beta = beta

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, progress: float):
        logits = model(x)
        im = information_maximization_loss(logits)
        ce = F.cross_entropy(logits.float(), y)
        return im + self.beta * ce, logits, {"im_loss": im.item(), "pseudo_label_loss": ce.item()}


class _Relabel:
    """A ``fit`` callback: centroid pseudo-labels for the whole target at each epoch's start."""

    def __init__(self, data: TargetImages, head: nn.Module, device: torch.device):
        self.data, self.head, self.device = data, head, device

    @torch.no_grad()
    def on_epoch_start(self, state: Any) -> None:
        features, probs = [], []
        hook = self.head.register_forward_pre_hook(lambda m, inputs: features.append(inputs[0]))
        try:
            with runtime.eval_mode(state.model):  # each module's own mode comes back after
                for x in input_batches(self.data.target, 256):
                    probs.append(state.model(x.to(self.device)).float().softmax(1))
        finally:
            hook.remove()
        z = torch.cat([f.flatten(1).float() for f in features])
        self.data.labels.copy_(centroid_pseudo_labels(z, torch.cat(probs)).cpu())


# --------------------------------------------------------------------------- checks
def _head_name(model: nn.Module) -> str:
    """The classifier head: ``models.head_name`` for the families tlearn knows, else the last
    ``nn.Linear``."""
    checks.module("model", model)
    try:
        return models.head_name(model)
    except ValueError:
        linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ValueError(
                f"{type(model).__name__} has no nn.Linear classifier head for SHOT to freeze"
            ) from None
        return linears[-1]


def _check_probs(probs: Tensor) -> None:
    checks.matrix(probs, "probs", "a tensor of probabilities of shape (N, C)")
    if not torch.isfinite(probs).all():
        raise ValueError("probs contains NaN or Inf values")
