import os

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import tlearn
from tlearn import checkpoint, data, train
from tlearn.models import DigitNet


@pytest.fixture(scope="module")
def synth():
    return data.load_domain("synth", size=256, seed=0)


class _Arbitrary:
    """Any class: unpickling it would import and run code, so weights_only refuses it."""


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_fit_learns_and_records_history(synth):
    tlearn.seed_everything(0)
    net = DigitNet()
    before = train.evaluate(net, synth)["accuracy"]
    hist = train.fit(net, synth, epochs=6, lr=3e-3, batch_size=32, val=synth, progress=False)
    assert len(hist) == 6 and hist["epoch"] == [1, 2, 3, 4, 5, 6]
    assert hist["train_loss"][-1] < hist["train_loss"][0]
    assert hist.last["val_accuracy"] > max(0.5, before + 0.3)
    assert {"train_accuracy", "val_loss", "seconds"} <= set(hist.keys())
    with pytest.raises(KeyError, match="no 'nope'"):
        hist["nope"]


def test_same_seed_gives_identical_weights(synth):
    runs = []
    for _ in range(2):
        tlearn.seed_everything(7)
        net = DigitNet()
        train.fit(net, synth, epochs=1, batch_size=64, progress=False, seed=7)
        runs.append(_weights(net))
    assert _same(*runs)
    tlearn.seed_everything(8)
    other = DigitNet()
    train.fit(other, synth, epochs=1, batch_size=64, progress=False, seed=8)
    assert not _same(runs[0], _weights(other))


def test_fit_accepts_dataloader_and_sgd(synth):
    tlearn.seed_everything(0)
    net = DigitNet()
    loader = DataLoader(synth, batch_size=64, shuffle=True)
    hist = train.fit(net, loader, epochs=1, optimizer="sgd", lr=0.05, progress=False)
    assert len(hist) == 1


def test_fit_only_updates_trainable_parameters(synth):
    net = DigitNet()
    for p in net.features.parameters():
        p.requires_grad_(False)
    before = _weights(net.features)
    train.fit(net, synth, epochs=1, batch_size=64, weight_decay=0.1, progress=False)
    after = net.features.state_dict()
    params = {n for n, _ in net.features.named_parameters()}
    assert all(torch.equal(before[k], after[k]) for k in params)


def test_fit_rejects_bad_input(synth):
    net = DigitNet(num_classes=10)
    empty = TensorDataset(torch.zeros(0, 1, 32, 32), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="empty"):
        train.fit(net, empty, epochs=1, progress=False)
    bad = TensorDataset(torch.zeros(4, 1, 32, 32), torch.tensor([0, 1, 2, 12]))
    before = _weights(net)
    with pytest.raises(ValueError, match=r"\[0, 12\].*10 outputs.*replace_head"):
        train.fit(net, bad, epochs=1, progress=False)
    assert _same(before, _weights(net))
    with pytest.raises(ValueError, match="epochs"):
        train.fit(net, synth, epochs=0)
    with pytest.raises(ValueError, match="optimizer"):
        train.fit(net, synth, epochs=1, optimizer="lbfgs", progress=False)
    for p in net.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        train.fit(net, synth, epochs=1, progress=False)


def test_callbacks_see_every_epoch_and_can_stop(synth):
    seen = []

    class Spy:
        def on_fit_start(self, state):
            seen.append("start")

        def on_epoch_start(self, state):
            seen.append(("epoch", state.epoch))

        def on_epoch_end(self, state):
            state.stop = state.epoch == 1

    hist = train.fit(DigitNet(), synth, epochs=5, callbacks=[Spy()], progress=False)
    assert seen == ["start", ("epoch", 0), ("epoch", 1)] and len(hist) == 2


def test_evaluate_and_predict_agree(synth):
    tlearn.seed_everything(0)
    net = DigitNet().eval()
    preds = train.predict(net, synth)
    logits = train.predict(net, synth, return_logits=True)
    assert preds.shape == (len(synth),) and logits.shape == (len(synth), 10)
    assert torch.equal(preds, logits.argmax(1))
    acc = (preds == synth.labels).float().mean().item()
    scores = train.evaluate(net, synth)
    assert scores["accuracy"] == pytest.approx(acc)
    expected = nn.functional.cross_entropy(logits, synth.labels).item()
    assert scores["loss"] == pytest.approx(expected, rel=1e-4)
    assert torch.equal(train.predict(net, synth.images), preds)  # a plain tensor works too
    net.train()
    train.evaluate(net, synth)
    assert net.training  # mode restored


def test_checkpoint_roundtrip_and_exact_resume(synth, tmp_path):
    ckpt = tmp_path / "run.pt"
    tlearn.seed_everything(1)
    full = DigitNet()
    train.fit(full, synth, epochs=3, batch_size=64, progress=False, seed=1)

    tlearn.seed_everything(1)
    part = DigitNet()
    train.fit(part, synth, epochs=2, batch_size=64, progress=False, seed=1, checkpoint=ckpt)
    resumed = DigitNet()  # a fresh process would start like this
    hist = train.fit(
        resumed, synth, epochs=3, batch_size=64, progress=False, checkpoint=ckpt, resume=True
    )
    assert hist["epoch"] == [1, 2, 3]
    assert _same(_weights(full), _weights(resumed))


