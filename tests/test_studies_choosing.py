"""Lesson 06's study: rank correlation against scipy, the claims on falsified results, the
candidates' shapes, the chart, the cache key."""

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from tlearn.studies import choosing, course


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
    "Lite0 ImageNet, block 5": ([0.88, 0.90, 0.90], 0.12, float("nan")),
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
    # LogME scoring Lite0's block 5 below the random DigitNet, or block 5 fine-tuning better:
    # either way LogME does not mislead on that pair
    below = _with(**{"Lite0 ImageNet, block 5": ([0.88, 0.90, 0.90], 0.05, float("nan"))})
    assert not choosing.claims(below)["logme_misleads"]
    better = _with(**{"Lite0 ImageNet, block 5": ([0.95, 0.95, 0.95], 0.12, float("nan"))})
    assert not choosing.claims(better)["logme_misleads"]
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


def _numbers(value: float = 50.0) -> dict:
    return {key: (value + i, lesson) for i, (key, (_, lesson)) in enumerate(course.KEYS.items())}


def test_decision_guide_is_a_figure_citing_the_numbers_it_is_given():
    numbers = _numbers()
    fig = choosing.decision_guide({**numbers, "negative": (80.0, 94.0, "06")})
    assert isinstance(fig, Figure)
    text = " ".join(t.get_text() for t in fig.axes[0].texts)
    for key in ("mmd", "deep_coral", "source_only", "adabn", "finetune_1", "probe_source_1"):
        value, lesson = numbers[key]
        assert f"{value:.1f}% (L{lesson})" in text, key
    assert "80.0% < scratch 94.0% (L06)" in text


def test_decision_guide_without_the_course_numbers_says_what_to_pass():
    numbers = _numbers()
    del numbers["mmd"]
    with pytest.raises(KeyError, match="course_numbers"):
        choosing.decision_guide(numbers)


def test_course_numbers_are_what_each_lessons_call_printed(monkeypatch):
    """Each key comes from its lesson's call, rounded as the lessons print (one decimal)."""
    seen = {}

    def lesson01(source, train, test, seeds):
        seen["01"] = list(seeds)
        return {f"{m}_{k}": 60.0 + k for m in ("scratch", "finetune") for k in (1, 5, 10)}

    monkeypatch.setattr(course, "source_model", lambda **kw: None)
    monkeypatch.setattr(course, "_lesson01", lesson01)
    monkeypatch.setattr(course, "_lesson02", lambda *a: {"probe_source_1": 64.8,
                                                         "probe_lite0_block_10": 92.3})  # fmt: skip
    monkeypatch.setattr(course, "_lessons04_05", lambda seeds: {
        "source_only": 45.2, "mmd": 71.8, "deep_coral": 69.4, "target_supervised": 99.9,
        "adabn": 44.4})  # fmt: skip
    numbers = course.course_numbers((3, 4))
    assert seen["01"] == [3, 4]
    assert numbers["finetune_5"] == (65.0, "01") and numbers["adabn"] == (44.4, "05")
    assert numbers["mmd"] == (71.8, "04") and numbers["probe_lite0_block_10"] == (92.3, "02")
    assert set(numbers) == set(course.KEYS)
    assert course._percent([0.6543, 0.6557]) == 65.5
    with pytest.raises(ValueError, match="seeds"):
        course.course_numbers(())


def test_the_readme_quotes_lesson_06s_chart_numbers():
    """README's numbers and lesson 06's printed course numbers are the same run's."""
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    nb = json.loads(next((root / "lessons").glob("06_*.ipynb")).read_text())
    printed = "".join(
        "".join(out.get("text", ""))
        for cell in nb["cells"]
        if cell["cell_type"] == "code" and "course_numbers(" in "".join(cell["source"])
        for out in cell.get("outputs", [])
    )
    assert printed, "lesson 06 prints the course's numbers"
    for key in course.KEYS:
        line = next(line for line in printed.splitlines() if line.startswith(key))
        value = line.split()[1]
        assert value in readme, (key, value)
