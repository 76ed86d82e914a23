"""Lessons 03–05's claims: each lesson's message as sentences, each checked on its numbers.

Each function returns ``{sentence: (holds, evidence)}`` for :func:`tlearn.studies.claims.check`
(lesson 03: :func:`coral_claims`, 04: :func:`mmd_claims`, 05: :func:`adversarial_claims`).
Every check fails when its sentence is false: ``tests/test_studies_adaptation.py`` feeds each
function falsified numbers. The tables they read are
:func:`tlearn.studies.adaptation.comparison`'s, ``{row name: [result per seed]}``, each
result a dict with ``target_accuracy`` and ``proxy_a_distance``; gains are paired by seed.
"""

from __future__ import annotations

import numpy as np

from tlearn.studies.claims import describe, paired_difference

__all__ = [
    "coral_claims",
    "mmd_claims",
    "adversarial_claims",
    "adversarial_ingredients",
    "ADVERSARIAL_INGREDIENTS",
]

Claims = dict[str, tuple[bool, str]]


def _target_accuracies(rows: list[dict]) -> np.ndarray:
    """The target accuracy of each seed's result."""
    return np.array([r["target_accuracy"] for r in rows], dtype=float)


def _points(fractions) -> str:
    """Fractions as signed percentage points: ``+12.3, -0.4``."""
    return ", ".join(f"{100 * v:+.1f}" for v in np.atleast_1d(fractions))


# --------------------------------------------------------------------------- lesson 03
def coral_claims(
    linear: list[dict],
    source_only: list[dict],
    deep: list[dict],
    gaps: dict[float, float],
    gap_before: float,
    control: dict | None = None,
) -> Claims:
    """Lesson 03's message, each sentence checked on the numbers: ``{sentence: (holds, numbers)}``.

    ``linear``: ``coral_closed_form`` results per seed (with ``no_adaptation``,
    ``standardised``, ``coral``); ``source_only``/``deep``: ``none``/``coral`` results of
    the same seeds; ``gaps``: ``{ε: ‖cov(CORAL(zs, ε)) − cov(zt)‖_F}``; ``gap_before``:
    the same before CORAL; ``control``: the ``w = 0`` run of the first seed (per-domain
    BatchNorm without the CORAL loss), compared with ``source_only[0]``.
    """
    no_adaptation = np.array([r["no_adaptation"] for r in linear])
    standardised = np.array([r["standardised"] for r in linear])
    recoloured = np.array([r["coral"] for r in linear])
    source = _target_accuracies(source_only)
    deep_coral = _target_accuracies(deep)
    own_statistics = np.array([r["source_accuracy_own_bn"] for r in deep])
    distance_source = np.array([r["proxy_a_distance"] for r in source_only])
    distance_deep = np.array([r["proxy_a_distance"] for r in deep])
    eps = sorted(gaps)
    standardising_gain = (standardised - no_adaptation).mean()
    recolouring_gain = (recoloured - standardised).mean()
    claims = {
        "with ε = 1, CORAL moves the source covariance towards the target's (gap more than "
        "halved) but leaves a gap, which shrinks as ε shrinks": (
            bool(
                gaps[1.0] < 0.5 * gap_before
                and all(gaps[a] < gaps[b] for a, b in zip(eps, eps[1:], strict=False))
            ),
            f"{gap_before:.2f} → " + ", ".join(f"{gaps[e]:.2f} (ε={e:g})" for e in eps[::-1]),
        ),  # fmt: skip
        "standardising each domain gains over no adaptation on average (mean over seeds)": (
            bool(standardising_gain > 0),
            f"{_points(standardised - no_adaptation)} (mean {100 * standardising_gain:+.1f})",
        ),
        "re-colouring adds less than half of what standardising adds (mean over seeds)": (
            bool(recolouring_gain < standardising_gain / 2),
            f"{100 * recolouring_gain:+.1f} vs {100 * standardising_gain:+.1f}",
        ),
        "Deep CORAL beats source only on every seed, by 15+ points on average": (
            bool(((deep_coral - source) > 0).all() and (deep_coral - source).mean() >= 0.15),
            f"{_points(deep_coral - source)} (mean {100 * (deep_coral - source).mean():+.1f})",
        ),
        "Deep CORAL beats the standardised linear classifier by 5+ points (mean)": (
            bool(deep_coral.mean() - standardised.mean() >= 0.05),
            _points(deep_coral.mean() - standardised.mean()),
        ),
        "with the source's BatchNorm statistics, Deep CORAL keeps 95%+ on the source, every seed": (
            bool((own_statistics >= 0.95).all()),
            ", ".join(f"{100 * v:.1f}%" for v in own_statistics),
        ),
        "measured with each domain's own statistics, Deep CORAL lowers the proxy A-distance "
        "on every seed": (
            bool((distance_deep < distance_source).all()),
            ", ".join(
                f"{a:.2f} → {b:.2f}" for a, b in zip(distance_source, distance_deep, strict=True)
            ),
        ),
    }
    if control is not None:
        gain = control["target_accuracy"] - source[0]
        deep_gain = deep_coral[0] - source[0]
        claims[
            "the w = 0 control (per-domain BatchNorm, no CORAL loss) has a proxy A-distance "
            "below 1 yet gains 5+ points less than Deep CORAL on the same seed: a low "
            "A-distance is not adaptation"
        ] = (
            bool(control["proxy_a_distance"] < 1 and deep_gain - gain >= 0.05),
            f"A-distance {control['proxy_a_distance']:.2f}, gain {100 * gain:+.1f} against "
            f"Deep CORAL's {100 * deep_gain:+.1f}",
        )
    return claims


