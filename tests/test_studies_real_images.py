"""studies.real_images: the LR range test, the learning-rate rule, cached runs, the claims."""

import numpy as np
import pytest
import torch
from torch import nn

from tlearn.data import DigitDataset
from tlearn.studies import real_images as ri


def _toy(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 4, 4, generator=g)
    return DigitDataset(x, (x.mean((1, 2, 3)) > 0).long())


def test_lr_range_test_grows_geometrically_and_leaves_the_model_alone():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    before = [p.detach().clone() for p in net.parameters()]
    out = ri.lr_range_test(net, _toy(), start=1e-4, end=1e-1, steps=4, batch_size=16, device="cpu")
    assert np.allclose(out["lr"], [1e-4, 1e-3, 1e-2, 1e-1])
    assert len(out["loss"]) == 4 and all(np.isfinite(out["loss"]))
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))


def test_lr_range_test_stops_when_the_loss_blows_up():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    out = ri.lr_range_test(net, _toy(), start=1e-3, end=1e4, steps=40, batch_size=16, device="cpu")
    assert len(out["lr"]) < 40  # stopped early: loss > 4 × its minimum
    assert out["loss"][-1] > 4 * min(out["loss"]) or not np.isfinite(out["loss"][-1])


def test_lr_range_test_rejects_bad_ranges():
    with pytest.raises(ValueError, match="start < end"):
        ri.lr_range_test(nn.Linear(2, 2), _toy(), start=1.0, end=1e-3)


def test_suggest_lr_is_a_tenth_of_the_lowest_snapped_to_the_grid():
    result = {"lr": [1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0], "loss": [2.3, 2.3, 2.0, 1.0, 1.2, 8.0]}
    assert ri.lowest_loss_lr(result) == pytest.approx(1e-2)
    assert ri.suggest_lr(result) == pytest.approx(1e-3)
    lrs = [1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0]
    shifted = {"lr": lrs, "loss": [2.3, 2.3, 2.2, 1.2, 1.0, 1.3, 9.0]}  # lowest at 1e-1
    assert ri.suggest_lr(shifted) == pytest.approx(1e-2)
    with pytest.raises(ValueError):
        ri.suggest_lr({"lr": [1e-3], "loss": [1.0]})


def test_run_config_validates_and_keys_by_every_field():
    with pytest.raises(ValueError, match="strategy"):
        ri.RunConfig("probe")
    with pytest.raises(ValueError, match="epochs"):
        ri.RunConfig("finetune", epochs=0)
    a = ri.RunConfig("finetune", seed=0)
    assert a.key() == ri.RunConfig("finetune", seed=0).key()
    assert a.key() != ri.RunConfig("finetune", seed=1).key()
    assert a.key() != ri.RunConfig("finetune", augment=False).key()


def test_build_model_pretrained_or_not():
    a, b = ri.build_model("finetune", seed=0), ri.build_model("scratch", seed=0)
    x = torch.rand(2, 3, 32, 32)
    assert a.eval()(x).shape == (2, 10)
    first = "net.features.0.0.weight"
    assert not torch.equal(a.state_dict()[first], b.state_dict()[first])
    assert torch.equal(
        a.state_dict()[first], ri.build_model("finetune", seed=1).state_dict()[first]
    )


def test_run_is_cached_and_keeps_the_fine_tuned_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TLEARN_CACHE", str(tmp_path))
    train_set, test_set = ri.load_data("fashion", image_size=32)
    small_test = test_set.subset(range(0, 1000, 50))
    monkeypatch.setattr(ri, "load_data", lambda *a, **k: (train_set, small_test))
    cfg = ri.RunConfig("finetune", per_class=1, epochs=1, batch_size=10)
    first = ri.run(cfg)
    assert 0 <= first["accuracy"] <= 1 and first["test_losses"].shape == (20,)
    assert len(first["history"]) == 1
    again = ri.run(cfg)  # from the cache: the same numbers, no training
    assert again["accuracy"] == first["accuracy"] and again["seconds"] == first["seconds"]
    net = ri.trained_model(cfg)
    from tlearn import train

    assert torch.equal(train.predict(net, small_test), torch.as_tensor(first["test_predictions"]))


