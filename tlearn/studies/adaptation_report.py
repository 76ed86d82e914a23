"""Lessons 03–05's tables and figures, and lesson 04's two small experiments on MMD estimates.

What a lesson shows of :mod:`tlearn.studies.adaptation`'s runs: :func:`format_table` (mean ±
std over seeds, gain, source accuracy, proxy A-distance), :func:`per_seed_table` (the numbers
behind a mean), :func:`weight_sweep_figure` (accuracy against the alignment weight w) and
:func:`null_distribution_figure` (a permutation test's null). Lesson 04 also measures MMD²
itself on extracted features: :func:`estimator_spread` (the biased and unbiased estimators when
the true MMD² is 0) and :func:`bandwidth_curve` (MMD² against the Gaussian kernel's bandwidth).

Nothing here trains or reads the cache; matplotlib is imported by the figures only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from tlearn.adapt import mmd

__all__ = [
    "format_table",
    "per_seed_table",
    "estimator_spread",
    "bandwidth_curve",
    "weight_sweep_figure",
    "null_distribution_figure",
    "BANDWIDTH_MULTIPLIERS",
]

BANDWIDTH_MULTIPLIERS = tuple(2.0**k for k in range(-8, 9, 2))  # α in γ = α·γ₀ for the plot


# --------------------------------------------------------------------------- tables
def format_table(table: dict[str, list[dict]], *, baseline: str = "source only") -> str:
    """A text table: target accuracy mean ± std (over seeds), gain over ``baseline``,
    source accuracy and proxy A-distance, one row per method."""

    def mean_std(values):
        a = 100 * np.asarray(values, dtype=float)
        return a.mean(), (a.std(ddof=1) if len(a) > 1 else 0.0)

    base = (
        mean_std([r["target_accuracy"] for r in table[baseline]])[0] if baseline in table else None
    )
    lines = [
        f"{'method':<22} {'target acc %':>14} {'gain':>7} {'source acc %':>13} {'proxy A-dist':>13}",
        "-" * 73,
    ]
    for name, rows in table.items():
        mean, std = mean_std([r["target_accuracy"] for r in rows])
        source_mean, _ = mean_std([r["source_accuracy"] for r in rows])
        distance = np.mean([r["proxy_a_distance"] for r in rows])
        gain = f"{mean - base:+7.1f}" if base is not None else ""
        lines.append(
            f"{name:<22} {mean:8.1f} ± {std:4.1f} {gain:>7} {source_mean:13.1f} {distance:13.2f}"
        )
    lines.append(
        f"(n = {len(next(iter(table.values())))} seeds; accuracies on the target test split)"
    )
    return "\n".join(lines)


def per_seed_table(table: dict[str, list[dict]], seeds, *, baseline: str = "source only") -> str:
    """Target accuracy of every row and seed, and its gain over ``baseline`` paired by seed:
    the numbers behind a mean ± std."""
    head = "".join(f"{f'seed {s}':>9}" for s in seeds)
    gains = "".join(f"{f'gain {s}':>9}" for s in seeds)
    lines = [f"{'method':<22}{head}   {gains}", "-" * (22 + 18 * len(seeds) + 3)]
    base = np.array([r["target_accuracy"] for r in table[baseline]])
    for name, rows in table.items():
        accuracy = np.array([r["target_accuracy"] for r in rows])
        line = "".join(f"{100 * a:9.1f}" for a in accuracy)
        line += "   " + "".join(f"{100 * g:+9.1f}" for g in accuracy - base)
        lines.append(f"{name:<22}{line}")
    lines.append(f"(target test accuracy %; gain = minus {baseline} of the same seed)")
    return "\n".join(lines)


# --------------------------------------------------------------------------- lesson 04: MMD²
def estimator_spread(
    Z: Any, *, repeats: int = 200, seed: int = 0, kernel: str = "multi"
) -> dict[str, np.ndarray]:
    """MMD² between two random halves of *one* sample, ``repeats`` times, both estimators.

    Both halves come from the same distribution, so the true MMD² is 0: the unbiased
    estimate scatters around 0 (negative about half the time), the biased one stays above
    it. Returns ``{"biased": array, "unbiased": array}``.
    """
    Z = torch.as_tensor(np.asarray(Z), dtype=torch.float32)
    if len(Z) < 4:
        raise ValueError(f"need at least 4 rows to split into two halves, got {len(Z)}")
    generator = torch.Generator().manual_seed(seed)
    half = len(Z) // 2
    out: dict[str, list[float]] = {"biased": [], "unbiased": []}
    for _ in range(repeats):
        perm = torch.randperm(len(Z), generator=generator)
        a, b = Z[perm[:half]], Z[perm[half : 2 * half]]
        for estimator in out:
            out[estimator].append(float(mmd(a, b, kernel=kernel, estimator=estimator)))
    return {k: np.array(v) for k, v in out.items()}


def bandwidth_curve(
    Zs: Any, Zt: Any, multipliers: Any = BANDWIDTH_MULTIPLIERS, *, seed: int = 0
) -> dict[str, np.ndarray]:
    """Gaussian-kernel MMD² (unbiased) against the bandwidth γ = α·γ₀, α in ``multipliers``.

    γ₀ is the mean squared distance of the pooled sample (the library's default). Also
    computes MMD² between two halves of the target (the null: same distribution), so a
    plot shows where the kernel *can* tell the domains apart: too narrow a kernel sees
    every point as unique, too wide a kernel sees all points as one.
    Returns ``{"multipliers", "source_vs_target", "target_vs_target"}``.
    """
    zs = torch.as_tensor(np.asarray(Zs), dtype=torch.float64)
    zt = torch.as_tensor(np.asarray(Zt), dtype=torch.float64)
    z = torch.cat([zs, zt])
    gamma0 = float(torch.cdist(z, z).pow(2).mean())
    perm = torch.randperm(len(zt), generator=torch.Generator().manual_seed(seed))
    t1, t2 = zt[perm[: len(zt) // 2]], zt[perm[len(zt) // 2 :]]
    alphas = np.asarray(multipliers, dtype=float)

    def curve(x, y):
        return np.array(
            [
                float(mmd(x, y, "gaussian", bandwidth=a * gamma0, estimator="unbiased"))
                for a in alphas
            ]
        )

    return {
        "multipliers": alphas,
        "source_vs_target": curve(zs, zt),
        "target_vs_target": curve(t1, t2),
    }


# --------------------------------------------------------------------------- figures
def weight_sweep_figure(results: dict, highlight: float | None = None, *, title: str = ""):
    """Target and source accuracy against the alignment loss weight w (log axis; w = 0 at the
    left edge) for ``weight_sweep`` results; ``highlight`` circles one w. Returns the Figure."""
    import matplotlib.pyplot as plt  # here, not at the top: pyplot's import is slow

    weights = sorted(results, key=float)
    x = [
        float(w) if float(w) > 0 else min([float(v) for v in weights if float(v) > 0] or [1]) / 10
        for w in weights
    ]
    target = [100 * results[w]["target_accuracy"] for w in weights]
    source = [100 * results[w]["source_accuracy"] for w in weights]
    fig, ax = plt.subplots(figsize=(5.4, 3.6), layout="constrained")
    ax.plot(x, target, "o-", label="target test")
    ax.plot(x, source, "s--", label="source validation")
    if highlight is not None:
        i = [float(w) for w in weights].index(float(highlight))
        ax.scatter([x[i]], [target[i]], s=180, facecolors="none", edgecolors="k", zorder=5)
    ax.set_xscale("log")
    ax.set_xticks(x, [f"{float(w):g}" for w in weights])
    ax.minorticks_off()
    ax.set_xlabel("alignment loss weight w")
    ax.set_ylabel("accuracy %")
    ax.set_ylim(0, 105)
    ax.legend(loc="lower right")
    if title:
        ax.set_title(title)
    return fig


def null_distribution_figure(test: dict, *, title: str = ""):
    """Histogram of an ``adapt.mmd_test`` null distribution with the observed statistic."""
    import matplotlib.pyplot as plt  # here, not at the top: pyplot's import is slow

    fig, ax = plt.subplots(figsize=(5.4, 3.4), layout="constrained")
    ax.hist(test["null"], bins=30, color="0.6", label="MMD² of random re-splits (H₀)")
    ax.axvline(test["statistic"], color="C3", lw=2, label=f"observed (p = {test['p_value']:.3g})")
    ax.set_xlabel("MMD²")
    ax.set_ylabel("count")
    ax.legend()
    if title:
        ax.set_title(title)
    return fig
