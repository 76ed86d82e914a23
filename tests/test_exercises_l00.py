"""Lesson 00's exercises and claims: the solution passes, the usual slips fail with the right
feedback, and every assert of the claims cell fails when its sentence is false."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from tlearn.exercises import l00

ROOT = Path(__file__).resolve().parent.parent


def _solution():
    path = ROOT / "lessons" / "solutions" / "00_confusion_reading.py"
    spec = importlib.util.spec_from_file_location("solution_00", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_confusion_reading_by_hand():
    cm = np.array([[5, 0, 1], [2, 3, 9], [0, 1, 4]])
    r = l00.confusion_reading(cm)
    np.testing.assert_allclose(r["recall"], [5 / 6, 3 / 14, 4 / 5])
    assert list(r["worst"]) == [1, 2, 0]
    assert list(r["errors_received"]) == [2, 1, 10]
    assert r["sink"] == 2 and r["errors"] == 13 and r["sink_share"] == pytest.approx(10 / 13)
    assert r["accuracy"] == pytest.approx(12 / 25)
    np.testing.assert_array_equal(l00.confusion_matrix([0, 1, 1, 2], [0, 2, 1, 2], 3),
                                  [[1, 0, 0], [0, 1, 1], [0, 0, 1]])  # fmt: skip
    with pytest.raises(ValueError, match="no examples"):
        l00.confusion_reading([[1, 0], [0, 0]])
    with pytest.raises(ValueError, match="square"):
        l00.confusion_reading(np.ones((2, 3)))


def test_the_solution_passes(capsys):
    sol = _solution()
    assert l00.check_confusion_reading(sol.per_class_recall, sol.sink_class)
    assert "all checks passed" in capsys.readouterr().out


def _recall(cm):
    cm = np.asarray(cm, dtype=float)
    return np.diag(cm) / cm.sum(1)


def _sink(cm):
    cm = np.asarray(cm)
    return int((cm.sum(0) - np.diag(cm)).argmax())


@pytest.mark.parametrize(
    ("recall", "sink", "feedback"),
    [
        (lambda cm: None, _sink, "forget the `return`"),
        (lambda cm: np.diag(cm) / np.asarray(cm).sum(0), _sink, "that is precision"),
        (lambda cm: 100 * _recall(cm), _sink, "not percentages"),
        (lambda cm: np.diag(cm), _sink, "counts on the diagonal"),
        (lambda cm: np.diag(cm) / np.asarray(cm).sum(), _sink, "not the total"),
        (_recall, lambda cm: int(np.asarray(cm).sum(0).argmax()), "subtract the diagonal"),
        (_recall, lambda cm: int(np.argmin(_recall(cm))), "most often *missed*"),
        (_recall, lambda cm: [1, 2], "a single int"),
        (_recall, lambda cm: 1 / 0, "raised ZeroDivisionError"),
    ],
)
def test_usual_slips_fail_with_the_right_feedback(capsys, recall, sink, feedback):
    assert not l00.check_confusion_reading(recall, sink)
    assert feedback in capsys.readouterr().out


def test_predict_then_run(capsys):
    cm = 10 * np.eye(10, dtype=int)
    cm[9, 9], cm[9, 4] = 2, 8  # 9 is the worst digit (recall 20%), 4 the sink
    l00._recorded.clear()
    assert not l00.compare_prediction(0.5, cm)
    assert "no prediction was recorded" in capsys.readouterr().out
    assert not l00.record_prediction(None, None)
    assert "not recorded" in capsys.readouterr().out
    assert not l00.record_prediction(70, 3)
    assert "not a fraction" in capsys.readouterr().out
    assert l00.record_prediction(0.45, 9)
    assert l00.compare_prediction(0.42, cm)
    assert l00.record_prediction(0.95, 0)
    assert not l00.compare_prediction(0.42, cm)
    assert "transfer better than they do" in capsys.readouterr().out
    assert l00.record_prediction(0.2, 4)
    assert not l00.compare_prediction(0.42, cm)
    out = capsys.readouterr().out
    assert "less than the model keeps" in out and "4 is the *sink*" in out
    l00._recorded.clear()


# --- the claims cell of lesson 00, run on true and on falsified numbers ------------------


def _claims_source() -> str:
    nb = json.loads((ROOT / "lessons" / "00_welcome.ipynb").read_text())
    cells = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    (claims,) = [s for s in cells if "welcome_claims(" in s]
    return claims


def _confusions(sinks=(4, 8, 8), even=False):
    """Three 10×10 matrices with 54 examples per class: recall uneven (0.1 … 0.8) and the
    errors piled into each seed's sink, unless ``even``: every class equally recalled and
    every error spread evenly over the nine other classes."""
    cms = []
    for sink in sinks:
        cm = np.zeros((10, 10), int)
        for i in range(10):
            right = 27 if even else int(54 * (0.1 + 0.7 * i / 9))
            cm[i, i] = right
            wrong = 54 - right
            if even:
                cm[i, [j for j in range(10) if j != i]] = 3
            else:
                target = sink if sink != i else (i + 1) % 10
                cm[i, target] = wrong
        cms.append(cm)
    return cms


def _run_claims(**overrides):
    ns = {
        "TARGET": "uci",
        "np": np,
        "l00": l00,
        "synth_accs": [0.995, 0.997, 0.993],
        "target_accs": [0.44, 0.47, 0.34],
        "cms": _confusions(),
    }
    ns.update(overrides)
    exec(_claims_source(), ns)


def test_claims_hold_on_true_numbers(capsys):
    _run_claims()


@pytest.mark.parametrize(
    ("falsified", "message"),
    [
        ({"synth_accs": [0.93, 0.94, 0.95]}, "masters its own domain"),
        ({"target_accs": [0.44, 0.75, 0.34]}, "at least 30 points worse, on every seed"),
        ({"target_accs": [0.12, 0.10, 0.11]}, "better than chance"),
        ({"cms": _confusions(even=True)}, "recall is uneven"),
    ],
)
def test_each_claim_fails_when_its_sentence_is_false(capsys, falsified, message):
    with pytest.raises(AssertionError, match=message):
        _run_claims(**falsified)


def test_the_same_sink_on_every_seed_is_not_a_failure(capsys):
    """A fresh machine's three source models all sank into 8: which class is the sink is a
    draw, and the lesson no longer asserts that it differs between seeds."""
    _run_claims(cms=_confusions(sinks=(8, 8, 8)))


def test_on_other_data_the_cell_reports_instead_of_raising(capsys):
    _run_claims(TARGET="usps", target_accs=[0.12, 0.10, 0.11])
    assert "reported, not asserted" in capsys.readouterr().out


def test_the_sink_claim_fails_when_errors_are_spread_evenly(capsys):
    # uneven recall, but every error spread over the nine other classes: no sink
    cms = []
    for _ in range(3):
        cm = np.zeros((10, 10), int)
        for i in range(10):
            cm[i, i] = 9 * (1 + 5 * i)
            cm[i, [j for j in range(10) if j != i]] = 50 - 5 * i
        cms.append(cm)
    with pytest.raises(AssertionError, match="absorbs the errors"):
        _run_claims(cms=cms)
