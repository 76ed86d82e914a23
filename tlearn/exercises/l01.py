"""Lesson 01's "Your turn": predict, then run.

Before running the central experiment (``studies.finetune.few_shot_curve``) the student
records which strategy will have the highest mean target accuracy with 1 labelled image per
class and with 30. After the run, :func:`check_prediction` compares the prediction with the
measured table and explains each miss from the numbers: by how many points the predicted
strategy was behind, which strategies were within seed noise of the best, and why.

    from tlearn.exercises import l01
    prediction = l01.record_prediction(at_1="head", at_30="full")   # before the run
    results = finetune.few_shot_curve(...)
    l01.check_prediction(prediction, results)                       # after it
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from tlearn.exercises import _feedback

__all__ = ["Prediction", "record_prediction", "winners", "check_prediction"]

# Why a strategy can lose, in words a student can check against the table: (few labels, many).
_WHY = {
    "scratch": (
        "from scratch, every feature must be learned from 10 labelled images; the source body "
        "already computes strokes and edges, which matters most when labels are scarcest",
        "with many labels scratch comes close, yet here the best strategy still led it by more "
        "than the seed-to-seed noise: a pretrained body is a head start even then",
    ),
    "head": (
        "head only keeps the printed-font features fixed; even with 1 image per class, "
        "adapting the body as well paid off",
        "head only trains 1,290 parameters on frozen features learned from printed fonts: "
        "nothing below the head can adapt to handwriting, so more labels help it little",
    ),
    "full": (
        "full fine-tuning moves every block at the body's learning rate; compare it with the "
        "strategies that move early blocks less (gradual, discriminative)",
    )
    * 2,
    "gradual": (
        "gradual unfreezing trains the deep blocks only in the last epochs of a 30-step "
        "budget, so they move less than under full fine-tuning",
    )
    * 2,
    "discriminative": (
        "discriminative learning rates move the first blocks 10× slower and the last ones "
        "faster than full fine-tuning; whether that helps depends on how far the domains are",
    )
    * 2,
}


@dataclass(frozen=True)
class Prediction:
    """Which strategy will have the highest mean accuracy, per labels-per-class count."""

    best: dict[int, str]
    recorded_at: float = field(default_factory=time.time)


def record_prediction(*, at_1: str, at_30: str) -> Prediction:
    """Record your guess *before* the run: the best strategy at 1 and at 30 labels per class.

    Names are the method keys (``"scratch"``, ``"head"``, ``"full"``, ``"gradual"``,
    ``"discriminative"``) or their labels in the table (``"full fine-tune"``). The time of
    recording is kept, so the check can tell whether the prediction predates the run.
    """
    return Prediction(best={1: at_1, 30: at_30})


def _canonical(name, methods: list[str]) -> str | None:
    from tlearn.studies.finetune import METHOD_LABELS

    if not isinstance(name, str):
        return None
    key = name.strip().lower()
    for m in methods:
        if key in (m.lower(), METHOD_LABELS.get(m, m).lower()):
            return m
    return None


def winners(results, per_class: int) -> tuple[str, list[str]]:
    """The strategy with the highest mean accuracy at ``per_class``, and every strategy tied
    with it within seed noise.

    Tied: the mean gap to the best, paired by seed (same few-shot set), is smaller than the
    standard deviation of those per-seed gaps (with one seed: smaller than 0.5 points).
    """
    means = {m: float(np.mean(results.accuracies(m, per_class))) for m in results.methods}
    best = max(means, key=means.get)
    tied = []
    for m in results.methods:
        gaps = np.asarray(results.accuracies(best, per_class)) - np.asarray(
            results.accuracies(m, per_class)
        )
        noise = float(gaps.std(ddof=1)) if gaps.size > 1 else 0.005
        if m == best or gaps.mean() < max(noise, 1e-12):
            tied.append(m)
    return best, tied


def check_prediction(prediction: Prediction, results) -> bool:
    """Compare a :class:`Prediction` with ``few_shot_curve``'s results; explain every miss.

    Passes when, at 1 and at 30 labels per class, the predicted strategy is the measured best
    or tied with it within seed noise (:func:`winners`). Says what is wrong: a name that is no
    strategy, a count the run did not measure, a prediction recorded after the run started.
    """
    from tlearn.studies.finetune import METHOD_LABELS

    name = "check_prediction"
    problems: list[str] = []
    hints: list[str] = []
    if not isinstance(prediction, Prediction):
        return _feedback(
            name,
            [
                f"expected l01.record_prediction(at_1=..., at_30=...), got {type(prediction).__name__}"
            ],
            ["record the prediction in the cell before the run: l01.record_prediction(...)"],
        )
    for attr in ("methods", "per_class", "seeds", "accuracies"):
        if not hasattr(results, attr):
            return _feedback(name, [f"results has no {attr!r}: pass few_shot_curve's output"], [])
    started = getattr(results, "started", None)
    if started is not None and prediction.recorded_at > started:
        problems.append("this prediction was recorded after the run started")
        hints.append("predict first: run record_prediction(...) before few_shot_curve(...)")
    label = lambda m: METHOD_LABELS.get(m, m)  # noqa: E731
    for k, guess in sorted(prediction.best.items()):
        unit = "label" if k == 1 else "labels"
        if k not in results.per_class:
            problems.append(f"the run has no {k} {unit}/class (it has {results.per_class})")
            continue
        m = _canonical(guess, results.methods)
        if m is None:
            choices = ", ".join(f'"{x}"' for x in results.methods)
            problems.append(f"at {k} {unit}/class: {guess!r} is not a strategy of this run")
            hints.append(f"choose one of {choices}")
            continue
        best, tied = winners(results, k)
        mean = {x: float(np.mean(results.accuracies(x, k))) for x in results.methods}
        others = [x for x in tied if x != best]
        within = f" ({', '.join(label(x) for x in others)} within seed noise)" if others else ""
        measured = f"best measured: {label(best)} {mean[best]:.1%}{within}"
        if m in tied:
            print(f"✓ {k} {unit}/class: you predicted {label(m)} — {measured}")
            continue
        gap = 100 * (mean[best] - mean[m])
        problems.append(
            f"at {k} {unit}/class you predicted {label(m)} ({mean[m]:.1%}), "
            f"{gap:.1f} points behind the {measured}"
        )
        why = _WHY.get(m, ("compare it with the best in the table",) * 2)[k > 5]
        hints.append(f"{k} {unit}/class: {why}")
    return _feedback(name, problems, hints)
