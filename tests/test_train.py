import os

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import tlearn
from tlearn import data, train
from tlearn.models import DigitNet


@pytest.fixture(scope="module")
def synth():
    return data.load_domain("synth", size=256, seed=0)


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
    path = train.save_checkpoint(tmp_path / "ok.pt", net, note="hi")
    assert train.load_checkpoint(path, DigitNet()) == {"note": "hi"}
    before = _weights(net)

    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(os.urandom(1000))
    plain = tmp_path / "plain.pt"
    torch.save(net.state_dict(), plain)
    for bad, msg in (
        (truncated, "corrupt or truncated"),
        (garbage, "corrupt"),
        (plain, "not a tlearn"),
    ):
        with pytest.raises(train.CheckpointError, match=msg):
            train.load_checkpoint(bad, net)
        assert _same(before, _weights(net))

    other = train.save_checkpoint(tmp_path / "other.pt", DigitNet(num_classes=3))
    with pytest.raises(train.CheckpointError, match="does not fit.*head.weight"):
        train.load_checkpoint(other, net)
    assert _same(before, _weights(net))
    with pytest.raises(FileNotFoundError):
        train.load_checkpoint(tmp_path / "missing.pt", net)


def test_interrupted_save_keeps_old_checkpoint(tmp_path, monkeypatch):
    net = DigitNet()
    path = train.save_checkpoint(tmp_path / "model.pt", net, version=1)
    good = path.read_bytes()

    def crash(obj, f, *a, **k):
        f.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        train.save_checkpoint(path, net, version=2)
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temp file left behind
