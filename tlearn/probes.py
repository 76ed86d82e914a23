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

*Transferability scores* ask the same question without training anything, so that candidate
source models can be ranked before any is fine-tuned (higher = expected to transfer better):

* :func:`leep` — how well the source model's own label predictions, mapped to the target labels
  by co-occurrence counts, predict those labels (Nguyen et al., ICML 2020).
* :func:`logme` — how much evidence a Bayesian linear regression from the features to the
  one-hot target labels finds, maximised over its two precisions (You et al., ICML 2021).

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

from tlearn import checks
from tlearn.data.base import few_shot_indices
from tlearn.runtime import progress_bar

__all__ = [
    "linear_probe", "knn_probe", "few_shot_probe", "PROBES", "probe_by_name", "leep", "logme",
]  # fmt: skip

ArrayLike = Any  # a torch.Tensor, numpy array or nested list


def _as_numpy(x: ArrayLike) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _matrix(x: ArrayLike, name: str, shape: str = "N×D", hint: str = "") -> np.ndarray:
    """``x`` as a float64 matrix, one row per example; a ValueError unless numeric and finite."""
    a = _as_numpy(x)
    if a.ndim != 2 or 0 in a.shape:
        raise ValueError(f"{name} must be {shape} (one row per example), got shape {a.shape}{hint}")
    if not np.issubdtype(a.dtype, np.number):
        raise ValueError(f"{name} must be numeric, got dtype {a.dtype}")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        bad = int((~np.isfinite(a)).any(axis=1).sum())
        raise ValueError(f"{name} contains NaN or Inf in {bad} row(s); check the model/inputs")
    return a


def _labels(y: ArrayLike, name: str, n: int, rows: str) -> np.ndarray:
    """``y`` as an int64 vector of ``n`` class labels (integral floats are accepted)."""
    if y is None:
        raise ValueError(
            f"{name} is None; labelled data is needed (extract gives None for data without labels)"
        )
    y = _as_numpy(y)
    y = y.reshape(-1) if y.ndim > 1 and y.size == len(y) else y
    if y.ndim != 1 or len(y) != n:
        raise ValueError(
            f"{name} must be a vector of {n} labels, one for each of the {n} rows of {rows}; "
            f"got shape {y.shape}"
        )
    integral = np.issubdtype(y.dtype, np.integer) or (
        np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y))
    )
    if not integral:
        raise ValueError(f"{name} must hold integer class labels, got dtype {y.dtype}")
    return y.astype(np.int64)


def _two_classes(y: np.ndarray, name: str, why: str = "") -> None:
    if len(np.unique(y)) < 2:
        raise ValueError(
            f"{name} holds a single class ({int(y[0])}); need at least two classes{why}"
        )


