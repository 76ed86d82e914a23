"""tlearn.studies.finetune (lesson 01's experiment), its explorer widget and check_freeze."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tlearn import exercises, models, train
from tlearn.data import DigitDataset
from tlearn.freeze import FrozenBatchNorm, freeze
from tlearn.studies import finetune

torch.set_num_threads(1)


def _data(n_per_class: int, seed: int) -> DigitDataset:
    """Random but learnable digits: class c has a bright square at a class-specific place."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(10).repeat(n_per_class)
    x = torch.rand(len(labels), 1, 32, 32, generator=g) * 0.3
    for i, c in enumerate(labels.tolist()):
        r, col = divmod(c, 4)
        x[i, 0, 2 + 8 * r : 8 + 8 * r, 2 + 8 * col : 8 + 8 * col] += 0.7
    return DigitDataset(x, labels, name=f"toy{seed}")


@pytest.fixture(scope="module")
def source() -> models.DigitNet:
    torch.manual_seed(0)
    net = models.DigitNet()
    train.fit(net, _data(8, seed=1), epochs=2, batch_size=32, progress=False, device="cpu")
    return net.eval()


SMALL = finetune.Recipe(epochs=2, steps_per_epoch=3, batch_size=8)


def test_recipe_validates():
    for bad in ({"epochs": 0}, {"lr": 0.0}, {"bn": "live"}, {"batch_size": 1.5}):
        with pytest.raises(ValueError):
            finetune.Recipe(**bad)
    assert finetune.Recipe().steps == 30 and finetune.Recipe().bn == "batch"


def test_few_shot_loader_draws_every_image_once_per_pass():
    ds = _data(1, seed=0)  # 10 images
    loader = finetune.few_shot_loader(ds, batch_size=32, steps=3, seed=0)
    batches = [y for _, y in loader]
    assert len(batches) == 3 and all(len(b) == 10 for b in batches)  # batch = whole set
    assert all(sorted(b.tolist()) == list(range(10)) for b in batches)
    again = [y for _, y in finetune.few_shot_loader(ds, batch_size=32, steps=3, seed=0)]
    assert all(torch.equal(a, b) for a, b in zip(batches, again, strict=True))
    loader = finetune.few_shot_loader(ds, batch_size=4, steps=5, seed=1)
    epochs = [torch.cat([y for _, y in loader]) for _ in range(2)]
    assert all(len(e) == 20 for e in epochs) and not torch.equal(*epochs)  # a new epoch reshuffles
    assert sorted(epochs[0][:10].tolist()) == list(range(10))  # a pass: every image once
    with pytest.raises(ValueError, match="empty"):
        finetune.few_shot_loader(ds.subset([]), batch_size=4, steps=1)


def test_prepare_sets_up_each_method_and_leaves_source_alone(source):
    before = {k: v.clone() for k, v in source.state_dict().items()}
    expected_trainable = {
        "scratch": 164_474,
        "full": 164_474,
        "head": 1_290,
        "gradual": 1_290,
    }
    for method, n in expected_trainable.items():
        net, callbacks = finetune.prepare(method, source, seed=0)
        assert sum(p.numel() for p in net.parameters() if p.requires_grad) == n
        assert (len(callbacks) == 1) == (method == "gradual")
        assert not torch.equal(net.head.weight, source.head.weight)  # a new head
        same_body = torch.equal(net.features.conv1[0].weight, source.features.conv1[0].weight)
        assert same_body == (method != "scratch")
    for k, v in source.state_dict().items():
        assert torch.equal(v, before[k])
    with pytest.raises(ValueError, match="method"):
        finetune.prepare("linear", source)


def test_bn_options_freeze_batchnorm(source):
    few = _data(2, seed=2)
    net, _ = finetune.fine_tune(
        "full", few, source=source, recipe=finetune.Recipe(epochs=1, steps_per_epoch=2, bn="frozen")
    )
    bns = [
        m for m in net.modules() if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d, FrozenBatchNorm))
    ]
    assert bns and all(isinstance(m, FrozenBatchNorm) for m in bns)
    torch.testing.assert_close(
        net.features.conv1[1].running_mean, source.features.conv1[1].running_mean
    )
    net, _ = finetune.fine_tune(
        "full", few, source=source, recipe=finetune.Recipe(epochs=1, steps_per_epoch=2, bn="target")
    )
    assert not torch.allclose(
        net.features.conv1[1].running_mean, source.features.conv1[1].running_mean
    )
    with pytest.raises(ValueError, match="gradual"):
        finetune.prepare("gradual", source, recipe=finetune.Recipe(bn="frozen"))


