"""Lesson 08's study: its diagnostics on hand-made numbers, and each claim failing when false."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tlearn.studies import self_training as st

N = 40  # images per fake target
LABELS = np.arange(N) % 4  # true classes 0..3


def _round(pred, kept):
    return {"round": 0, "pseudo_labels": list(map(int, pred)), "kept": list(map(bool, kept)),
            "target_accuracy": 0.5}  # fmt: skip


def _self_training(*, confident_right=True, keeps_errors=True, drifts_down=True):
    """Round 0: the first 20 images kept (18 right, 2 wrong when ``confident_right``), the
    other 20 unkept and mostly wrong; last round: every image kept, 10 of the others wrong,
    and the two wrong ones kept wrong (``keeps_errors``) or corrected."""
    y = LABELS
    pred0 = y.copy()
    pred0[20:35] = (y[20:35] + 1) % 4  # unkept and wrong
    kept0 = np.arange(N) < 20
    if confident_right:
        pred0[[0, 1]] = (y[[0, 1]] + 1) % 4  # 2 of 20 kept are wrong
    else:
        pred0[:15] = (y[:15] + 1) % 4  # 15 of 20 kept are wrong; the unkept ones right
        pred0[20:] = y[20:]
    last = y.copy()
    if drifts_down:
        last[20:36] = (y[20:36] + 2) % 4  # 16 more wrong: accuracy of the kept falls
    wrong0 = np.flatnonzero(kept0 & (pred0 != y))
    last[wrong0] = pred0[wrong0] if keeps_errors else y[wrong0]
    rounds = [_round(pred0, kept0), {**_round(last, np.ones(N, bool)), "round": 3}]
    return {"config": {"threshold": 0.9}, "rounds": rounds, "target_accuracy": 0.5}


def _table(gains=None, **kw):
    """3 seeds; ``gains`` overrides a row's per-seed accuracy (source only: 0.40, 0.45, 0.50)."""
    base = np.array([0.40, 0.45, 0.50])
    acc = {"source only": base, "AdaBN": base + [0.01, -0.02, 0.0],
           "TENT": base + [0.03, 0.04, 0.02], "Deep CORAL": base + 0.25, "MMD (DAN)": base + 0.3,
           "self-training (naive)": base + [0.05, 0.06, 0.04],
           "SHOT, IM only (β = 0)": base + [0.15, 0.17, 0.16],
           "SHOT": base + [0.25, 0.26, 0.27]}  # fmt: skip
    acc.update(gains or {})
    table = {k: [{"target_accuracy": float(a)} for a in v] for k, v in acc.items()}
    table["self-training (naive)"] = [
        {**_self_training(**kw), "target_accuracy": float(a)} for a in acc["self-training (naive)"]
    ]
    return table


def _verdicts(table):
    return {k.split(":")[0][:40]: v[0] for k, v in st.self_training_claims(table, LABELS).items()}


def test_every_claim_holds_on_numbers_that_make_it_true():
    claims = st.self_training_claims(_table(), LABELS)
    assert len(claims) == 5
    assert all(holds for holds, _ in claims.values()), claims


def _fails(table, words):
    claims = st.self_training_claims(table, LABELS)
    failed = [s for s, (holds, _) in claims.items() if not holds]
    assert failed and all(words in s for s in failed), failed


def test_confident_pseudo_labels_no_more_accurate_fails():
    _fails(_table(confident_right=False), "confidence")


def test_errors_corrected_fails():
    _fails(_table(keeps_errors=False), "keeps its own mistakes")


@pytest.mark.parametrize(
    "rival, words",
    [("source only", "SHOT beats source only"), ("self-training (naive)", "naive self-training"),
     ("TENT", "SHOT beats TENT")],
)  # fmt: skip
def test_shot_not_separated_from_a_rival_fails(rival, words):
    base = np.array([0.40, 0.45, 0.50])
    # SHOT ahead on average but not on every seed: the 95 % interval contains 0
    table = _table({"SHOT": base + [0.10, -0.08, 0.09], rival: base + [0.0, 0.0, 0.0],
                    "source only": base} if rival != "source only" else {
                        "SHOT": base + [0.10, -0.08, 0.09]})  # fmt: skip
    claims = st.self_training_claims(table, LABELS)
    failed = [s for s, (holds, _) in claims.items() if not holds]
    assert any(words in s for s in failed), failed


def test_shot_ahead_on_every_seed_by_less_than_10_points_on_average_fails():
    base = np.array([0.40, 0.45, 0.50])
    table = _table({"SHOT": base + [0.06, 0.08, 0.10]})  # every seed ahead, mean +8 points
    claims = st.self_training_claims(table, LABELS)
    failed = [s for s, (holds, _) in claims.items() if not holds]
    assert failed == ["SHOT beats source only on every seed, by 10+ points on average"], failed
    evidence = claims[failed[0]][1]
    assert "per seed +6.0, +8.0, +10.0" in evidence and "+8.0 points" in evidence


def test_threshold_sweep_counts_coverage_and_accuracy():
    import torch

    probs = torch.tensor([[0.95, 0.05], [0.6, 0.4], [0.2, 0.8], [0.99, 0.01]])
    rows = st.threshold_sweep(probs, [0, 1, 1, 1], (0.0, 0.7, 0.9, 1.0))
    assert [r["kept"] for r in rows] == [4, 3, 2, 0]
    assert rows[0]["accuracy"] == pytest.approx(0.5) and rows[1]["accuracy"] == pytest.approx(2 / 3)
    assert rows[2]["accuracy"] == pytest.approx(0.5) and math.isnan(rows[3]["accuracy"])
    assert rows[1]["coverage"] == pytest.approx(0.75)


def test_round_diagnostics_and_kept_errors_on_a_hand_made_run():
    res = _self_training()
    first, last = st.round_diagnostics(res, LABELS, num_classes=4)
    assert first["coverage"] == 0.5 and first["accuracy"] == pytest.approx(18 / 20)
    # images 0 (class 0) and 1 (class 1) pseudo-labelled 1 and 2: one wrong in each of those
    assert first["per_class"] == [4, 5, 6, 5]
    assert first["wrong_share"][1] == pytest.approx(1 / 5) and first["wrong_share"][0] == 0
    assert last["coverage"] == 1.0
    k = st.kept_errors(res, LABELS)
    assert k == {"wrong_first": 2, "same_wrong": 1.0, "corrected": 0.0}
    assert st.kept_errors(_self_training(keeps_errors=False), LABELS)["corrected"] == 1.0


def test_config_fills_the_fixed_settings_and_keys_differ():
    shot = st.config("shot", seed=1)
    assert (shot.beta, shot.epochs, shot.lr) == (0.3, 5, 1e-3)
    selftrain = st.config("self_training")
    assert (selftrain.threshold, selftrain.rounds) == (0.9, 3)
    assert st.config("shot", beta=0.0).key() != shot.key() != st.config("shot", seed=2).key()
    with pytest.raises(ValueError, match="unknown method"):
        st.config("dann")
    with pytest.raises(TypeError):
        st.run("shot")


def test_claims_report_instead_of_raising_on_other_data(capsys):
    from tlearn.studies.claims import check

    verdicts = check(st.self_training_claims(_table(keeps_errors=False), LABELS),
                     default_data=False)  # fmt: skip
    assert not all(verdicts.values())
    assert "✗" in capsys.readouterr().out
