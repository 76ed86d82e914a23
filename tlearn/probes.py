"""Probes: how much does a frozen representation already know about a new task?

A *probe* is a small classifier trained on top of frozen features ``z = f(x)`` — the network
itself never changes — whose test accuracy measures how usable the features are for the task
(Alain & Bengio, "Understanding intermediate layers using linear classifier probes", 2016;
Kornblith et al., "Do Better ImageNet Models Transfer Better?", CVPR 2019):

* :func:`linear_probe` — standardise, then multinomial logistic regression: are the classes
  *linearly* separable in feature space?
* :func:`knn_probe` — majority vote of the k nearest training vectors: does the space
  *cluster* by class? Nothing is trained.
* :func:`few_shot_probe` — either probe with only 1, 5, 10 … labels per class, over seeds.

Features come from :func:`tlearn.features.extract`; probes take tensors or numpy arrays.

>>> import numpy as np
>>> Z = np.array([[0.0, 0.1], [0.1, 0.0], [1.0, 0.9], [0.9, 1.0]])
>>> y = np.array([0, 0, 1, 1])
>>> linear_probe(Z, y, Z, y)["accuracy"], knn_probe(Z, y, Z, y, k=1)["accuracy"]
(1.0, 1.0)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from tlearn.data.base import few_shot_indices
from tlearn.runtime import progress_bar

__all__ = ["linear_probe", "knn_probe", "few_shot_probe", "PROBES", "probe_by_name"]

ArrayLike = Any  # a torch.Tensor, numpy array or nested list


def _as_numpy(x: ArrayLike, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _check_probe_inputs(
    Z_train: ArrayLike, y_train: ArrayLike, Z_test: ArrayLike, y_test: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validate probe inputs and return them as float64 / int64 numpy arrays."""
    out = []
    for zname, yname, Z, y in (
        ("Z_train", "y_train", Z_train, y_train),
        ("Z_test", "y_test", Z_test, y_test),
    ):
        if Z is None or y is None:
            raise ValueError(f"{zname} and {yname} are required (got None); labelled data needed")
        Z, y = _as_numpy(Z, zname), _as_numpy(y, yname)
        if Z.ndim != 2:
            raise ValueError(
                f"{zname} must be N×D features, got shape {Z.shape}; extract with pool='avg' or "
                "'flatten' to get one vector per image"
            )
        y = y.reshape(-1) if y.ndim > 1 and y.size == len(y) else y
        if y.ndim != 1:
            raise ValueError(f"{yname} must be a vector of N labels, got shape {y.shape}")
        if len(Z) != len(y):
            raise ValueError(f"{zname} has {len(Z)} rows but {yname} has {len(y)} labels")
        if len(Z) == 0:
            raise ValueError(f"{zname} is empty")
        if not np.issubdtype(Z.dtype, np.number):
            raise ValueError(f"{zname} must be numeric, got dtype {Z.dtype}")
        Z = Z.astype(np.float64)
        if not np.isfinite(Z).all():
            bad = int((~np.isfinite(Z)).any(axis=1).sum())
            raise ValueError(f"{zname} contains NaN or Inf in {bad} row(s); check the model/inputs")
        if not np.issubdtype(y.dtype, np.integer):
            if np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y)):
                y = y.astype(np.int64)
            else:
                raise ValueError(f"{yname} must hold integer class labels, got dtype {y.dtype}")
        out += [Z, y.astype(np.int64)]
    Ztr, ytr, Zte, yte = out
    if Ztr.shape[1] != Zte.shape[1]:
        raise ValueError(
            f"Z_train has {Ztr.shape[1]} features per row but Z_test has {Zte.shape[1]}"
        )
    if len(np.unique(ytr)) < 2:
        raise ValueError(
            f"y_train holds a single class ({int(ytr[0])}); a classifier needs at least two"
        )
    return Ztr, ytr, Zte, yte


def _small_problem_threads(n_values: int):
    """Single-threaded BLAS for small problems: a probe's matrices are tiny, threads do not
    pay off, and on a busy machine OpenBLAS's spinning threads can make a fit 50× slower."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1) if n_values < 20_000_000 else contextlib.nullcontext()


def linear_probe(
    Z_train: ArrayLike,
    y_train: ArrayLike,
    Z_test: ArrayLike,
    y_test: ArrayLike,
    *,
    C: float = 1.0,
    max_iter: int = 1000,
    seed: int = 0,
    unlabeled: ArrayLike | None = None,
) -> dict[str, Any]:
    """Fit a linear classifier on frozen features; report its test accuracy.

    Each feature is standardised (``(z − mean) / std``), then a multinomial logistic
    regression minimises

        − Σ_i log softmax(W z_i + b)[y_i]  +  ‖W‖² / (2C)

    Why this and not a few epochs of SGD on an ``nn.Linear``: the problem is convex, so
    scikit-learn's L-BFGS reaches *the* optimum — no learning rate, epoch count or seed to
    tune, and the number measures the features, not the optimiser. Standardising makes one
    ``C`` sensible for every layer (their activations differ in scale by orders of magnitude).

    The mean and std come from ``Z_train``, or from ``unlabeled`` when given: features of
    unlabelled examples from the same distribution (e.g. the whole target training pool, of
    which only a few are labelled; no labels are used). With 1 label per class and 1280
    features, 10 examples estimate 1280 means and stds poorly; the pool estimates them well.

    Args:
        Z_train, y_train: training features ``N×D`` and integer labels (tensors or arrays).
        Z_test, y_test: test features and labels.
        C: inverse L2 strength (smaller = stronger regularisation).
        max_iter: L-BFGS iterations.
        seed: ``random_state`` of the solver (L-BFGS itself is deterministic).
        unlabeled: optional ``M×D`` features to compute the standardisation from.

    Returns:
        ``{"accuracy": test accuracy in [0, 1], "train_accuracy": …, "classifier": the fitted
        scikit-learn Pipeline (``.predict(Z)`` works on raw features)}``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if not C > 0:
        raise ValueError(f"C must be > 0, got {C!r}")
    if not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive int, got {max_iter!r}")
    Ztr, ytr, Zte, yte = _check_probe_inputs(Z_train, y_train, Z_test, y_test)
    if unlabeled is not None:
        U = _as_numpy(unlabeled, "unlabeled")
        if U.ndim != 2 or U.shape[1] != Ztr.shape[1] or len(U) < 2:
            raise ValueError(
                f"unlabeled must be M×{Ztr.shape[1]} features with M >= 2, got shape {U.shape}"
            )
        U = U.astype(np.float64)
        if not np.isfinite(U).all():
            raise ValueError("unlabeled contains NaN or Inf")
    else:
        U = Ztr
    with _small_problem_threads(Ztr.size + U.size):
        scaler = StandardScaler().fit(U)
        logreg = LogisticRegression(C=C, max_iter=max_iter, random_state=seed)
        logreg.fit(scaler.transform(Ztr), ytr)
        clf = Pipeline([("standardscaler", scaler), ("logisticregression", logreg)])
        acc = float((clf.predict(Zte) == yte).mean())
        train_acc = float((clf.predict(Ztr) == ytr).mean())
    return {"accuracy": acc, "train_accuracy": train_acc, "classifier": clf}


