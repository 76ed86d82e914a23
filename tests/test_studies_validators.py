"""Lesson 09's study: the grading on hand-made numbers, the scores against their definitions,
and each claim failing when its sentence is false."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tlearn import data, models
from tlearn.adapt import selection
from tlearn.studies import validators as va


def _rows(seeds=(0, 1, 2), *, good=("SND", "DEV"), bad=("entropy",), rng_seed=0):
    """Fake candidates: validators in ``good`` track the target accuracy (plus a little noise),
    those in ``bad`` rank it backwards, the rest are noise."""
    rng = np.random.default_rng(rng_seed)
    rows = []
    for s in seeds:
        acc = np.linspace(0.40, 0.80, 8) + rng.normal(0, 0.01, 8)
        for i, a in enumerate(acc):
            row = {"seed": s, "method": "coral", "weight": 3.0, "epoch": i, "name": "Deep CORAL",
                   "target_accuracy": float(a)}  # fmt: skip
            for v in va.VALIDATORS:
                if v in good:
                    row[v] = float(a + rng.normal(0, 0.005))
                elif v in bad:
                    row[v] = float(-a)
                else:
                    row[v] = float(rng.normal())
            rows.append(row)
    return rows


def test_grade_computes_rank_correlation_and_regret_per_seed():
    rows = [
        {"seed": 0, "name": "a", "epoch": 1, "weight": 1.0, "target_accuracy": 0.5, "SND": 1.0},
        {"seed": 0, "name": "b", "epoch": 1, "weight": 1.0, "target_accuracy": 0.7, "SND": 3.0},
        {"seed": 0, "name": "c", "epoch": 1, "weight": 1.0, "target_accuracy": 0.6, "SND": 2.0},
        {"seed": 1, "name": "a", "epoch": 1, "weight": 1.0, "target_accuracy": 0.9, "SND": 1.0},
        {"seed": 1, "name": "b", "epoch": 1, "weight": 1.0, "target_accuracy": 0.3, "SND": 2.0},
        {"seed": 1, "name": "c", "epoch": 0, "weight": 0.0, "target_accuracy": 0.6, "SND": 0.5},
    ]
    g = va.grade(rows, validators=("SND",))
    assert g["SND"]["spearman"] == pytest.approx([1.0, -0.5])
    assert g["SND"]["regret"] == pytest.approx([0.0, 0.6])
    assert g["SND"]["picked"] == ["b w=1 ep 1", "b w=1 ep 1"]
    assert g["random pick"]["regret"] == pytest.approx([0.7 - 0.6, 0.9 - 0.6])
    assert g["SND"]["seeds"] == [0, 1]
    text = va.format_grades(g)
    assert "SND" in text and "random pick" in text and "+0.25" in text  # mean ρ of 1 and −0.5


def test_a_constant_validator_has_no_rank_correlation():
    rows = [{"seed": 0, "name": n, "epoch": 1, "weight": 1.0, "target_accuracy": a, "SND": 1.0}
            for n, a in (("a", 0.2), ("b", 0.4))]  # fmt: skip
    g = va.grade(rows, validators=("SND",))
    assert math.isnan(g["SND"]["spearman"][0]) and g["SND"]["regret"] == pytest.approx([0.2])


def test_score_matches_the_selection_definitions():
    torch.manual_seed(0)
    net = models.DigitNet().eval()
    sv = data.load_domain("synth", "test").subset(range(120))
    tt = data.load_domain("uci", "train").subset(range(80))
    te = data.load_domain("uci", "test").subset(range(50))
    s = va.score(net, net, sv, tt, te, seed=0)
    with torch.no_grad():
        ps, pt = net(sv.images).softmax(1), net(tt.images).softmax(1)
        zs, zt = net.features(sv.images), net.features(tt.images)
        acc_t = float((net(te.images).argmax(1) == te.labels).float().mean())
    e = (ps.argmax(1) != sv.labels).double().numpy()
    w = selection.density_ratios(zs.double().numpy(), zt.double().numpy(), seed=0)
    assert s["source accuracy"] == pytest.approx(1 - e.mean())
    assert s["IWCV"] == pytest.approx(1 - selection.iwcv_risk(e, w), abs=1e-6)
    assert s["DEV"] == pytest.approx(1 - selection.dev_risk(e, w), abs=1e-6)
    assert s["entropy"] == pytest.approx(-selection.prediction_entropy(pt), abs=1e-5)
    assert s["SND"] == pytest.approx(selection.snd(pt), abs=1e-5)
    assert s["target_accuracy"] == pytest.approx(acc_t)
    assert 0 < s["effective_share"] <= 1 and s["ratio_max"] == pytest.approx(w.max(), rel=1e-6)


def test_config_checks_and_keys():
    assert va.config("coral", weight=3, seed=1).weight == 3.0
    assert va.config("coral", weight=3).key() != va.config("coral", weight=30).key()
    assert va.config("mmd", seed=1).key() != va.config("mmd", seed=2).key()
    with pytest.raises(ValueError, match="unknown method"):
        va.config("cdan")
    with pytest.raises(ValueError, match="weight must be 0"):
        va.config("none", weight=1)
    with pytest.raises(TypeError):
        va.run("coral")
    cfgs = va.grid_configs((0, 1))
    assert len(cfgs) == 2 * (1 + sum(len(w) for w in va.GRID.values()))
    assert [c.method for c in cfgs[:2]] == ["none", "coral"]


def test_format_candidates_and_the_figure():
    import matplotlib

    matplotlib.use("Agg")
    rows = _rows(seeds=(0, 1))
    text = va.format_candidates(rows, 0)
    assert text.count("Deep CORAL") == 8 and "uci test %" in text
    fig = va.validators_figure(rows)
    assert len(fig.axes) == len(va.VALIDATORS)


def _claim_rows(*, separable=True, overestimate=0.4, entropy_good=True, entropy_noisy=False):
    """Three seeds of fake candidates for the claims: the source-only row's domain classifier
    (``separable``), IWCV/DEV at target accuracy + ``overestimate``, entropy tracking the target
    accuracy (``entropy_good``) or ranking it backwards."""
    rows = _rows(good=("SND", "entropy") if entropy_good else ("SND",),
                 bad=() if entropy_good else ("entropy",))  # fmt: skip
    for r in rows:
        r["IWCV"] = r["DEV"] = r["target_accuracy"] + overestimate
        r["source_called_source"], r["effective_share"] = 0.85, 0.4
    for s in (0, 1, 2):
        first = next(r for r in rows if r["seed"] == s)
        first["name"] = "source only"
        if separable:
            first["source_called_source"], first["effective_share"] = 0.999, 0.003
    if entropy_noisy:  # seed 0: entropy still rises with accuracy but picks a poor candidate
        for r in rows:
            if r["seed"] == 0:
                r["entropy"] = r["target_accuracy"]
        seed0 = [r for r in rows if r["seed"] == 0]
        seed0[1]["entropy"] = 10.0
    return rows


def _claims(rows):
    return va.validator_claims(rows, va.grade(rows))


def test_every_claim_holds_on_numbers_that_make_it_true():
    claims = _claims(_claim_rows())
    assert len(claims) == 4
    assert all(holds for holds, _ in claims.values()), claims


@pytest.mark.parametrize(
    "kw, words",
    [({"separable": False}, "domain classifier calls 95 %+"),
     ({"overestimate": 0.05}, "overestimate"),
     ({"entropy_good": False}, "entropy"),
     ({"entropy_noisy": True}, "loses less than a random pick")],
)  # fmt: skip
def test_each_claim_fails_when_its_sentence_is_false(kw, words):
    claims = _claims(_claim_rows(**kw))
    failed = [s for s, (holds, _) in claims.items() if not holds]
    assert failed and all(words in s for s in failed), failed


def test_claims_report_instead_of_raising_on_other_data(capsys):
    from tlearn.studies.claims import check

    verdicts = check(_claims(_claim_rows(separable=False)), default_data=False)
    assert not all(verdicts.values())
    assert "✗" in capsys.readouterr().out
