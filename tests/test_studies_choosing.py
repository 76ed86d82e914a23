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


def _summary(**acc_logme):
    rows = [{"candidate": c, "seed": s, "leep": -1.0, "logme": lm, "accuracy": a}
            for c, (a, lm) in acc_logme.items() for s in (0, 1)]  # fmt: skip
    return choosing.summarise(rows)


def test_claims_hold_on_a_true_summary_and_fail_on_falsified_ones():
    true = _summary(**{"random DigitNet": (0.94, 0.08), "random-label DigitNet": (0.80, 0.05),
                       "synth DigitNet": (0.96, 0.10), "Lite0": (0.90, 0.20)})  # fmt: skip
    assert choosing.claims(true) == {
        "negative_transfer": True, "logme_ranks_positively": True, "logme_misleads": True,
    }  # fmt: skip
    # the mismatched source no worse than scratch: no negative transfer
    no_neg = _summary(**{"random DigitNet": (0.94, 0.08), "random-label DigitNet": (0.94, 0.05),
                         "synth DigitNet": (0.96, 0.10), "Lite0": (0.90, 0.20)})  # fmt: skip
    assert not choosing.claims(no_neg)["negative_transfer"]
    # LogME ordering the candidates backwards, and picking the true winner
    backwards = _summary(**{"random DigitNet": (0.94, 0.08), "random-label DigitNet": (0.80, 0.30),
                            "synth DigitNet": (0.96, 0.01), "Lite0": (0.90, 0.20)})  # fmt: skip
    assert not choosing.claims(backwards)["logme_ranks_positively"]
    right = _summary(**{"random DigitNet": (0.94, 0.08), "random-label DigitNet": (0.80, 0.05),
                        "synth DigitNet": (0.96, 0.30), "Lite0": (0.90, 0.20)})  # fmt: skip
    assert not choosing.claims(right)["logme_misleads"]


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
    assert "77.1% (L04)" in text and "80.0% < scratch 94.0% (L06)" in text


def test_course_numbers_are_the_readmes():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for value, lesson in choosing.COURSE_NUMBERS.values():
        assert f"{value:.1f}" in readme, (value, lesson)