TRUE = {  # this lesson's numbers (per seed)
    "finetune": [0.557, 0.552, 0.588],
    "finetune_no_aug": [0.615, 0.645, 0.602],
    "scratch": [0.328, 0.368, 0.292],
    "probe": [0.541, 0.570, 0.590],
}
LR_TEST = {"lr": [1e-5, 1e-4, 1e-3, 1e-2, 1e-1], "loss": [2.4, 2.3, 2.0, 1.5, 7.0]}
PAIRS = [("Shirt", "T-shirt/top"), ("Sandal", "Sneaker"), ("Bag", "Trouser")]


def _falsify(**changes):
    acc = {k: list(v) for k, v in TRUE.items()}
    acc.update(changes)
    return acc


def test_claims_hold_on_the_lessons_numbers():
    assert all(ok for ok, _ in ri.claims(TRUE, LR_TEST, PAIRS).values())


@pytest.mark.parametrize(
    "acc, lr_test, pairs, broken",
    [
        (_falsify(scratch=[0.50, 0.50, 0.50]), LR_TEST, PAIRS, "from scratch"),
        (_falsify(scratch=[0.30, 0.30, 0.60]), LR_TEST, PAIRS, "from scratch"),  # one seed
        (_falsify(finetune_no_aug=[0.55, 0.54, 0.58]), LR_TEST, PAIRS, "augmentation lowered"),
        (TRUE, {"lr": LR_TEST["lr"], "loss": [2.4, 2.3, 2.2, 2.2, 7.0]}, PAIRS, "first fell"),
        (TRUE, {"lr": LR_TEST["lr"], "loss": [2.4, 2.0, 1.5, 1.4, 1.6]}, PAIRS, "blew up"),
        (
            TRUE,
            LR_TEST,
            [("Bag", "Trouser"), ("Shirt", "Sandal"), ("Sneaker", "Coat")],
            "look-alike",
        ),
    ],
)
def test_each_claim_fails_when_its_sentence_is_false(acc, lr_test, pairs, broken):
    checks = ri.claims(acc, lr_test, pairs)
    failed = [s for s, (ok, _) in checks.items() if not ok]
    assert any(broken in s for s in failed), failed


def test_look_alike_fraction():
    assert ri.look_alike_fraction(PAIRS) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        ri.look_alike_fraction([])


# --------------------------------------------------------------------------- regularised fine-tuning
def test_weight_drift_is_the_relative_distance_over_the_start_only():
    net = nn.Linear(3, 2)
    start = {"weight": net.weight.detach().clone()}  # the bias plays the head: not counted
    assert ri.weight_drift(net, start) == 0.0
    with torch.no_grad():
        net.weight.mul_(1.5)
        net.bias.add_(100.0)
    assert ri.weight_drift(net, start) == pytest.approx(0.5)


def test_linear_cka_and_feature_drift_against_their_definitions():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 5, generator=g)
    rotation, _ = torch.linalg.qr(torch.randn(5, 5, generator=g))
    assert ri.linear_cka(x, 2 * x @ rotation) == pytest.approx(1.0)  # rotation and scale
    y = torch.randn(40, 5, generator=g)
    xc, yc = x - x.mean(0), y - y.mean(0)
    hsic = lambda a, b: ((a @ a.T) * (b @ b.T)).sum()  # noqa: E731 — tr(K L), linear kernels
    expected = hsic(xc, yc) / (hsic(xc, xc) * hsic(yc, yc)).sqrt()
    assert ri.linear_cka(x, y) == pytest.approx(float(expected), rel=1e-6)
    d = ri.feature_drift(x, -x)
    assert d["cosine"] == pytest.approx(2.0) and d["cka"] == pytest.approx(0.0, abs=1e-9)


def test_reg_config_validates_and_keys_by_every_field():
    with pytest.raises(ValueError, match="method"):
        ri.RegConfig("dropout")
    with pytest.raises(ValueError, match="head_epochs"):
        ri.RegConfig("lp_ft", epochs=2, head_epochs=2)
    with pytest.raises(ValueError, match="alpha"):
        ri.RegConfig("l2_sp", alpha=-1.0)
    a = ri.RegConfig("l2_sp", seed=0)
    assert a.key() == ri.RegConfig("l2_sp", seed=0).key() != ri.RegConfig("l2_sp", alpha=1).key()
    plain = ri.RegConfig("plain", seed=2, lr=3e-4).plain()
    assert plain == ri.RunConfig("finetune", seed=2, lr=3e-4, augment=False)