# --------------------------------------------------------------------------- lesson 04
def mmd_claims(
    table: dict[str, list[dict]],
    spread: dict[str, np.ndarray],
    p_domains: float,
    p_halves: float,
) -> Claims:
    """Lesson 04's message, each sentence checked on the numbers: ``{sentence: (holds, numbers)}``.

    ``table``: :func:`~tlearn.studies.adaptation.comparison` over
    :data:`~tlearn.studies.adaptation.MMD_ROWS`; ``spread``:
    :func:`~tlearn.studies.adaptation_report.estimator_spread` of one domain (true MMD² = 0);
    ``p_domains``/``p_halves``: permutation-test p-values of source vs target and of two
    random halves of the target.
    """
    source, mmd, bound = (
        _target_accuracies(table[k]) for k in ("source only", "MMD (DAN)", "target supervised")
    )
    unsupervised = {k: _target_accuracies(v) for k, v in table.items() if k != "target supervised"}
    biased, unbiased = np.asarray(spread["biased"]), np.asarray(spread["unbiased"])
    negative = float(np.mean(unbiased < 0))
    standard_error = unbiased.std(ddof=1) / np.sqrt(len(unbiased))
    distance = {
        k: np.array([r["proxy_a_distance"] for r in table[k]]) for k in ("source only", "MMD (DAN)")
    }
    return {
        "the unbiased MMD² of two halves of one domain is negative on 30–70 % of the splits": (
            bool(0.3 <= negative <= 0.7),
            f"{negative:.0%}",
        ),
        "the biased estimate sits above the unbiased one by more than 10 standard errors "
        "(its bias when the distributions are equal)": (
            bool(biased.mean() - unbiased.mean() > 10 * standard_error),
            f"{biased.mean():+.5f} vs {unbiased.mean():+.5f} (SE {standard_error:.5f})",
        ),
        "source and target features differ (p < 0.01); two random halves of the target do "
        "not (p > 0.05)": (
            bool(p_domains < 0.01 and p_halves > 0.05),
            f"p = {p_domains:.4f} and {p_halves:.3f}",
        ),
        "MMD (DAN) beats source only on every seed, by 10+ points on average": (
            bool(((mmd - source) > 0).all() and (mmd - source).mean() >= 0.10),
            f"{_points(mmd - source)} (mean {100 * (mmd - source).mean():+.1f})",
        ),
        "every method without target labels stays below the target-supervised bound on every "
        "seed": (
            bool(all((v < bound).all() for v in unsupervised.values())),
            f"best unsupervised seed {100 * max(v.max() for v in unsupervised.values()):.1f} "
            f"vs bound ≥ {100 * bound.min():.1f}",
        ),
        "measured with each domain's own statistics, MMD training lowers the proxy A-distance "
        "below source only's on every seed": (
            bool((distance["MMD (DAN)"] < distance["source only"]).all()),
            ", ".join(
                f"{a:.2f} → {c:.2f}"
                for a, c in zip(distance["source only"], distance["MMD (DAN)"], strict=True)
            ),  # fmt: skip
        ),
    }


