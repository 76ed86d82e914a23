"""The lessons' results cache: keyed by the whole config and the version, atomic, self-healing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import tlearn
from tlearn.adapt import experiments as ex
from tlearn.data import DigitDataset


@pytest.fixture
def tiny(monkeypatch, tmp_path):
    """A private cache folder and tiny random domains instead of the real ones."""
    monkeypatch.setenv("TLEARN_CACHE", str(tmp_path))
    monkeypatch.setattr(ex, "_device", lambda: torch.device("cpu"))

    def fake_data(cfg):
        g = torch.Generator().manual_seed(0)

        def dom(n, shift):
            return DigitDataset(
                torch.rand(n, 1, 32, 32, generator=g) * 0.5 + shift, torch.arange(n) % 10
            )

        return dom(48, 0.0), dom(30, 0.0), dom(40, 0.3), dom(30, 0.3)

    monkeypatch.setattr(ex, "datasets", fake_data)
    calls = []
    real = ex._compute

    def counting(cfg, progress):
        calls.append(cfg.method)
        return real(cfg, progress)

    monkeypatch.setattr(ex, "_compute", counting)
    return calls


def _cfg(method="coral", **kw):
    return ex.config(method, seed=0, epochs=1, batch_size=16, **kw)


def test_second_call_reads_the_cache(tiny):
    first = ex.run(_cfg(), progress=False)
    assert tiny == ["coral"]
    again = ex.run(_cfg(), progress=False)
    assert tiny == ["coral"] and again == first
    assert 0 <= first["target_accuracy"] <= 1 and 0 <= first["proxy_a_distance"] <= 2
    assert first["history"][0]["align_loss"] > 0
    files = sorted(p.suffix for p in ex.results_dir().iterdir())
    assert files == [".json", ".pt"]  # no temporary files left behind


def test_corrupt_or_foreign_files_are_recomputed(tiny):
    cfg = _cfg()
    ex.run(cfg, progress=False)
    path = ex.results_dir() / f"{cfg.key()}.json"
    path.write_text('{"format": "tlearn-adapt-res')  # a write cut short
    ex.run(cfg, progress=False)
    assert tiny == ["coral", "coral"]
    assert json.loads(path.read_text())["config"]["method"] == "coral"
    (ex.results_dir() / f"{cfg.key()}.pt").unlink()  # weights missing: recompute too
    ex.run(cfg, progress=False)
    assert len(tiny) == 3


def test_key_covers_config_and_version(tiny, monkeypatch):
    base = _cfg()
    assert _cfg().key() == base.key()
    assert _cfg(weight=3).key() != base.key()
    assert ex.config("coral", seed=1, epochs=1, batch_size=16).key() != base.key()
    before = base.key()
    monkeypatch.setattr(tlearn, "__version__", "999.0")
    assert _cfg().key() != before


def test_trained_model_and_derived_methods(tiny):
    net = ex.trained_model(_cfg("none"), progress=False)
    assert not net.training
    again = ex.trained_model(_cfg("none"), progress=False)
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), again.parameters(), strict=True))
    bn = ex.run(_cfg("adabn"), progress=False)
    cf = ex.run(_cfg("coral_closed_form"), progress=False)
    assert tiny == ["none", "adabn", "coral_closed_form"]  # both reuse the cached source-only net
    assert cf["target_accuracy"] == cf["coral"]
    assert set(cf) >= {"no_adaptation", "standardised", "coral"}
    assert 0 <= bn["target_accuracy"] <= 1


def test_config_validation_and_table(tiny):
    with pytest.raises(ValueError, match="unknown method"):
        ex.config("adda")
    with pytest.raises(TypeError, match="RunConfig"):
        ex.run({"method": "coral"})
    table = {"source only": [{"target_accuracy": 0.3, "source_accuracy": 0.99, "proxy_a_distance": 1.9}] * 2,
             "Deep CORAL": [{"target_accuracy": 0.6, "source_accuracy": 0.98, "proxy_a_distance": 1.5},
                            {"target_accuracy": 0.7, "source_accuracy": 0.98, "proxy_a_distance": 1.4}]}  # fmt: skip
    text = ex.format_table(table)
    assert "Deep CORAL" in text and "+35.0" in text and "65.0 ±  7.1" in text


def test_estimator_spread_unbiased_goes_negative_biased_does_not():
    rng = np.random.default_rng(0)
    spread = ex.estimator_spread(rng.normal(size=(80, 5)), repeats=40)
    assert (spread["biased"] > 0).all()
    assert 0.1 < (spread["unbiased"] < 0).mean() < 0.9
    assert spread["unbiased"].mean() == pytest.approx(0, abs=3 * spread["unbiased"].std())


def test_size_normalisation_fills_the_height_keeps_the_aspect_ratio_and_centres():
    x = torch.zeros(3, 1, 32, 32)
    x[0, 0, 4:12, 20:24] = 1.0  # an 8 × 4 box, off centre
    x[1, 0, 10:14, 2:30] = 0.8  # 4 × 28: wider than the frame once scaled, so capped
    out = ex.normalise_size_like_uci(x)
    ink = out[0, 0] > 0.5
    rows, cols = ink.any(1).nonzero().flatten(), ink.any(0).nonzero().flatten()
    assert (rows.min(), rows.max()) == (0, 31)  # the whole height
    assert len(cols) == 16 and cols.min() == 8  # 32 · 4/8 wide, centred
    assert (out[1, 0] > 0.4).all(1).sum() >= 3  # capped at the frame's width
    assert torch.equal(out[2], x[2])  # a blank image stays blank
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1


def test_development_targets_are_declared_and_thickening_can_be_switched_off():
    assert ex.DEV_TARGETS == ("synth_degraded", "synth_framed")
    x = torch.zeros(1, 1, 32, 32)
    x[0, 0, 8:24, 15] = 1.0  # a one-pixel stroke
    thick, thin = ex.degrade_like_uci(x), ex.degrade_like_uci(x, thicken=False)
    assert thick.sum() > thin.sum() > 0


def test_every_fit_adapt_default_is_part_of_the_cache_key(monkeypatch):
    from tlearn.adapt import trainer

    before = ex.config("dann").key()
    for name, value in (("optimizer", "sgd"), ("bn_mode", "joint"), ("recalibrate_bn", False)):
        monkeypatch.setitem(trainer.DEFAULTS, "dann", {**trainer.DEFAULTS["dann"], name: value})
        assert getattr(ex.config("dann"), name) == value
        assert ex.config("dann").key() != before  # a changed default recomputes, never reuses
