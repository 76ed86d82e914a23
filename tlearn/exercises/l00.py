"""Lesson 00's "Your turn": predict the domain gap, then read a confusion matrix.

Two exercises:

* **Predict, then run.** Before the lesson measures the source model on handwriting, the
  student records a guess (:func:`record_prediction`); after the measurement,
  :func:`compare_prediction` says how far the guess was and what the miss suggests.
* **Read the matrix.** The student writes ``per_class_recall(cm)`` (row ``i`` of ``cm`` counts
  the examples whose true class is ``i``, column ``j`` those predicted as ``j``) and
  ``sink_class(cm)`` (the class that receives the most *wrong* predictions);
  :func:`check_confusion_reading` compares them with :func:`confusion_reading` and names the
  usual slips (precision instead of recall, counting correct answers in the sink, …).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tlearn.exercises import _call, _feedback

__all__ = [
    "confusion_matrix",
    "confusion_reading",
    "record_prediction",
    "compare_prediction",
    "check_confusion_reading",
]


# --- the reference: what the lesson computes and the student re-derives ------------------


def confusion_matrix(y_true, y_pred, num_classes: int = 10) -> np.ndarray:
    """Counts ``cm[i, j]`` of examples with true class ``i`` predicted as ``j``."""
    t = np.asarray(y_true).reshape(-1).astype(int)
    p = np.asarray(y_pred).reshape(-1).astype(int)
    if len(t) != len(p):
        raise ValueError(f"y_true has {len(t)} entries but y_pred has {len(p)}")
    if len(t) and (min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= num_classes):
        raise ValueError(f"class indices must lie in 0..{num_classes - 1}")
    return np.bincount(t * num_classes + p, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )


def confusion_reading(cm) -> dict:
    """What a confusion matrix (rows: true class, columns: predicted class) says.

    Returns ``recall`` (per class: diagonal / row sum), ``worst`` (classes by increasing
    recall), ``errors_received`` (per class: wrong predictions *of* that class = column sum
    minus diagonal), ``sink`` (the class receiving the most wrong predictions),
    ``sink_share`` (its fraction of all errors; 1/(K−1) would be an even spread when every
    class is mistaken equally often for every other) and ``accuracy``.
    """
    cm = np.asarray(cm, dtype=float)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"expected a square K×K matrix, got shape {cm.shape}")
    rows = cm.sum(axis=1)
    if (rows == 0).any():
        raise ValueError(f"classes {np.flatnonzero(rows == 0).tolist()} have no examples")
    recall = np.diag(cm) / rows
    received = cm.sum(axis=0) - np.diag(cm)
    errors = received.sum()
    return {
        "recall": recall,
        "worst": np.argsort(recall, kind="stable"),
        "errors_received": received.astype(int),
        "sink": int(received.argmax()),
        "sink_share": float(received.max() / errors) if errors else 0.0,
        "errors": int(errors),
        "accuracy": float(np.trace(cm) / cm.sum()),
    }


# --- exercise 1: predict, then run -----------------------------------------------------------

_recorded: dict = {}


def record_prediction(uci_accuracy: float | None, worst_digit: int | None) -> bool:
    """Record your guess *before* the measurement: the source model's accuracy on the target
    test set (a fraction in [0, 1]) and the digit you expect it to recognise worst.
    Returns True when both were filled in."""
    _recorded.clear()
    problems = []
    if uci_accuracy is None:
        problems.append("no accuracy guess yet: replace None with a fraction such as 0.7")
    elif not 0 <= float(uci_accuracy) <= 1:
        problems.append(f"accuracy {uci_accuracy!r} is not a fraction in [0, 1] (0.7, not 70)")
    if worst_digit is None:
        problems.append("no digit guess yet: which of 0–9 will the model get wrong most often?")
    elif int(worst_digit) not in range(10):
        problems.append(f"worst_digit must be one of 0–9, got {worst_digit!r}")
    if problems:
        print("📝 prediction not recorded:")
        for p in problems:
            print(f"   • {p}")
        return False
    _recorded.update(uci_accuracy=float(uci_accuracy), worst_digit=int(worst_digit))
    print(
        f"📝 recorded: uci accuracy ≈ {float(uci_accuracy):.0%}, worst digit {int(worst_digit)}. "
        "Now run the measurement."
    )
    return True


def compare_prediction(measured_accuracy: float, cm) -> bool:
    """After the measurement: compare the recorded guess with the measured mean accuracy and
    the confusion matrix ``cm``. Prints what the miss suggests; returns True when the
    accuracy guess was within 10 points and the digit among the three worst."""
    if not _recorded:
        print(
            "❌ no prediction was recorded: fill in record_prediction(...) above and run it "
            "*before* the measurement — a guess made after seeing the answer teaches nothing."
        )
        return False
    reading = confusion_reading(cm)
    guess, digit = _recorded["uci_accuracy"], _recorded["worst_digit"]
    worst3 = [int(k) for k in reading["worst"][:3]]
    off = guess - measured_accuracy
    lines = [f"accuracy: you guessed {guess:.0%}, measured {measured_accuracy:.1%} ({off:+.0%})"]
    if off > 0.10:
        lines.append(
            "   you expected the digits to transfer better than they do: the same ten classes "
            "in another style is already a different distribution"
        )
    elif off < -0.10:
        lines.append(
            "   you expected less than the model keeps: far above chance (10%), printed "
            "shapes still carry much of what handwriting needs"
        )
    rank = int(np.flatnonzero(reading["worst"] == digit)[0]) + 1
    lines.append(
        f"worst digit: you guessed {digit} (recall {reading['recall'][digit]:.0%}, rank {rank} "
        f"of 10 from the worst); the three worst are {worst3}"
    )
    if digit not in worst3 and reading["sink"] == digit:
        lines.append(
            f"   {digit} is the *sink*: it receives the most wrong predictions, but its own "
            "examples are mostly right — a row (recall) and a column (errors received) differ"
        )
    ok = abs(off) <= 0.10 and digit in worst3
    print(("✅ " if ok else "🔎 ") + lines[0])
    for line in lines[1:]:
        print(line)
    return ok


# --- exercise 2: per-class recall and the sink class -------------------------------------


def _cases() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 20, size=(10, 10)) + np.diag(rng.integers(5, 60, size=10))
    a[:, 4] += rng.integers(5, 30, size=10)  # a sink that is not the biggest row-wise loser
    b = np.array([[5, 0, 1], [2, 3, 9], [0, 1, 4]])  # the most-missed class (1) ≠ the sink (2)
    c = np.array([[50, 10, 0, 0], [1, 2, 0, 0], [0, 0, 7, 1], [3, 0, 0, 9]])  # unequal rows
    return [a, b, c]


def check_confusion_reading(per_class_recall: Callable, sink_class: Callable) -> bool:
    """Lesson 00: ``per_class_recall(cm)`` must return the K recalls ``cm[i, i] / Σ_j cm[i, j]``
    (fractions in [0, 1]) and ``sink_class(cm)`` the class ``j`` that receives the most wrong
    predictions, ``argmax_j Σ_{i≠j} cm[i, j]``. Rows are true classes, columns predictions.

    Recognises the usual slips: dividing by column sums (that is precision), by the total,
    percentages, returning the diagonal counts, counting correct predictions in the sink,
    and the sink read from rows (the class most often *missed*) instead of columns.
    """
    name = "check_confusion_reading"
    problems: list[str] = []
    hints: list[str] = []
    for cm in _cases():
        k = len(cm)
        want = confusion_reading(cm)
        shape = f"{k}×{k} matrix"
        out, err = _call(per_class_recall, cm.copy())
        if err:
            problems.append(f"per_class_recall on a {shape}: {err}")
        elif out is None:
            problems.append("per_class_recall returned None")
            hints.append("did you forget the `return` statement?")
        else:
            got = np.asarray(out, dtype=float).reshape(-1)
            diag = np.diag(cm).astype(float)
            if got.shape != (k,):
                problems.append(
                    f"per_class_recall on a {shape}: expected {k} numbers, got {got.size}"
                )
                hints.append("one recall per class: a vector of length K")
            elif not np.allclose(got, want["recall"], atol=1e-6):
                problems.append(
                    f"per_class_recall on a {shape}: expected {np.round(want['recall'], 3)}, "
                    f"got {np.round(got, 3)}"
                )
                if np.allclose(got, diag / cm.sum(axis=0).clip(min=1), atol=1e-6):
                    hints.append(
                        "you divided by the column sums: that is precision (of all predicted "
                        "j, how many are j); recall divides by the row sums (all true i)"
                    )
                elif np.allclose(got, 100 * want["recall"], atol=1e-4):
                    hints.append("return fractions in [0, 1], not percentages")
                elif np.allclose(got, diag):
                    hints.append(
                        "you returned the counts on the diagonal; divide by each row's sum"
                    )
                elif np.allclose(got, diag / cm.sum(), atol=1e-6):
                    hints.append("divide by each row's sum (that class's examples), not the total")
                else:
                    hints.append("recall of class i = cm[i, i] / cm[i, :].sum()")
        out, err = _call(sink_class, cm.copy())
        if err:
            problems.append(f"sink_class on a {shape}: {err}")
            continue
        if out is None:
            problems.append("sink_class returned None")
            hints.append("did you forget the `return` statement?")
            continue
        try:
            got = int(out)
        except (TypeError, ValueError):
            problems.append(f"sink_class: expected one class index, got {type(out).__name__}")
            hints.append("return a single int: the column index, e.g. int(x.argmax())")
            continue
        if got == want["sink"]:
            continue
        problems.append(f"sink_class on a {shape}: expected class {want['sink']}, got {got}")
        missed = cm.sum(axis=1) - np.diag(cm)
        if got == int(cm.sum(axis=0).argmax()):
            hints.append(
                "you counted the correct predictions too: the sink receives the most *wrong* "
                "ones — subtract the diagonal from the column sums"
            )
        elif got == int(missed.argmax()) or got == int(np.argmin(want["recall"])):
            hints.append(
                "that is the class most often *missed* (a row); the sink is a column: the "
                "class the model predicts when it is wrong"
            )
        else:
            hints.append("errors received by class j: cm[:, j].sum() - cm[j, j]; take the argmax")
    return _feedback(name, list(dict.fromkeys(problems)), list(dict.fromkeys(hints)))
