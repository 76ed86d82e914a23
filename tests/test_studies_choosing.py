"""Lesson 06's study: rank correlation against scipy, the claims on falsified results, the
candidates' shapes, the chart, the cache key."""

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from tlearn.studies import choosing


def test_rank_correlation_matches_scipy_with_and_without_ties():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for a, b in [
        (rng.normal(size=7), rng.normal(size=7)),
        ([1, 2, 2, 3, 5, 5, 5], [3, 1, 2, 2, 9, 4, 4]),
        ([0.1, 0.4, 0.3], [1, 3, 2]),
    ]:
        r = choosing.rank_correlation(a, b)
        assert r["spearman"] == pytest.approx(stats.spearmanr(a, b).statistic)
        assert r["kendall"] == pytest.approx(stats.kendalltau(a, b).statistic)


def test_rank_correlation_extremes_and_bad_input():
    assert choosing.rank_correlation([1, 2, 3], [5, 6, 9]) == {"spearman": 1.0, "kendall": 1.0}
    assert choosing.rank_correlation([1, 2, 3], [9, 6, 5]) == {"spearman": -1.0, "kendall": -1.0}
    assert choosing.ranks([3, 1, 3]).tolist() == [2.5, 1.0, 2.5]
    with pytest.raises(ValueError, match="equal length"):
        choosing.rank_correlation([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="NaN"):
        choosing.rank_correlation([1, np.nan], [1, 2])


def _summary(**table):
    """``name=(accuracy per seed, logme, leep)`` → summarise()'s output."""
    rows = [{"candidate": c, "seed": s, "leep": leep, "logme": logme, "accuracy": a}
            for c, (accs, logme, leep) in table.items() for s, a in enumerate(accs)]  # fmt: skip
    return choosing.summarise(rows)


TRUE = {  # the shape of lesson 06's result
    "random DigitNet": ([0.94, 0.93, 0.93], 0.09, -2.30),
    "random-label DigitNet": ([0.93, 0.92, 0.91], 0.04, -2.07),
    "synth DigitNet": ([0.96, 0.94, 0.94], 0.15, -1.56),
    "Lite0 all": ([0.66, 0.67, 0.71], -0.01, -2.27),
    "Lite0 block 3": ([0.90, 0.90, 0.90], -0.03, float("nan")),
}


def _with(**changes):
    return _summary(**{**TRUE, **changes})


def test_claims_hold_on_the_lessons_shape_of_result():
    assert all(choosing.claims(_summary(**TRUE)).values())


def test_each_claim_fails_when_its_sentence_is_false():
    # the mismatched source clearly better than scratch: it gave an advantage after all
    c = choosing.claims(_with(**{"random-label DigitNet": ([0.97, 0.96, 0.95], 0.04, -2.07)}))
    assert not c["mismatched_no_better"]
    # LogME ordering the candidates backwards
    backwards = {k: (v[0], -v[1], v[2]) for k, v in TRUE.items()}
    c = choosing.claims(_summary(**backwards))
    assert not c["logme_ranks_well"] and not c["logme_picks_the_best"]
    # LogME preferring Lite0 all blocks to synth: its top pick is not the best
    assert not choosing.claims(_with(**{"Lite0 all": ([0.66, 0.67, 0.71], 0.20, -2.27)}))[
        "logme_picks_the_best"
    ]
    # LogME ordering every pair right: it does not mislead
    right = _with(**{"Lite0 all": ([0.66, 0.67, 0.71], -0.05, -2.27)})
    assert not choosing.claims(right)["logme_misleads"]
    # LEEP scoring the mismatched source below the random net
    c = choosing.claims(_with(**{"random-label DigitNet": ([0.93, 0.92, 0.91], 0.04, -2.4)}))
    assert not c["leep_prefers_mismatched"]


def test_lite0_cut_has_the_block_width_and_a_ten_way_head():
    x = torch.rand(2, 1, 32, 32)
    for name, width in [("Lite0 ImageNet, block 3", 40), ("Lite0 ImageNet, block 5", 112)]:
        net = choosing.candidate(name, image_size=32)
        assert net.features(x).shape == (2, width) and net(x).shape == (2, 10)
    assert choosing.source_probabilities("Lite0 ImageNet, block 3", x, 32) is None
    p = choosing.source_probabilities("Lite0 ImageNet, all blocks", x, 32)
    assert p.shape == (2, 1000) and np.allclose(p.sum(1), 1)
    with pytest.raises(ValueError, match="unknown candidate"):
        choosing.candidate("resnet")


def test_config_key_follows_every_field():
    a = choosing.ChoosingConfig("synth DigitNet")
    assert a.key() == choosing.ChoosingConfig("synth DigitNet").key()
    assert a.key() != choosing.ChoosingConfig("synth DigitNet", seed=1).key()
    assert a.key() != choosing.ChoosingConfig("synth DigitNet", recipe=(("epochs", 2),)).key()


def test_decision_guide_is_a_figure_citing_the_numbers():
    fig = choosing.decision_guide({"negative": (80.0, 94.0, "06")})
    assert isinstance(fig, Figure)
    text = " ".join(t.get_text() for t in fig.axes[0].texts)
    mmd = choosing.COURSE_NUMBERS["mmd"][0]
    assert f"{mmd:.1f}% (L04)" in text and "80.0% < scratch 94.0% (L06)" in text


def test_course_numbers_are_the_readmes():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for value, lesson in choosing.COURSE_NUMBERS.values():
        assert f"{value:.1f}" in readme, (value, lesson)