def _check_probe_inputs(
    Z_train: ArrayLike, y_train: ArrayLike, Z_test: ArrayLike, y_test: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validate probe inputs and return them as float64 / int64 numpy arrays."""
    hint = "; extract with pool='avg' or 'flatten' to get one vector per image"
    Ztr, Zte = _matrix(Z_train, "Z_train", hint=hint), _matrix(Z_test, "Z_test", hint=hint)
    ytr = _labels(y_train, "y_train", len(Ztr), "Z_train")
    yte = _labels(y_test, "y_test", len(Zte), "Z_test")
    if Ztr.shape[1] != Zte.shape[1]:
        raise ValueError(
            f"Z_train has {Ztr.shape[1]} features per row but Z_test has {Zte.shape[1]}"
        )
    _two_classes(ytr, "y_train", " for a classifier to tell apart")
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

    checks.positive_float("C", C)
    checks.positive_int("max_iter", max_iter)
    Ztr, ytr, Zte, yte = _check_probe_inputs(Z_train, y_train, Z_test, y_test)
    U = Ztr if unlabeled is None else _matrix(unlabeled, "unlabeled")
    if U.shape[1] != Ztr.shape[1] or len(U) < 2:
        raise ValueError(
            f"unlabeled must be M×{Ztr.shape[1]} features with M >= 2, got shape {U.shape}"
        )
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
    k = checks.positive_int("k", k)
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
    return PROBES[checks.one_of("probe", probe, sorted(PROBES))]


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
    if not per_class:
        raise ValueError("per_class must hold at least one count")
    per_class = [checks.positive_int("per_class", k) for k in per_class]
    if not seeds:
        raise ValueError("seeds must hold at least one seed")
    seeds, acc = [int(s) for s in seeds], []
    total = len(seeds) * len(per_class)
    with progress_bar(total=total, desc=f"{probe} probes", enabled=progress, leave=False) as bar:
        for s in seeds:
            acc.append([])
            for k in per_class:
                idx = few_shot_indices(ytr, k, s)
                acc[-1].append(fn(Ztr[idx], ytr[idx], Zte, yte, **probe_kwargs)["accuracy"])
                bar.update()
    return {"per_class": per_class, "seeds": seeds, "accuracy": acc}


# --- transferability scores ---------------------------------------------------------------


def leep(source_probs: ArrayLike, target_labels: ArrayLike) -> float:
    """LEEP, the log expected empirical prediction (Nguyen et al., "LEEP: A New Measure to
    Evaluate Transferability of Learned Representations", ICML 2020).

    With θ(x_i) ∈ Δ^Z the source model's softmax over its *own* Z labels z, and y_i the target
    label of example i:

        P̂(y, z) = (1/n) Σ_{i: y_i = y} θ(x_i)_z          joint of target label and source label
        P̂(y | z) = P̂(y, z) / Σ_y' P̂(y', z)               conditional ("relabel z as y")
        LEEP = (1/n) Σ_i log Σ_z P̂(y_i | z) θ(x_i)_z       log-likelihood of that classifier

    It is the mean log-likelihood of the target labels under the classifier "predict z with the
    source model, then y from z". Always ≤ 0; higher predicts better transfer. Uninformative
    (uniform) θ gives −H(target label frequencies); a source whose labels determine the target
    labels gives 0.

    Args:
        source_probs: ``n × Z`` probabilities (rows sum to 1), tensor or array. Pass
            ``softmax(logits)``, not logits.
        target_labels: ``n`` integer target labels ``≥ 0``.

    Returns:
        LEEP as a float.

    >>> theta = [[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.2, 0.8]]
    >>> round(leep(theta, [0, 0, 1, 1]), 4), round(leep(theta, [0, 1, 0, 1]), 4)
    (-0.2955, -0.6931)
    """
    theta, y = _check_leep_inputs(source_probs, target_labels)
    n = len(y)
    onehot = np.eye(int(y.max()) + 1)[y]  # n × C
    joint = onehot.T @ theta / n  # C × Z: P̂(y, z)
    marginal = joint.sum(axis=0, keepdims=True)  # 1 × Z: P̂(z)
    # a source label that no example ever predicts has P̂(z) = 0; its column is never used
    cond = np.divide(joint, marginal, out=np.zeros_like(joint), where=marginal > 0)
    eep = theta @ cond.T  # n × C: Σ_z P̂(y | z) θ(x_i)_z for every y
    return float(np.log(eep[np.arange(n), y]).mean())


def logme(
    features: ArrayLike,
    target_labels: ArrayLike,
    *,
    tol: float = 1e-10,
    max_iter: int = 1000,
    return_params: bool = False,
) -> float | tuple[float, dict[str, np.ndarray]]:
    """LogME, the log of the maximum evidence (You et al., "LogME: Practical Assessment of
    Pre-trained Models for Transfer Learning", ICML 2021).

    For each target class c, fit the one-hot column y_c ∈ {0, 1}^n by Bayesian linear
    regression on the features F (n × d): y_c = F w + ε, w ~ N(0, α⁻¹I), ε ~ N(0, β⁻¹I).
    The evidence (marginal likelihood, w integrated out) is

        log p(y_c | F, α, β) = n/2 log β + d/2 log α − n/2 log 2π
                               − β/2 ‖F m − y_c‖² − α/2 ‖m‖² − 1/2 log det A,
        A = α I + β FᵀF,   m = β A⁻¹ Fᵀ y_c   (the posterior mean of w).

    It is maximised over α, β by MacKay's fixed point ("Bayesian interpolation", 1992):
    γ = Σ_j βσ_j / (α + βσ_j), α ← γ / ‖m‖², β ← (n − γ) / ‖F m − y_c‖², with σ_j the
    eigenvalues of FᵀF. One SVD F = U diag(s) Vᵀ makes each step cost O(k) per class,
    k = rank F ≤ min(n, d), for n > d and n ≤ d alike. LogME = mean over classes of (max evidence / n); higher means the
    features explain the labels better with a simpler linear model, which predicts better
    transfer. Compare scores on the same target data; the value depends on n and the classes.

    Args:
        features: ``n × d`` features (``n ≥ 2``), tensor or array; computed in float64.
        target_labels: ``n`` integer labels, at least two distinct classes. Each class that
            occurs is one regression target.
        tol: stop when α/β changes by less than this fraction.
        max_iter: at most this many fixed-point steps.
        return_params: also return ``{"alpha", "beta", "evidence"}``, one entry per class
            (in ``np.unique(target_labels)`` order; ``evidence`` is divided by n).

    Returns:
        LogME as a float, or ``(LogME, params)`` with ``return_params``.

    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 50)
    >>> F = rng.normal(size=(100, 5)) + 3 * y[:, None]  # class means 3 apart
    >>> bool(logme(F, y) > logme(F, rng.permutation(y)))
    True
    """
    F, Y = _check_logme_inputs(features, target_labels)  # n × d, n × C one-hot
    n, d = F.shape
    with _small_problem_threads(F.size):
        U, s, _ = np.linalg.svd(F, full_matrices=False)
    keep = s > s.max() * max(n, d) * np.finfo(np.float64).eps  # numerical rank k
    U, sigma = U[:, keep], s[keep, None] ** 2  # n × k, k × 1: σ_j, the nonzero eig(FᵀF)
    x = U.T @ Y  # k × C: y in the basis of F's column space
    x2 = x**2
    outside = ((Y - U @ x) ** 2).sum(0)  # ‖y‖² outside it (0 when rank F = n ≤ d)

    def posterior(t):  # γ, ‖m‖², ‖F m − y‖² for λ = α/β = t, per class
        shrink = sigma / (sigma + t)
        return (
            shrink.sum(0),
            (x2 * shrink**2 / sigma).sum(0),
            (x2 * (1 - shrink) ** 2).sum(0) + outside,
        )

    # The evidence can keep rising as α/β → ∞ (features that explain nothing: w = 0) or → 0
    # (no noise); bound t where the evidence no longer changes in float64.
    lo, hi = 1e-12 * sigma.min(), 1e12 * sigma.sum()
    t = np.ones(Y.shape[1])
    for _ in range(max_iter):
        gamma, m2, res2 = posterior(t)
        with np.errstate(divide="ignore"):
            new = np.clip((gamma / m2) / ((n - gamma) / res2), lo, hi)  # MacKay: α / β
        converged = np.all(np.abs(new - t) <= tol * t)  # (a t held at a bound stops too)
        t = new
        if converged:
            break
    gamma, m2, res2 = posterior(t)
    # the best β for this α/β; at the fixed point it equals (n − γ) / ‖F m − y‖²
    beta = n / (res2 + t * m2)
    alpha = t * beta
    # d/2 log α − 1/2 log det A, where A has eigenvalues α + βσ_j (k of them) and α (d − k),
    # is −1/2 Σ_j log(1 + σ_j/t): written so, it stays finite as α → ∞
    evidence = (
        n / 2 * np.log(beta) - n / 2 * np.log(2 * np.pi)
        - beta / 2 * res2 - alpha / 2 * m2 - np.log1p(sigma / t).sum(0) / 2
    ) / n  # fmt: skip
    score = float(evidence.mean())
    if return_params:
        return score, {"alpha": alpha, "beta": beta, "evidence": evidence}
    return score


def _check_leep_inputs(source_probs: ArrayLike, target_labels: ArrayLike):
    theta = _matrix(source_probs, "source_probs", "n × Z (n examples, Z source classes)")
    if (theta < 0).any():
        raise ValueError(
            f"source_probs must be probabilities, found a negative value {theta.min():.3g}; "
            "pass softmax(logits), not the logits"
        )
    sums = theta.sum(axis=1)
    if np.abs(sums - 1).max() > 1e-3:
        i = int(np.abs(sums - 1).argmax())
        raise ValueError(
            f"each row of source_probs must sum to 1, row {i} sums to {sums[i]:.4g}; "
            "pass softmax(logits) over the source model's classes"
        )
    y = _class_indices(target_labels, len(theta), "source_probs")
    why = ": with one class every classifier is perfect, so LEEP (≈ 0, the best) says nothing"
    _two_classes(y, "target_labels", why)
    return theta, y


def _class_indices(target_labels: ArrayLike, n: int, rows: str) -> np.ndarray:
    y = _labels(target_labels, "target_labels", n, rows)
    if (y < 0).any():
        raise ValueError(f"target_labels must be class indices 0, 1, …, found {y.min()}")
    return y


def _check_logme_inputs(features: ArrayLike, target_labels: ArrayLike):
    F = _matrix(features, "features", "n × d")
    if len(F) < 2:
        raise ValueError(f"logme needs at least 2 examples, got {len(F)}")
    if not F.any():
        raise ValueError("features are all zero; they carry no information to score")
    y = _class_indices(target_labels, len(F), "features")
    _two_classes(y, "target_labels")
    classes, y = np.unique(y, return_inverse=True)
    return F, np.eye(len(classes))[y.reshape(-1)]
