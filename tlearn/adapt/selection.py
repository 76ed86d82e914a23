r"""Choosing without target labels: scores that rank adaptation runs when the target is unlabelled.

Unsupervised domain adaptation has no labelled target data, so a method, its loss weight and
its number of epochs cannot be chosen by target accuracy (the papers that do so report an
optimistic number). Each function below scores one trained model with what *is* available:

* **Importance-weighted validation** (IWCV; Sugiyama, Krauledat & Müller, JMLR 2007). The
  target risk is a source expectation reweighted by the density ratio
  :math:`w(x) = p_t(x) / p_s(x)`:

  .. math::  R_t = \mathbb{E}_{x \sim p_t}[e(x)] = \mathbb{E}_{x \sim p_s}[w(x)\, e(x)]
             \approx \frac1n \sum_i w_i e_i

  with :math:`e_i` the error (or loss) of the model on source *validation* example i.
* **Deep Embedded Validation** (DEV; You, Wang, Long & Jordan, ICML 2019). IWCV's estimate has a
  large variance when the weights do. Since :math:`\mathbb{E}_s[w] = 1`, the mean of the
  weights is a *control variate*: subtract :math:`\eta\,(\bar w - 1)`, with the η that
  minimises the variance,

  .. math::  R_{DEV} = \overline{w e} + \eta\, \bar w - \eta, \qquad
             \eta = -\frac{\widehat{\mathrm{Cov}}(w e,\, w)}{\widehat{\mathrm{Var}}(w)}

  (sample covariance and variance, ddof 1). Still unbiased; lower variance.
* :func:`density_ratios`: the weights both need, from a **domain classifier** — logistic
  regression that tells source features from target features. By Bayes' rule
  :math:`w(x) = \frac{p(t \mid x)}{p(s \mid x)} \cdot \frac{n_s}{n_t}`.
* **Soft Neighborhood Density** (SND; Saito, Kim, Teterwak, Sclaroff, Darrell & Saenko,
  ICCV 2021). A good adapted model maps target examples into dense clusters: with
  :math:`\hat p_i` the L2-normalised prediction of target example i, the similarities
  :math:`s_{ij} = \hat p_i \cdot \hat p_j / \tau` (:math:`j \ne i`) become a distribution over
  neighbours :math:`P_{ij} = \mathrm{softmax}_j(s_{ij})`, and SND is the mean entropy
  :math:`-\frac1n \sum_i \sum_{j \ne i} P_{ij} \log P_{ij}`: **higher is better** (many
  close neighbours, not one).
* :func:`prediction_entropy`: the mean entropy of the target predictions — lower means more
  confident, which is *not* the same as more accurate (confirmation bias).

All functions take NumPy arrays or tensors and return Python floats (``density_ratios``: an
array), computed in float64.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tlearn import checks

__all__ = ["iwcv_risk", "dev_risk", "density_ratios", "snd", "prediction_entropy"]


# --------------------------------------------------------------------------- the definitions
def iwcv_risk(errors: Any, weights: Any) -> float:
    r"""Importance-weighted risk :math:`\frac1n \sum_i w_i e_i` (Sugiyama et al., JMLR 2007).

    ``errors``: per-example errors or losses on *source validation* data, shape ``(n,)``;
    ``weights``: their density ratios :math:`p_t(x_i)/p_s(x_i)` (:func:`density_ratios`).

    >>> iwcv_risk([0.0, 1.0], [0.5, 1.5])
    0.75
    """
    e, w = _pair(errors, weights)
    return float(np.mean(w * e))


def dev_risk(errors: Any, weights: Any) -> float:
    r"""Deep Embedded Validation risk (You et al., ICML 2019, Algorithm 1).

    .. math::  R_{DEV} = \overline{w e} + \eta\, \bar w - \eta, \qquad
               \eta = -\frac{\widehat{\mathrm{Cov}}(w e,\, w)}{\widehat{\mathrm{Var}}(w)}

    IWCV (:func:`iwcv_risk`) plus the control variate :math:`\eta(\bar w - 1)`, whose
    expectation is 0 because :math:`\mathbb{E}_s[w] = 1`. Covariance and variance are sample
    estimates (ddof 1). When every weight is equal (:math:`\widehat{\mathrm{Var}}(w) = 0`)
    the control variate carries no information: η = 0 and DEV equals IWCV.

    Shifting every error by c shifts DEV by exactly c (IWCV shifts by :math:`c \bar w`).

    >>> round(dev_risk([0.0, 1.0, 1.0], [0.5, 1.0, 1.5]), 6)
    0.833333
    """
    e, w = _pair(errors, weights)
    we = w * e
    var = np.var(w, ddof=1)
    eta = -np.cov(we, w, ddof=1)[0, 1] / var if var > 0 else 0.0
    return float(np.mean(we) + eta * np.mean(w) - eta)


def snd(probs: Any, temperature: float = 0.05) -> float:
    r"""Soft Neighborhood Density of target predictions (Saito et al., ICCV 2021); higher is better.

    ``probs`` ``(n, C)``: the model's softmax outputs on ``n >= 2`` target examples. Rows are
    L2-normalised, :math:`s_{ij} = \hat p_i \cdot \hat p_j / \tau` for :math:`j \ne i` (the
    diagonal is excluded), each row becomes :math:`P_{i\cdot} = \mathrm{softmax}(s_{i\cdot})`,
    and SND is the mean of the rows' entropies :math:`-\sum_{j \ne i} P_{ij} \log P_{ij}`.

    >>> round(snd([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]]), 3)  # two close, one apart
    0.108
    """
    p = _probabilities(probs)
    checks.positive_float("temperature", temperature, example="0.05, the paper's")
    p = p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12)
    s = p @ p.T / temperature
    np.fill_diagonal(s, -np.inf)  # a point is not its own neighbour
    log_p = s - s.max(1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(1, keepdims=True))
    return float(_entropies(np.exp(log_p), log_p).mean())


def prediction_entropy(probs: Any) -> float:
    r"""Mean prediction entropy :math:`-\frac1n \sum_i \sum_c p_{ic} \log p_{ic}`, in nats (0·log 0 = 0).

    >>> round(prediction_entropy([[0.5, 0.5], [1.0, 0.0]]), 4)  # (log 2 + 0) / 2
    0.3466
    """
    p = _probabilities(probs, min_rows=1)
    with np.errstate(divide="ignore"):
        return float(_entropies(p, np.log(p)).mean())


def density_ratios(
    source_features: Any, target_features: Any, *, folds: int = 5, seed: int = 0
) -> np.ndarray:
    r"""Density ratios :math:`w(x) = p_t(x)/p_s(x)` of the source examples, from a domain classifier.

    Logistic regression (on standardised features) learns :math:`p(t \mid x)`, the probability
    that ``x`` is a target example. Bayes' rule turns it into the ratio of the densities:

    .. math::  w(x) = \frac{p(t \mid x)}{p(s \mid x)} \cdot \frac{n_s}{n_t}

    (the factor undoes the class prior the classifier learns from unequal domain sizes). Each
    source example is scored by a classifier trained on the *other* folds (stratified by
    domain), so a classifier that memorised its training examples cannot inflate their
    weights — DEV's recipe. Over the source the weights average to about 1.

    Args:
        source_features: ``(n_s, d)`` features of the source validation examples.
        target_features: ``(n_t, d)`` features of target examples (no labels).
        folds: number of cross-fitting folds (≥ 2, ≤ the smaller domain's size).
        seed: for the folds' random split.

    Returns:
        ``(n_s,)`` float64 array of positive weights, in the order of ``source_features``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    names = ("source_features", "target_features")
    xs, xt = checks.numpy_pair(source_features, target_features, names)
    if checks.positive_int("folds", folds, minimum=2) > min(len(xs), len(xt)):
        raise ValueError(f"folds must be an int in 2..{min(len(xs), len(xt))}, got {folds!r}")
    x = np.concatenate([xs, xt])
    domain = np.r_[np.zeros(len(xs)), np.ones(len(xt))]  # 1 = target
    p_target = np.empty(len(x))
    splits = StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, domain)
    for fit_rows, held_out in splits:
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        clf.fit(x[fit_rows], domain[fit_rows])
        p_target[held_out] = clf.predict_proba(x[held_out])[:, 1]
    p = np.clip(p_target[: len(xs)], 1e-12, 1 - 1e-12)
    return p / (1 - p) * len(xs) / len(xt)