@pytest.fixture
def small_fashion(tmp_path, monkeypatch):
    """A private cache and 20 test photos: a run takes seconds."""
    monkeypatch.setenv("TLEARN_CACHE", str(tmp_path))
    train_set, test_set = ri.load_data("fashion", image_size=32)
    small_test = test_set.subset(range(0, 1000, 50))
    monkeypatch.setattr(ri, "load_data", lambda *a, **k: (train_set, small_test))
    return small_test


def test_regularisation_comparison_small_config(small_fashion):
    small = dict(per_class=1, epochs=2, head_epochs=1, batch_size=10, drift_images=30)
    out = ri.regularisation_comparison([0, 1], **small)
    assert set(out) == set(ri.REG_METHODS)
    for r in out.values():
        assert r["accuracy"].shape == (2,) and ((0 <= r["accuracy"]) & (r["accuracy"] <= 1)).all()
        assert (r["weight_drift"] > 0).all() and np.isfinite(r["cosine"]).all()
        assert ((0 <= r["cka"]) & (r["cka"] <= 1 + 1e-9)).all()
    plain = ri.run(ri.RegConfig("plain", seed=0, **small).plain())  # read from the cache
    assert out["plain"]["accuracy"][0] == pytest.approx(plain["accuracy"])
    again = ri.regularised_run(ri.RegConfig("lp_ft", seed=1, **small))  # cached: no training
    assert again["accuracy"] == out["lp_ft"]["accuracy"][1]
    assert again["weight_drift"] == out["lp_ft"]["weight_drift"][1]
    assert ri.claims(TRUE, LR_TEST, PAIRS, regularised=out)  # reports, whatever the numbers


def test_l2_sp_pulls_the_body_towards_its_start(small_fashion):
    small = dict(per_class=2, epochs=2, head_epochs=1, batch_size=10, drift_images=10, lr=1e-2)
    free = ri.regularised_run(ri.RegConfig("l2_sp", alpha=0.0, beta=0.0, **small))
    pulled = ri.regularised_run(ri.RegConfig("l2_sp", alpha=1e3, beta=0.0, **small))
    assert pulled["weight_drift"] < 0.7 * free["weight_drift"]


REGULARISED = {  # weight drift per seed (this lesson's numbers); accuracies are not asserted
    "plain": {"weight_drift": [0.029, 0.030, 0.028]},
    "l2_sp": {"weight_drift": [0.020, 0.021, 0.019]},
    "lp_ft": {"weight_drift": [0.026, 0.027, 0.025]},
}


def test_drift_claims_hold_on_the_lessons_numbers():
    checks = ri.claims(TRUE, LR_TEST, PAIRS, regularised=REGULARISED)
    assert len(checks) == 6 and all(ok for ok, _ in checks.values())


@pytest.mark.parametrize(
    "method, drift, broken",
    [
        ("l2_sp", [0.020, 0.026, 0.019], "L2-SP moved"),  # one seed only 13 % less
        ("lp_ft", [0.026, 0.031, 0.025], "LP-FT moved"),  # one seed moved more
    ],
)
def test_each_drift_claim_fails_when_its_sentence_is_false(method, drift, broken):
    regularised = {**REGULARISED, method: {"weight_drift": drift}}
    failed = [s for s, (ok, _) in ri.claims(TRUE, LR_TEST, PAIRS, regularised).items() if not ok]
    assert len(failed) == 1 and broken in failed[0], failed


def test_warm_builds_the_regularised_runs_the_lesson_reads():
    import json
    from pathlib import Path

    from tlearn.studies import warm

    steps = [s.what for s in warm.lesson_steps(["07"]) if s.what.startswith("regularised")]
    assert len(steps) == len(ri.REG_METHODS) * len(warm.REAL["SEEDS"])
    lesson = Path(__file__).resolve().parent.parent / "lessons" / "07_real_images.ipynb"
    code = "".join("".join(c["source"]) for c in json.loads(lesson.read_text())["cells"])
    # the lesson's call: RegConfig's defaults otherwise, as warm's steps use them
    assert "ri.regularisation_comparison(\n    SEEDS, lr=LR, per_class=PER_CLASS, " in code
