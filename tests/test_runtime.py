import numpy as np
import pytest
import torch

import tlearn
from tlearn import runtime


def test_device_env_override(monkeypatch):
    monkeypatch.setenv("TLEARN_DEVICE", "cpu")
    assert tlearn.get_device() == torch.device("cpu")
    assert runtime.get_device(prefer="cpu").type == "cpu"


def test_device_default_is_cpu_without_cuda(monkeypatch):
    monkeypatch.delenv("TLEARN_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else None
    got = tlearn.get_device().type
    assert got == expected or (expected is None and got in ("cpu", "mps"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_device_asking_for_missing_cuda_is_clear(monkeypatch):
    monkeypatch.setenv("TLEARN_DEVICE", "cuda")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        tlearn.get_device()


def test_seed_everything_repeats_all_generators():
    def draw():
        import random

        return random.random(), np.random.rand(), torch.rand(1).item()  # noqa: NPY002

    tlearn.seed_everything(3)
    a = draw()
    tlearn.seed_everything(3)
    assert draw() == a
    tlearn.seed_everything(4)
    assert draw() != a
    with pytest.raises(ValueError):
        tlearn.seed_everything(-1)


def test_autocast_is_noop_on_cpu():
    assert runtime.amp_dtype("cpu") is None
    with runtime.autocast("cpu"):
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert y.dtype == torch.float32
    assert not runtime.make_grad_scaler("cpu").is_enabled()


def test_cache_and_data_dirs_follow_env(tmp_path, monkeypatch):
    monkeypatch.setenv("TLEARN_CACHE", str(tmp_path / "c"))
    monkeypatch.delenv("TLEARN_DATA", raising=False)
    assert runtime.cache_dir() == tmp_path / "c" and (tmp_path / "c").is_dir()
    assert runtime.data_dir() == tmp_path / "c" / "data"
    monkeypatch.setenv("TLEARN_DATA", str(tmp_path / "d"))
    assert runtime.data_dir() == tmp_path / "d"