# --------------------------------------------------------------------------- checks
def _entropies(p: np.ndarray, log_p: np.ndarray) -> np.ndarray:
    """Row entropies −Σ p log p, with 0 · log 0 = 0."""
    return -np.multiply(p, log_p, out=np.zeros_like(p), where=p > 0).sum(1)


def _array(x: Any, name: str, ndim: int, min_rows: int = 0) -> np.ndarray:
    """``x`` (an array or tensor) as a float64 array of ``ndim`` dimensions, finite."""
    a = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float64)
    if a.ndim != ndim or len(a) < min_rows:
        shape = "one value per example, shape (n,)" if ndim == 1 else f"(n, d) with n >= {min_rows}"
        raise ValueError(f"{name} must be {shape}, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or Inf values")
    return a


def _pair(errors: Any, weights: Any) -> tuple[np.ndarray, np.ndarray]:
    e, w = _array(errors, "errors", 1), _array(weights, "weights", 1)
    if len(e) != len(w):
        raise ValueError(
            f"errors and weights must have one value per example: {len(e)} vs {len(w)}"
        )
    if len(e) < 2:
        raise ValueError(f"need at least 2 validation examples (a sample variance), got {len(e)}")
    if (w < 0).any():
        raise ValueError("weights are density ratios and must be >= 0")
    return e, w


def _probabilities(probs: Any, min_rows: int = 2) -> np.ndarray:
    p = _array(probs, "probs", 2, min_rows)
    if (p < 0).any():
        raise ValueError("probs must be probabilities (softmax outputs), found negative values")
    return p
