r"""Proxy A-distance: how well can a linear classifier tell the two domains apart?

Ben-David, Blitzer, Crammer & Pereira, "Analysis of Representations for Domain Adaptation",
NIPS 2007. The :math:`\mathcal A`-distance between two distributions bounds how much a
classifier's error can change from source to target. It is estimated by training a
classifier to tell source features (label 1) from target features (label 0):

.. math::  \hat d_{\mathcal A} = 2\,(1 - 2\epsilon)

with :math:`\epsilon` its error on held-out data. Indistinguishable domains give
:math:`\epsilon \approx 0.5 \Rightarrow \hat d_{\mathcal A} \approx 0`; perfectly separable
ones give :math:`\epsilon = 0 \Rightarrow \hat d_{\mathcal A} = 2`. Ganin et al. (JMLR 2016)
use it to show that DANN features are *less* domain-specific than a plain CNN's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tlearn import checks
from tlearn.checks import numpy_pair

__all__ = ["proxy_a_distance"]


def proxy_a_distance(
    zs: Any,
    zt: Any,
    *,
    test_size: float = 0.5,
    seed: int = 0,
    C: float = 1.0,
    max_iter: int = 1000,
) -> float:
    r"""Proxy A-distance :math:`\hat d_{\mathcal A} = 2(1 - 2\epsilon)` between two feature sets.

    A logistic regression (on features standardised with the *training split's* statistics)
    learns to tell source from target on a stratified split; :math:`\epsilon` is its
    **balanced** error on the held-out part — the mean of the per-domain error rates — so
    unequal domain sizes do not inflate the distance (with equal sizes it is the plain
    error rate of Ben-David et al. 2007, who used a linear SVM).

    Args:
        zs: source features ``(n_s, d)``, array or tensor.
        zt: target features ``(n_t, d)``.
        test_size: held-out fraction in (0, 1).
        seed: seed of the split (and the solver).
        C: inverse L2 regularisation strength of the logistic regression.
        max_iter: solver iterations.

    Returns:
        :math:`\hat d_{\mathcal A}` as a float, **clipped to [0, 2]**: a classifier worse
        than chance (ε > 0.5, which happens by sampling noise when the domains are the
        same) says "indistinguishable", i.e. 0, not a negative distance.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> near = proxy_a_distance(rng.normal(size=(300, 5)), rng.normal(size=(300, 5)))
        >>> far = proxy_a_distance(rng.normal(size=(300, 5)), rng.normal(5, 1, size=(300, 5)))
        >>> near < 0.3, far > 1.9
        (True, True)
    """
    if not (isinstance(test_size, float) and 0.0 < test_size < 1.0):
        raise ValueError(f"test_size must be a float in (0, 1), got {test_size!r}")
    checks.positive_float("C", C)
    zs, zt = numpy_pair(zs, zt, ("zs (source features)", "zt (target features)"))
    z = np.concatenate([zs, zt])
    domain = np.r_[np.ones(len(zs), dtype=int), np.zeros(len(zt), dtype=int)]
    for name, count in (("zs", len(zs)), ("zt", len(zt))):
        if min(round(count * test_size), count - round(count * test_size)) < 1:
            raise ValueError(
                f"{name} has {count} rows: too few to put at least one in both the training "
                f"and the held-out split with test_size={test_size}"
            )
    z_train, z_test, d_train, d_test = train_test_split(
        z, domain, test_size=test_size, stratify=domain, random_state=seed
    )
    clf = make_pipeline(
        StandardScaler(),
        LogisticRegression(C=C, max_iter=max_iter, class_weight="balanced", random_state=seed),
    )
    clf.fit(z_train, d_train)
    error = 1.0 - balanced_accuracy_score(d_test, clf.predict(z_test))
    return float(np.clip(2.0 * (1.0 - 2.0 * error), 0.0, 2.0))
