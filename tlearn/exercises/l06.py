"""Lesson 06's grader: LEEP written by hand (Nguyen et al., ICML 2020).

``check_leep(fn)`` compares ``fn(theta, y)`` with the definition, computed here with plain
loops, on several cases (more source classes than target classes, fewer, a source class no
example predicts), and recognises the usual slips with a hint for each.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tlearn.exercises import _call, _feedback

__all__ = ["check_leep"]


def _leep_by_loops(theta: np.ndarray, y: np.ndarray) -> float:
    """LEEP straight from its definition, one sum at a time."""
    n, z_count = theta.shape
    classes = int(y.max()) + 1
    joint = np.zeros((classes, z_count))
    for i in range(n):
        joint[y[i]] += theta[i] / n  # P̂(y, z)
    marginal = joint.sum(0)  # P̂(z)
    total = 0.0
    for i in range(n):
        eep = sum(
            joint[y[i], z] / marginal[z] * theta[i, z] for z in range(z_count) if marginal[z] > 0
        )
        total += np.log(eep)
    return total / n


def _slips(theta: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """What the usual mistakes compute, to recognise them."""
    n = len(y)
    onehot = np.eye(int(y.max()) + 1)[y]
    joint = onehot.T @ theta / n
    marginal = joint.sum(0, keepdims=True)
    cond = np.divide(joint, marginal, out=np.zeros_like(joint), where=marginal > 0)
    right = (theta @ cond.T)[np.arange(n), y]
    hard = np.eye(theta.shape[1])[theta.argmax(1)]  # argmax z instead of the soft θ
    joint_hard = onehot.T @ hard / n
    with np.errstate(divide="ignore", invalid="ignore"):  # hard labels leave empty columns
        cond_hard = np.nan_to_num(joint_hard / joint_hard.sum(0, keepdims=True))
        hard_val = float(np.log((hard @ cond_hard.T)[np.arange(n), y]).mean())
    return {
        "joint instead of conditional": float(np.log((theta @ joint.T)[np.arange(n), y]).mean()),
        "no log (mean of the expected prediction)": float(right.mean()),
        "log of the mean instead of the mean of the logs": float(np.log(right.mean())),
        "conditioned on y instead of z": float(
            np.log((theta @ (joint / joint.sum(1, keepdims=True)).T)[np.arange(n), y]).mean()
        ),
        "hard source labels (argmax) instead of probabilities": hard_val,
    }


_HINTS = {
    "joint instead of conditional": "divide P̂(y, z) by P̂(z) = Σ_y P̂(y, z): each column of "
    "the conditional sums to 1 over the target labels y",
    "no log (mean of the expected prediction)": "LEEP is a log-likelihood: take log of "
    "Σ_z P̂(y_i | z) θ(x_i)_z for each example before averaging",
    "log of the mean instead of the mean of the logs": "average the n logs, (1/n) Σ_i log(…), "
    "not log of the average",
    "conditioned on y instead of z": "P̂(y | z) normalises over y for a fixed source label z "
    "(sum over rows of the joint), not over z",
    "hard source labels (argmax) instead of probabilities": "use the whole softmax θ(x_i), "
    "not a one-hot of its argmax: LEEP is an expectation over the source labels",
}


def _cases():
    rng = np.random.default_rng(0)
    out = []
    for n, z_count, classes in [(12, 3, 2), (30, 5, 3), (40, 2, 4), (20, 6, 3)]:
        logits = rng.normal(size=(n, z_count)) * 2
        theta = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        y = np.arange(n) % classes
        rng.shuffle(y)
        out.append((theta, y))
    theta = np.array([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.1, 0.9, 0.0], [0.2, 0.8, 0.0]])
    out.append((theta, np.array([0, 0, 1, 1])))  # source class 2 never predicted
    return out


def check_leep(fn: Callable) -> bool:
    """Lesson 06: ``fn(theta, y)`` must return LEEP as a float, from θ (n × Z, the source
    model's softmax over its own labels) and y (n target labels 0 … C−1)::

        P̂(y, z) = (1/n) Σ_{i: y_i = y} θ(x_i)_z
        P̂(y | z) = P̂(y, z) / Σ_y' P̂(y', z)
        LEEP = (1/n) Σ_i log Σ_z P̂(y_i | z) θ(x_i)_z
    """
    name = "check_leep"
    problems: list[str] = []
    hints: list[str] = []
    for theta, y in _cases():
        want = _leep_by_loops(theta, y)
        shape = f"θ {theta.shape[0]}×{theta.shape[1]}, {int(y.max()) + 1} target classes"
        got, err = _call(fn, theta.copy(), y.copy())
        if err:
            problems.append(f"{shape}: {err}")
            continue
        if got is None:
            problems.append(f"{shape}: your function returned None")
            hints.append(
                "compute the three steps and `return` LEEP as a float: "
                "joint = np.eye(C)[y].T @ theta / n (C × Z), divide each column by its sum, "
                "then np.log of each image's Σ_z P̂(y_i | z) θ_iz, averaged"
            )
            break  # the same for every case: say it once
        try:
            got = float(got)
        except (TypeError, ValueError):
            problems.append(f"{shape}: expected a number, got {type(got).__name__}")
            continue
        if np.isclose(got, want, rtol=1e-6, atol=1e-9):
            continue
        problems.append(f"{shape}: expected {want:.4f}, got {got:.4f}")
        if got > 1e-12 and "LEEP is a log-likelihood of probabilities ≤ 1" not in hints:
            hints.append("LEEP is a log-likelihood of probabilities ≤ 1, so it is ≤ 0")
        for slip, value in _slips(theta, y).items():
            if (
                np.isfinite(value)
                and np.isclose(got, value, rtol=1e-6)
                and _HINTS[slip] not in hints
            ):
                problems.append(f"   that is what '{slip}' gives")
                hints.append(_HINTS[slip])
    return _feedback(name, problems, hints)