def test_load_checkpoint_errors_leave_model_unchanged(tmp_path):
    net = DigitNet()
    path = checkpoint.save_checkpoint(tmp_path / "ok.pt", net, note="hi")
    assert checkpoint.load_checkpoint(path, DigitNet()) == {"note": "hi"}
    before = _weights(net)

    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(os.urandom(1000))
    plain = tmp_path / "plain.pt"
    torch.save(net.state_dict(), plain)
    code = tmp_path / "code.pt"  # a pickle of an arbitrary object: refused by weights_only
    torch.save({"format": checkpoint.CHECKPOINT_FORMAT, "model": _Arbitrary()}, code)
    for bad, msg in (
        (truncated, "corrupt, truncated"),
        (garbage, "corrupt"),
        (code, "corrupt"),
        (plain, "not a tlearn"),
    ):
        with pytest.raises(checkpoint.CheckpointError, match=msg) as err:
            checkpoint.load_checkpoint(bad, net)
        assert "weights_only=False" not in str(err.value)  # never advice that lets a file run code
        assert _same(before, _weights(net))

    other = checkpoint.save_checkpoint(tmp_path / "other.pt", DigitNet(num_classes=3))
    with pytest.raises(checkpoint.CheckpointError, match="does not fit.*head.weight"):
        checkpoint.load_checkpoint(other, net)
    assert _same(before, _weights(net))
    with pytest.raises(FileNotFoundError):
        checkpoint.load_checkpoint(tmp_path / "missing.pt", net)


def test_interrupted_save_keeps_old_checkpoint(tmp_path, monkeypatch):
    net = DigitNet()
    path = checkpoint.save_checkpoint(tmp_path / "model.pt", net, version=1)
    good = path.read_bytes()

    def crash(obj, f, *a, **k):
        f.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save_checkpoint(path, net, version=2)
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temp file left behind


def test_bad_training_inputs_get_clear_errors(synth):
    net = DigitNet()
    small = synth.subset(range(16))
    for kwargs, msg in (
        ({"lr": 0}, "lr must be a finite number > 0"),
        ({"lr": -1e-3}, "lr must be a finite number > 0"),
        ({"batch_size": 0}, "batch_size must be a positive int"),
        ({"epochs": 0}, "epochs must be a positive int"),
    ):
        with pytest.raises(ValueError, match=msg):
            train.fit(net, small, **{"epochs": 1, **kwargs}, progress=False, device="cpu")
    # uint8 images: say what dtype is expected and how to convert
    as_bytes = TensorDataset((small.images * 255).to(torch.uint8), small.labels)
    with pytest.raises(TypeError, match=r"float.*x.float\(\) / 255"):
        train.fit(net, as_bytes, epochs=1, progress=False, device="cpu")
    # a NaN image: stop at the batch, blame the data (not the learning rate)
    poisoned = small.images.clone()
    poisoned[3, 0, 5, 5] = float("nan")
    with pytest.raises(ValueError, match="NaN or Inf"):
        train.fit(
            net, TensorDataset(poisoned, small.labels), epochs=1, progress=False, device="cpu"
        )
    # a negative label is not "too few outputs"
    negative = TensorDataset(small.images, torch.full((16,), -1))
    with pytest.raises(ValueError, match=r"class indices 0…K−1, found -1") as err:
        train.fit(net, negative, epochs=1, progress=False, device="cpu")
    assert "num_classes" not in str(err.value)
    # unlabelled images cannot be trained on
    with pytest.raises(ValueError, match="labelled"):
        train.fit(net, small.images, epochs=1, progress=False, device="cpu")


def test_evaluate_rejects_labels_the_model_cannot_output(synth):
    net = DigitNet()
    labels = synth.labels[:8].clone()
    labels[2] = 12
    with pytest.raises(ValueError, match=r"12\].*10 outputs.*num_classes=13"):
        train.evaluate(net, TensorDataset(synth.images[:8], labels), device="cpu")


def test_a_custom_objective_and_lr_schedule_drive_the_same_loop(synth):
    seen = []

    def objective(model, x, y, progress):
        seen.append(progress)
        loss, logits, _ = train.classification_loss(model, x, y)
        return loss, logits, {"half": 0.5}

    hist = train.fit(DigitNet(), synth.subset(range(64)), epochs=2, batch_size=16, lr=0.1,
                     objective=objective, lr_schedule=lambda p: 1 - p / 2,
                     progress=False, device="cpu", seed=0)  # fmt: skip
    assert seen == pytest.approx([i / 7 for i in range(8)])  # 4 steps × 2 epochs, p ∈ [0, 1]
    assert hist["half"] == [0.5, 0.5]
    assert hist.last["lr"] == pytest.approx(0.05)  # the last step ran at p = 1
