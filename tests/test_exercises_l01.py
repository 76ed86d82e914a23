"""Lesson 01's predict-then-run grader: the solution passes on the lesson's measured table;
typical wrong predictions fail with feedback that says what was wrong."""

import runpy
import time
from pathlib import Path

import pytest

from tlearn.exercises import l01
from tlearn.studies.finetune import FewShotResults

SOLUTION = Path(__file__).resolve().parents[1] / "lessons" / "solutions" / "01_predict_then_run.py"


def _results(table: dict[str, dict[int, list[float]]], started: float | None = None):
    rows = [
        {"method": m, "per_class": k, "seed": s, "accuracy": a}
        for m, by_k in table.items()
        for k, accs in by_k.items()
        for s, a in enumerate(accs)
    ]
    return FewShotResults(rows=rows, started=started)


# A table shaped like lesson 01's run: fine-tuning wins at 1 label/class (gradual unfreezing and
# discriminative LRs within seed noise of it), full fine-tuning leads at 30, head only is capped.
TABLE = {
    "scratch": {1: [0.61, 0.69, 0.65], 30: [0.955, 0.962, 0.963]},
    "head": {1: [0.648, 0.653, 0.646], 30: [0.86, 0.88, 0.885]},
    "full": {1: [0.72, 0.74, 0.66], 30: [0.970, 0.982, 0.973]},
    "gradual": {1: [0.71, 0.71, 0.66], 30: [0.955, 0.962, 0.960]},
    "discriminative": {1: [0.70, 0.74, 0.657], 30: [0.964, 0.966, 0.965]},
}


def test_solution_passes_on_a_table_like_the_lessons(capsys):
    prediction = runpy.run_path(str(SOLUTION))["prediction"]
    assert l01.check_prediction(prediction, _results(TABLE, started=time.time() + 1))
    assert "✅" in capsys.readouterr().out


def test_winners_counts_ties_within_seed_noise():
    best, tied = l01.winners(_results(TABLE), 30)
    assert best == "full" and tied == ["full"]
    best, tied = l01.winners(_results(TABLE), 1)
    assert best == "full" and sorted(tied) == ["discriminative", "full", "gradual"]


def test_wrong_prediction_says_by_how_much_and_why(capsys):
    p = l01.record_prediction(at_1="head", at_30="full fine-tune")  # the label works too
    assert not l01.check_prediction(p, _results(TABLE, started=time.time() + 1))
    out = capsys.readouterr().out
    assert "at 1 label/class you predicted head only (64.9%)" in out
    assert "5.8 points behind the best measured: full fine-tune 70.7%" in out
    assert "(gradual unfreezing, discriminative LRs within seed noise)" in out
    assert "printed-font features fixed" in out  # the hint explains why head only loses
    assert "✓ 30 labels/class" in out  # full is the best at 30


def test_scratch_at_one_label_gets_the_transfer_hint(capsys):
    p = l01.record_prediction(at_1="scratch", at_30="full")
    assert not l01.check_prediction(p, _results(TABLE))
    assert "source body already computes strokes" in capsys.readouterr().out


def test_falsified_table_flips_the_verdict(capsys):
    # if scratch really won at 1 label/class, predicting it would pass and "full" would not
    table = {m: dict(v) for m, v in TABLE.items()}
    table["scratch"] = {1: [0.80, 0.81, 0.82], 30: TABLE["scratch"][30]}
    assert l01.check_prediction(
        l01.record_prediction(at_1="scratch", at_30="full"), _results(table)
    )
    assert not l01.check_prediction(
        l01.record_prediction(at_1="full", at_30="full"), _results(table)
    )
    capsys.readouterr()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"at_1": "...", "at_30": "full"}, "'...' is not a strategy"),
        ({"at_1": "ful", "at_30": "full"}, 'choose one of "scratch"'),
    ],
)
def test_names_that_are_no_strategy_are_reported(capsys, kwargs, message):
    assert not l01.check_prediction(l01.record_prediction(**kwargs), _results(TABLE))
    assert message in capsys.readouterr().out


def test_prediction_after_the_run_is_flagged(capsys):
    results = _results(TABLE, started=time.time())
    time.sleep(0.01)
    late = l01.record_prediction(at_1="full", at_30="full")
    assert not l01.check_prediction(late, results)
    assert "recorded after the run started" in capsys.readouterr().out


def test_bad_arguments_are_reported(capsys):
    assert not l01.check_prediction({1: "full"}, _results(TABLE))
    assert "record_prediction" in capsys.readouterr().out
    missing = _results({m: {1: v[1]} for m, v in TABLE.items()})
    assert not l01.check_prediction(l01.record_prediction(at_1="full", at_30="full"), missing)
    assert "no 30 labels/class" in capsys.readouterr().out
