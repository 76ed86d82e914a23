r"""CORAL: align the second-order statistics (covariances) of two domains.

Two flavours of one idea — *make the source features have the target's covariance*:

* **Deep CORAL** (Sun & Saenko, "Deep CORAL: Correlation Alignment for Deep Domain
  Adaptation", ECCV Workshops 2016) adds a differentiable penalty to the training loss
  (read :func:`coral_loss` first: it is the formula, in three lines):

  .. math::  \ell_{CORAL} = \frac{1}{4 d^2} \, \lVert C_S - C_T \rVert_F^2

  ``coral_loss`` (a function) and ``CORALLoss`` (an ``nn.Module``).

* **Closed-form CORAL** (Sun, Feng & Saenko, "Return of Frustratingly Easy Domain
  Adaptation", AAAI 2016) re-colours fixed source features once:

  .. math::  X_s^{*} = X_s \, (C_s + \lambda I)^{-1/2} \, (C_t + \lambda I)^{1/2}

  ``coral`` (a function: whiten the source, then re-colour it) and ``CORAL`` (a
  scikit-learn transformer). A classifier trained on :math:`X_s^*` is then applied to the
  *raw* target features.

Everywhere :math:`C = \frac{1}{n-1} (X - \bar X)^\top (X - \bar X)` is the *unbiased*
covariance of a ``(n, d)`` feature matrix, as in the papers (and ``np.cov``).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted
from torch import Tensor, nn

from tlearn import checks
from tlearn.checks import finite_or_raise, float_compute, numpy_pair, tensor_pair

__all__ = ["coral", "coral_matrices", "CORAL", "coral_loss", "CORALLoss", "covariance"]


# --------------------------------------------------------------------------- Deep CORAL
def covariance(z: Tensor) -> Tensor:
    r"""Unbiased covariance of the rows of ``z`` (shape ``(n, d)``) → ``(d, d)``.

    :math:`C = \frac{1}{n-1} (z - \bar z)^\top (z - \bar z)` — the same as
    ``np.cov(z, rowvar=False)`` and ``torch.cov(z.T)``. Centering first (rather than
    :math:`z^\top z - n \bar z \bar z^\top`) avoids cancellation when features have large means.
    """
    zc = z - z.mean(dim=0, keepdim=True)
    return (zc.T @ zc) / (len(z) - 1)


def coral_loss(zs: Tensor, zt: Tensor) -> Tensor:
    r"""Deep CORAL loss (Sun & Saenko, ECCV Workshops 2016).

    .. math::  \ell_{CORAL} = \frac{1}{4 d^2} \, \lVert C_S - C_T \rVert_F^2

    with :math:`C_S, C_T` the unbiased ``(d, d)`` covariances of the source and target batch
    features. The covariances are computed in float32 (float64 stays float64) with autocast
    switched off, so the loss is finite and accurate under fp16/bf16 mixed precision.
    Autograd gives the paper's gradient
    :math:`\partial\ell/\partial X_S = \tilde X_S (C_S - C_T) / (d^2 (n_S - 1))`.

    Args:
        zs: source features, shape ``(n_s, d)``, ``n_s >= 2``.
        zt: target features, shape ``(n_t, d)``, ``n_t >= 2`` (``n_t`` may differ from ``n_s``).

    Returns:
        A scalar tensor ≥ 0, differentiable w.r.t. both inputs. Raises ``ValueError`` for
        wrong shapes and for NaN/Inf features.

    Example:
        >>> zs, zt = torch.randn(32, 8), 2 * torch.randn(32, 8)
        >>> loss = coral_loss(zs, zt)       # add λ·loss to the source classification loss
        >>> loss.shape, bool(loss > 0)
        (torch.Size([]), True)
    """
    names = ("zs (source features)", "zt (target features)")
    zs, zt = tensor_pair(zs, zt, names, finite=False)  # the result is checked instead
    with float_compute(zs.device):
        d = zs.shape[1]
        loss = (covariance(zs) - covariance(zt)).pow(2).sum() / (4 * d * d)
    return finite_or_raise(loss, {names[0]: zs, names[1]: zt})


class CORALLoss(nn.Module):
    r"""Deep CORAL as an alignment module: ``CORALLoss()(zs, zt) == coral_loss(zs, zt)``.

    .. math::  \ell_{CORAL} = \frac{1}{4 d^2} \, \lVert C_S - C_T \rVert_F^2

    Shapes: ``zs`` ``(n_s, d)``, ``zt`` ``(n_t, d)`` → scalar (float32 even under autocast).
    See :func:`coral_loss`.

    Example:
        >>> criterion = CORALLoss()
        >>> loss = criterion(torch.randn(16, 4), torch.randn(16, 4))  # total = ce + λ·loss
    """

    def forward(self, zs: Tensor, zt: Tensor) -> Tensor:
        return coral_loss(zs, zt)


# --------------------------------------------------------------------------- closed form
def coral(Xs: Any, Xt: Any, reg: float = 1.0) -> Any:
    r"""Closed-form CORAL: re-colour source features with the target's covariance.

    .. math::  X_s^{*} = X_s \, (C_s + \lambda I)^{-1/2} \, (C_t + \lambda I)^{1/2}

    with :math:`C_s, C_t` the unbiased covariances of the source and target features
    (Sun, Feng & Saenko, AAAI 2016). The first factor *whitens* the source, the second
    *re-colours* it. Train a classifier on the result and apply it to the raw target.

    What holds exactly: ``cov(Xs*) = R W C_s W R`` with ``W = (C_s+λI)^{-1/2}``,
    ``R = (C_t+λI)^{1/2}``; as ``λ → 0`` (and ``C_s`` full rank) this is ``C_t``. CORAL
    aligns covariances only — not means: the paper z-scores each domain first (its code
    L1-normalises the rows, then z-scores).

    Args:
        Xs: source features, shape ``(n_s, d)``, ``n_s >= 2``.
        Xt: target features, shape ``(n_t, d)``, ``n_t >= 2``.
        reg: λ ≥ 0 added to both covariances' diagonals (the paper: λ = 1 on z-scored
            features). With ``reg=0`` a singular source covariance is pseudo-inverted.

    Returns:
        The aligned source, shape ``(n_s, d)``: a NumPy array for NumPy input, a tensor
        (same dtype and device, detached — use :func:`coral_loss` to train) for a tensor.
        The matrix powers are computed with a symmetric eigendecomposition in float64.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> Xs, Xt = rng.normal(size=(200, 3)), rng.normal(size=(300, 3)) * [1, 2, 3]
        >>> Xs_star = coral(Xs, Xt, reg=1e-6)
        >>> np.allclose(np.cov(Xs_star.T), np.cov(Xt.T))
        True
    """
    whiten, recolor = coral_matrices(Xs, Xt, reg)  # (C_s + λI)^{-1/2}, (C_t + λI)^{1/2}
    return _apply(Xs, whiten @ recolor)  # whiten the source, then re-colour it


def coral_matrices(Xs: Any, Xt: Any, reg: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    r"""The two ``(d, d)`` float64 matrices of closed-form CORAL.

    Returns ``(whiten, recolor)`` with ``whiten = (C_s + λI)^{-1/2}`` and
    ``recolor = (C_t + λI)^{1/2}``, so that ``Xs @ whiten @ recolor`` is the aligned source.
    """
    reg = checks.nonnegative_float("reg", reg)
    xs, xt = numpy_pair(Xs, Xt, ("Xs (source features)", "Xt (target features)"))
    cs, ct = np.cov(xs, rowvar=False, ddof=1), np.cov(xt, rowvar=False, ddof=1)
    cs, ct = np.atleast_2d(cs), np.atleast_2d(ct)  # d = 1 gives a 0-d array
    return _sym_power(cs, reg, -0.5), _sym_power(ct, reg, 0.5)


class CORAL(TransformerMixin, BaseEstimator):
    r"""Closed-form CORAL as a scikit-learn transformer (Sun, Feng & Saenko, AAAI 2016).

    ``fit`` learns ``A = (C_s + λI)^{-1/2} (C_t + λI)^{1/2}`` from source and target
    features; ``transform`` maps *source* features to ``X @ A`` (see :func:`coral`).

    Giving it the target — two ways that both work inside a ``Pipeline``:

    * ``CORAL(target=Xt)``: the target features are a parameter (clone-safe);
    * ``fit(Xs, y, Xt=Xt)``, or in a pipeline ``pipe.fit(Xs, ys, coral__Xt=Xt)``.

    The pipeline subtlety: a ``Pipeline`` fits on one domain and predicts on another.
    CORAL changes only the *source*; the classifier must see the *raw* target at predict
    time. ``transform_domain`` says which domain the rows given to ``transform`` come from:

    * ``"source"`` (default): ``transform(X) = X @ A`` — the plain transformer, e.g. to
      re-colour a source validation split. ``fit_transform(X) == fit(X).transform(X)``.
    * ``"target"``: ``transform(X)`` returns ``X`` unchanged, while ``fit_transform`` still
      re-colours the source it was fitted on. That is exactly the paper's protocol, so
      ``make_pipeline(CORAL(target=Xt, transform_domain="target"), LogisticRegression())``
      ``.fit(Xs, ys).score(Xt, yt)`` scores a classifier trained on ``Xs*`` on the raw
      target. (Like scikit-learn's ``TargetEncoder``, ``fit_transform`` then differs from
      ``fit().transform()`` on purpose.) ``transform_source(X)`` always re-colours.

    Any step *before* CORAL in a pipeline is applied to ``Xs`` only, not to ``target``:
    put CORAL first, or preprocess the target the same way yourself.

    Args:
        reg: λ ≥ 0 added to both covariances (1.0 as in the paper, on z-scored features).
        target: target features ``(n_t, d)``, or None to pass ``Xt`` to ``fit``.
        transform_domain: ``"source"`` or ``"target"`` — see above.

    Attributes:
        whiten_: ``(C_s + λI)^{-1/2}``, shape ``(d, d)``, float64.
        recolor_: ``(C_t + λI)^{1/2}``, shape ``(d, d)``, float64.
        transform_matrix_: ``whiten_ @ recolor_``.
        n_features_in_: d.

    Example:
        >>> from sklearn.linear_model import LogisticRegression
        >>> from sklearn.pipeline import make_pipeline
        >>> rng = np.random.default_rng(0)
        >>> Xs, ys = rng.normal(size=(100, 4)), rng.integers(0, 2, 100)
        >>> Xt = 3 * rng.normal(size=(80, 4))
        >>> pipe = make_pipeline(CORAL(target=Xt, transform_domain="target"),
        ...                      LogisticRegression()).fit(Xs, ys)
        >>> pipe.predict(Xt).shape
        (80,)
    """

    def __init__(
        self,
        reg: float = 1.0,
        target: Any = None,
        transform_domain: Literal["source", "target"] = "source",
    ) -> None:
        self.reg = reg
        self.target = target
        self.transform_domain = transform_domain

    def fit(self, X: Any, y: Any = None, *, Xt: Any = None) -> CORAL:
        """Learn the CORAL matrices from source ``X`` and target ``Xt`` (or ``self.target``).

        ``y`` (the source labels) is ignored; it is there for the Pipeline contract.
        """
        checks.one_of("transform_domain", self.transform_domain, ("source", "target"))
        Xt = self.target if Xt is None else Xt
        if Xt is None:
            raise ValueError(
                "CORAL needs target features: CORAL(target=Xt) or fit(Xs, Xt=Xt) "
                "(in a Pipeline: pipe.fit(Xs, ys, <step name>__Xt=Xt))"
            )
        self.whiten_, self.recolor_ = coral_matrices(X, Xt, self.reg)
        self.transform_matrix_ = self.whiten_ @ self.recolor_
        self.n_features_in_ = self.whiten_.shape[0]
        return self

    def _check_X(self, X: Any) -> Any:
        check_is_fitted(self, "transform_matrix_")
        X = checks.features(X, "X", min_rows=1)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but CORAL was fitted on {self.n_features_in_}"
            )
        return X

    def transform_source(self, X: Any) -> Any:
        """Re-colour source features: ``X @ transform_matrix_`` (ndarray or tensor in kind)."""
        return _apply(self._check_X(X), self.transform_matrix_)

    def transform(self, X: Any) -> Any:
        """``X @ transform_matrix_`` for ``transform_domain="source"``; ``X`` as is for "target"."""
        if self.transform_domain == "target":
            return self._check_X(X)
        return self.transform_source(X)

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> Any:
        """Fit on source ``X`` (and the target), return the re-coloured source ``X*``."""
        return self.fit(X, y, **fit_params).transform_source(X)


# --------------------------------------------------------------------------- helpers
def _sym_power(cov: np.ndarray, reg: float, power: float) -> np.ndarray:
    """(cov + reg·I)^power for a symmetric PSD ``cov``, via an eigendecomposition in float64.

    Round-off can make a PSD matrix's smallest eigenvalues slightly negative; they are
    clipped at 0 before ``reg`` is added. For a negative power with ``reg=0`` the zero
    eigenvalues are left at zero (a pseudo-inverse square root) instead of dividing by 0.
    """
    w, v = np.linalg.eigh((cov + cov.T) / 2)
    w = np.clip(w, 0.0, None) + reg
    if power < 0:  # pseudo-inverse: a (numerically) zero eigenvalue stays zero, not 1/0
        tol = max(w.max(initial=0.0), 1.0) * len(w) * np.finfo(np.float64).eps
        w = np.where(w > tol, w, np.inf)  # inf ** power = 0
    return (v * w**power) @ v.T


def _apply(X: Any, matrix: np.ndarray) -> Any:
    """``X @ matrix`` in float64, returned in X's own kind (ndarray/tensor), dtype and device."""
    if isinstance(X, torch.Tensor):
        out = X.detach().to("cpu", torch.float64).numpy() @ matrix
        dtype = X.dtype if X.is_floating_point() else torch.get_default_dtype()
        return torch.from_numpy(out).to(device=X.device, dtype=dtype)
    X = np.asarray(X)
    out = X.astype(np.float64, copy=False) @ matrix
    return out.astype(X.dtype) if np.issubdtype(X.dtype, np.floating) else out
