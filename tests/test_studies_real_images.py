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
