"""Lesson 06, "Your turn": LEEP by hand (Nguyen et al., ICML 2020)."""

import numpy as np


def my_leep(theta, y):
    """theta: n × Z source-label probabilities; y: n target labels 0 … C−1."""
    theta, y = np.asarray(theta, dtype=float), np.asarray(y)
    n = len(y)
    onehot = np.eye(y.max() + 1)[y]  # n × C
    joint = onehot.T @ theta / n  # C × Z: P̂(y, z)
    marginal = joint.sum(axis=0)  # Z: P̂(z)
    cond = np.divide(joint, marginal, out=np.zeros_like(joint), where=marginal > 0)  # P̂(y | z)
    eep = (theta @ cond.T)[np.arange(n), y]  # Σ_z P̂(y_i | z) θ(x_i)_z
    return float(np.log(eep).mean())