# --------------------------------------------------------------------------- lesson 05
#: Lesson 05's two ingredient comparisons: what conditioning adds, and what the weights add.
ADVERSARIAL_INGREDIENTS = {
    "conditioning (CDAN − DANN)": ("CDAN", "DANN"),
    "entropy weights (CDAN+E − CDAN)": ("CDAN+E", "CDAN"),
}


def adversarial_ingredients(table: dict[str, list[dict]]) -> dict[str, str]:
    """Each of CDAN's ingredients credited against its own baseline, paired by seed:
    ``{comparison: "mean +x.x points, 95 % interval [lo, hi] (per seed …)"}``, with a note
    when the interval contains zero (three seeds cannot tell that gain from noise)."""
    accuracy = {k: _target_accuracies(v) for k, v in table.items()}
    out = {}
    for name, (a, b) in ADVERSARIAL_INGREDIENTS.items():
        difference = paired_difference(accuracy[a], accuracy[b])
        text = f"{describe(difference)}; per seed {_points(accuracy[a] - accuracy[b])}"
        if difference["low"] <= 0 <= difference["high"]:
            text += f"; not separated from zero by {difference['n']} seeds"
        out[name] = text
    return out


def adversarial_claims(table: dict[str, list[dict]]) -> Claims:
    """Lesson 05's message, each sentence checked on the numbers: ``{sentence: (holds, numbers)}``.

    ``table``: :func:`~tlearn.studies.adaptation.comparison` over
    :data:`~tlearn.studies.adaptation.ADVERSARIAL_ROWS` (gains are paired by seed). What each of
    CDAN's two ingredients adds (conditioning: CDAN − DANN; the entropy weights: CDAN+E − CDAN)
    is not asserted here: :func:`adversarial_ingredients` reports both paired differences with a
    95 % interval, and three seeds do not separate either from zero on synth → uci. Nor is a
    gain on every seed: on seed 17 (claims harness) CDAN lost 4.8 points to source only and
    CDAN+E 7.6, and CDAN+E's mean gain over seeds 15–17 was +2.2, so only CDAN's mean is
    asserted (CDAN+E's is printed beside it). AdaBN's own mean gain is not asserted either: "less
    than 3 points on average" held on seven seed sets and failed on seeds 21–23 (−3.9, +17.2,
    +4.8); what held on every set is that it gains less than CDAN, which trains the features.
    """
    accuracy = {k: _target_accuracies(v) for k, v in table.items()}
    gain = {k: v - accuracy["source only"] for k, v in accuracy.items()}
    return {
        "AdaBN alone gains 5+ points less than CDAN on average (paired by seed)": (
            bool((gain["CDAN"] - gain["AdaBN"]).mean() >= 0.05),
            f"CDAN − AdaBN {_points(gain['CDAN'] - gain['AdaBN'])} "
            f"(mean {100 * (gain['CDAN'] - gain['AdaBN']).mean():+.1f})",
        ),
        "TENT (AdaBN + the entropy step) scores above AdaBN on every seed": (
            bool((accuracy["TENT"] > accuracy["AdaBN"]).all()),
            _points(accuracy["TENT"] - accuracy["AdaBN"]),
        ),
        "CDAN beats source only by 5+ points on average (mean over seeds)": (
            bool(gain["CDAN"].mean() >= 0.05),
            "; ".join(
                f"{k} {_points(gain[k])} (mean {100 * gain[k].mean():+.1f})"
                for k in ("CDAN", "CDAN+E")
            ),  # fmt: skip
        ),
    }
