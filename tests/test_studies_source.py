"""tlearn.studies.source: the cached source model (deterministic, self-healing cache)."""

from __future__ import annotations

import warnings

import pytest
import torch

from tlearn import checkpoint, data, models, train
from tlearn.studies import source as src

SMALL = {"seed": 0, "size": 400, "epochs": 3, "batch_size": 16, "progress": False}
TINY = {"seed": 0, "size": 100, "epochs": 1, "progress": False}


def _equal_state(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_source_model_cache_determinism_and_corruption(tmp_path, monkeypatch):
    monkeypatch.setenv("TLEARN_CACHE", str(tmp_path))
    net = src.source_model(**SMALL)
    assert isinstance(net, models.DigitNet) and not net.training
    path = src.source_model_path(seed=0, size=400, epochs=3, batch_size=16)
    assert path.is_file() and path.parent == tmp_path / "models"
    assert path.name.startswith("digitnet-synth-")
    assert path != src.source_model_path(seed=1, size=400, epochs=3, batch_size=16)

    # a cache hit loads, never retrains
    def no_training(*args, **kwargs):
        raise AssertionError("source_model retrained despite a valid cache file")

    with monkeypatch.context() as m:
        m.setattr(train, "fit", no_training)
        cached = src.source_model(**SMALL)
    assert _equal_state(net, cached) and not cached.training

    # a corrupt cache file is rebuilt with a warning; training is deterministic, so the
    # rebuilt model has exactly the weights of the first one
    path.write_bytes(b"corrupted")
    with pytest.warns(RuntimeWarning, match="unreadable cache entry"):
        repaired = src.source_model(**SMALL)
    assert _equal_state(net, repaired)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        src.source_model(**SMALL)  # the repaired file is a clean cache hit

    # it learned: far above chance (10%) on held-out synthetic digits
    accuracy = train.evaluate(net, data.load_domain("synth", split="test", size=500), device="cpu")
    assert accuracy["accuracy"] > 0.5


def test_source_model_other_config_and_rebuild(tmp_path, monkeypatch):
    monkeypatch.setenv("TLEARN_CACHE", str(tmp_path))
    path = src.source_model_path(seed=0, size=100, epochs=1)
    checkpoint.save_checkpoint(path, models.DigitNet(), config={"something": "else"})
    with pytest.warns(RuntimeWarning, match="different configuration"):
        src.source_model(**TINY)
    calls = []
    fit = train.fit
    monkeypatch.setattr(train, "fit", lambda *a, **k: calls.append(1) or fit(*a, **k))
    src.source_model(**TINY)
    assert calls == []  # cache hit
    src.source_model(**TINY, rebuild=True)
    assert calls == [1]  # rebuild=True trains again


def test_source_model_validates_arguments():
    with pytest.raises(ValueError, match="epochs"):
        src.source_model(epochs=0)
    with pytest.raises(ValueError, match="seed"):
        src.source_model(seed=-1)
    with pytest.raises(ValueError, match="lr"):
        src.source_model(lr=0)
    assert (src.SOURCE_EPOCHS, src.SOURCE_LR, src.SOURCE_BATCH_SIZE) == (4, 1e-3, 128)
