"""Layer sweeps: which depth of a pretrained network transfers best? (lesson 02's experiment)

Early layers compute generic edges and strokes, late layers specialise to the source task
(Yosinski et al., "How transferable are features in deep neural networks?", NeurIPS 2014).
:func:`layer_sweep` probes the features of every block and reports the accuracy at each
depth; :func:`best_layer` picks the depth by cross-validation on the training labels, so the
choice never looks at test labels.

>>> rows = [{"layer": "conv1", "cv_accuracy": 0.7}, {"layer": "conv2", "cv_accuracy": 0.8}]
>>> best_layer(rows)["layer"]
'conv2'
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from tlearn import models
from tlearn.features import EXTRACT_BATCH, FeatureCache, extract_layers
from tlearn.probes import probe_by_name

__all__ = ["layer_sweep", "best_layer"]


def _default_sweep_layers(model: nn.Module) -> list[str]:
    """The model's blocks (``tlearn.models.blocks``: ``features.conv1`` …, ``head``); for a
    model it does not know, the children of ``.features``, else the top-level children."""
    try:
        return [name for name, _ in models.blocks(model)]
    except ValueError:
        pass
    feats = getattr(model, "features", None)
    if isinstance(feats, nn.Module) and len(list(feats.children())) > 0:
        return [f"features.{n}" for n, _ in feats.named_children()]
    return [n for n, _ in model.named_children()]


def layer_sweep(
    model: nn.Module,
    train: Any,
    test: Any,
    layers: Sequence[str] | None = None,
    *,
    pool: str | None = "avg",
    probe: str = "linear",
    batch_size: int = EXTRACT_BATCH,
    device: str | torch.device | None = None,
    amp: bool | None = None,
    progress: bool = True,
    cache: FeatureCache | None = None,
    unlabeled: Any = None,
    cv: int | None = None,
    **probe_kwargs: Any,
) -> list[dict[str, Any]]:
    """Probe accuracy at each layer: which depth of the network transfers best?

    Early layers compute generic edges and strokes, late layers specialise to the source
    task (Yosinski et al., "How transferable are features in deep neural networks?",
    NeurIPS 2014). One forward pass per dataset hooks all ``layers`` at once.

    Choosing the layer by its *test* accuracy would report an optimistic number. With
    ``cv=k`` each row also gets ``cv_accuracy``: the probe's mean accuracy in stratified
    k-fold cross-validation on ``train`` alone; pick the layer with the best ``cv_accuracy``
    (:func:`best_layer`) and its ``accuracy`` is an honest test number.

    Args:
        train, test: labelled data (Dataset / DataLoader) for the probe.
        layers: module names; default the model's blocks (``features.conv1`` …, ``head``).
        pool: pooling applied at every layer.
        probe: ``"linear"`` or ``"knn"``; ``probe_kwargs`` go to it (e.g. ``C=0.1``, ``k=3``).
        unlabeled: optional data (labels ignored) whose features at each layer give the
            linear probe's standardisation, e.g. the whole target training pool when
            ``train`` is a few-shot subset of it (see :func:`tlearn.probes.linear_probe`).

        cv: number of cross-validation folds on ``train`` (≤ the smallest class count).

    Returns:
        One dict per layer, input → output order: ``{"layer", "dim", "accuracy"}`` (and
        ``"cv_accuracy"`` with ``cv``).
    """
    fn = probe_by_name(probe)
    if cv is not None and (not isinstance(cv, int) or cv < 2):
        raise ValueError(f"cv must be an int >= 2 (folds) or None, got {cv!r}")
    names = list(layers) if layers is not None else _default_sweep_layers(model)
    if not names:
        raise ValueError("layers is empty: nothing to probe")
    kw = dict(
        pool=pool, batch_size=batch_size, device=device, amp=amp, progress=progress, cache=cache
    )
    Ztr, ytr = extract_layers(model, train, names, **kw)
    Zte, yte = extract_layers(model, test, names, **kw)
    if ytr is None or yte is None:
        raise ValueError("layer_sweep needs labelled train and test data (got unlabelled tensors)")
    Zun: dict[str, torch.Tensor] | None = None
    if unlabeled is not None:
        if probe != "linear":
            raise ValueError("unlabeled is only used by the linear probe")
        Zun, _ = extract_layers(model, unlabeled, names, **kw)
    rows = []
    for n in names:
        a, b = Ztr[n].flatten(1), Zte[n].flatten(1)
        if Zun is not None:
            probe_kwargs = {**probe_kwargs, "unlabeled": Zun[n].flatten(1)}
        row = {
            "layer": n,
            "dim": int(a.shape[1]),
            "accuracy": fn(a, ytr, b, yte, **probe_kwargs)["accuracy"],
        }
        if cv is not None:
            row["cv_accuracy"] = _cv_accuracy(fn, a, ytr, cv, probe_kwargs)
        rows.append(row)
    return rows


def _cv_accuracy(
    fn: Callable[..., dict[str, Any]], Z: torch.Tensor, y: torch.Tensor, folds: int, kw: dict
) -> float:
    """Mean probe accuracy over stratified ``folds``-fold cross-validation on (Z, y)."""
    from sklearn.model_selection import StratifiedKFold  # here: scikit-learn's import is slow

    counts = torch.bincount(y)
    smallest = int(counts[counts > 0].min())
    if folds > smallest:
        raise ValueError(
            f"cv={folds} folds need >= {folds} training examples per class; the smallest "
            f"class has {smallest}"
        )
    Zn, yn = Z.numpy(), y.numpy()
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    accs = [fn(Zn[a], yn[a], Zn[b], yn[b], **kw)["accuracy"] for a, b in splitter.split(Zn, yn)]
    return float(np.mean(accs))


def best_layer(rows: Sequence[dict[str, Any]], key: str = "cv_accuracy") -> dict[str, Any]:
    """The row of :func:`layer_sweep` with the highest ``key`` (default: cross-validated
    accuracy on the training labels, so the choice never looks at test labels)."""
    if not rows:
        raise ValueError("rows is empty")
    if any(key not in r for r in rows):
        raise ValueError(f"rows have no {key!r}; run layer_sweep(..., cv=5) first")
    return max(rows, key=lambda r: r[key])