def knn_probe(
    Z_train: ArrayLike,
    y_train: ArrayLike,
    Z_test: ArrayLike,
    y_test: ArrayLike,
    *,
    k: int = 5,
    metric: str = "cosine",
) -> dict[str, Any]:
    """k-nearest-neighbour probe: each test vector takes the majority label of its ``k``
    closest training vectors (cosine distance ``1 − z·z'/(‖z‖‖z'‖)`` by default, as in
    DINO's k-NN evaluation, Caron et al. 2021). Nothing is trained, so it measures how well
    the feature space *clusters* by class rather than whether classes are linearly separable.

    Returns:
        ``{"accuracy": …, "classifier": the fitted KNeighborsClassifier}``.
    """
    from sklearn.neighbors import KNeighborsClassifier

    Ztr, ytr, Zte, yte = _check_probe_inputs(Z_train, y_train, Z_test, y_test)
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    if k > len(Ztr):
        raise ValueError(f"k={k} is more than the {len(Ztr)} training examples")
    with _small_problem_threads(Ztr.size + Zte.size):
        clf = KNeighborsClassifier(n_neighbors=k, metric=metric, algorithm="brute").fit(Ztr, ytr)
        acc = float((clf.predict(Zte) == yte).mean())
    return {"accuracy": acc, "classifier": clf}


#: The probes by name, as :func:`few_shot_probe` and layer sweeps accept them.
PROBES: dict[str, Callable[..., dict[str, Any]]] = {"linear": linear_probe, "knn": knn_probe}


def probe_by_name(probe: str) -> Callable[..., dict[str, Any]]:
    """The probe function called ``probe`` (a key of :data:`PROBES`), or a clear ValueError."""
    if probe not in PROBES:
        raise ValueError(f"probe must be one of {sorted(PROBES)}, got {probe!r}")
    return PROBES[probe]


def few_shot_probe(
    Z_train: ArrayLike,
    y_train: ArrayLike,
    Z_test: ArrayLike,
    y_test: ArrayLike,
    *,
    per_class: Sequence[int] = (1, 5, 10, 30),
    seeds: Sequence[int] = (0, 1, 2),
    probe: str = "linear",
    pool_statistics: bool = True,
    progress: bool = False,
    **probe_kwargs: Any,
) -> dict[str, Any]:
    """Probe accuracy when only ``per_class`` labelled examples per class are available.

    For each seed and each ``k`` in ``per_class`` the probe is trained on ``k`` rows per
    class of ``(Z_train, y_train)`` — the same rows ``tlearn.data.few_shot(ds, k, seed)``
    would pick from the dataset the features came from — and tested on all of ``Z_test``.
    Features are computed once; this is where :class:`FeatureCache` pays off.

    With ``pool_statistics`` (default) the linear probe standardises with the mean and std
    of *all* rows of ``Z_train`` — the unlabelled pool; its labels are not used — rather than
    of the few labelled rows (see :func:`linear_probe`'s ``unlabeled``).

    Returns:
        ``{"per_class": [...], "seeds": [...], "accuracy": seeds × len(per_class) list}``,
        ready for ``tlearn.plot.curves(r["per_class"], {"name": r["accuracy"]})``.
    """
    fn = probe_by_name(probe)
    Ztr, ytr, Zte, yte = _check_probe_inputs(Z_train, y_train, Z_test, y_test)
    if probe == "linear" and pool_statistics:
        probe_kwargs = {"unlabeled": Ztr, **probe_kwargs}
    if not per_class or any(not isinstance(k, (int, np.integer)) or k < 1 for k in per_class):
        raise ValueError(f"per_class must be positive ints, got {per_class!r}")
    if not seeds:
        raise ValueError("seeds must hold at least one seed")
    acc = []
    total = len(seeds) * len(per_class)
    with progress_bar(total=total, desc=f"{probe} probes", enabled=progress, leave=False) as bar:
        for s in seeds:
            row = []
            for k in per_class:
                idx = few_shot_indices(ytr, int(k), int(s))
                row.append(fn(Ztr[idx], ytr[idx], Zte, yte, **probe_kwargs)["accuracy"])
                bar.update()
            acc.append(row)
    return {
        "per_class": [int(k) for k in per_class],
        "seeds": [int(s) for s in seeds],
        "accuracy": acc,
    }