def test_head_only_on_features_equals_fine_tune_head(source):
    """Cached features + a new head = fine_tune("head"), step for step."""
    tr, te = _data(4, seed=3), _data(3, seed=4)
    cached = finetune.head_only_on_features(
        source, target_train=tr, target_test=te, per_class=2, seeds=(0, 1), recipe=SMALL
    )
    from tlearn import data

    direct = []
    for seed in (0, 1):
        few = data.few_shot(tr, 2, seed=seed)
        net, _ = finetune.fine_tune("head", few, source=source, recipe=SMALL, seed=seed)
        direct.append(train.evaluate(net, te, device="cpu")["accuracy"])
    np.testing.assert_allclose(cached, direct, atol=1e-6)


def test_few_shot_curve_and_results_views(source):
    tr, te = _data(3, seed=5), _data(2, seed=6)
    res = finetune.few_shot_curve(
        source=source,
        target_train=tr,
        target_test=te,
        methods=("scratch", "head"),
        per_class=(1, 2),
        seeds=(0, 1),
        recipe=SMALL,
        progress=False,
    )
    assert len(res.rows) == 2 * 2 * 2 and res.methods == ["scratch", "head"]
    assert res.per_class == [1, 2] and res.seeds == [0, 1]
    for m in res.methods:
        for k in res.per_class:
            a = np.array(res.accuracies(m, k))
            mean, std, n = res.summary()[m, k]
            assert (
                n == 2 and mean == pytest.approx(a.mean()) and std == pytest.approx(a.std(ddof=1))
            )
    curves = res.curves()
    assert set(curves) == {"from scratch", "head only"} and curves["head only"].shape == (2, 2)
    assert "1/class" in str(res) and "<table>" in res._repr_html_()
    fig = res.plot()
    assert fig.axes
    import matplotlib.pyplot as plt

    plt.close(fig)
    assert res.to_dict()["recipe"]["epochs"] == 2


def test_train_eval_agreement_and_feature_drift(source):
    ds = _data(2, seed=7)
    frozen = freeze(models.replace_head(_copy(source), 10))
    assert finetune.train_eval_agreement(frozen, ds, batch_size=2) == 1.0  # frozen BN: identical
    live = _copy(source)
    assert finetune.train_eval_agreement(live, ds, batch_size=2) < 1.0
    before = {k: v.clone() for k, v in live.state_dict().items()}
    finetune.train_eval_agreement(live, ds, batch_size=2)
    assert all(torch.equal(v, live.state_dict()[k]) for k, v in before.items())  # untouched
    assert finetune.feature_drift(source, _copy(source), ds.images) == 0.0
    moved = _copy(source)
    with torch.no_grad():
        moved.features.conv1[1].running_mean += 1.0
    assert finetune.feature_drift(source, moved, ds.images) > 0.0


def _copy(net):
    import copy

    return copy.deepcopy(net)


def test_few_shot_explorer_builds_from_results():
    from tlearn import widgets

    rows = [
        {"method": m, "per_class": k, "seed": s, "accuracy": 0.5 + 0.1 * i + 0.01 * s}
        for i, m in enumerate(finetune.METHODS)
        for k in (1, 5)
        for s in range(3)
    ]
    box = widgets.few_shot_explorer(finetune.FewShotResults(rows=rows))
    slider, image, table = box.children
    assert image.value[:4] == b"\x89PNG" and "+10.0 points" in table.value
    first = image.value
    slider.value = 5
    assert image.value != first or table.value
    with pytest.raises(ValueError):
        widgets.few_shot_explorer({"not": "results"})


def test_check_freeze_grades(capsys):
    def naive(model, name):
        for n, p in model.named_parameters():
            if n.startswith(name):
                p.requires_grad_(False)

    assert exercises.check_freeze(naive) is False
    out = capsys.readouterr().out
    assert "BatchNorm statistics" in out and "conv10" in out and "ValueError" in out
    assert exercises.check_freeze(lambda m, n: freeze(m, n)) is True
    assert exercises.check_freeze(lambda m, n: 1 / 0) is False
