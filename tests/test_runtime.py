import hashlib
import json
import os

import numpy as np
import pytest
import torch

import tlearn
from tlearn import runtime


def test_device_env_override(monkeypatch):
    monkeypatch.setenv("TLEARN_DEVICE", "cpu")
    assert tlearn.get_device() == torch.device("cpu")
    assert runtime.get_device("cpu").type == "cpu"


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


# --- CPU threads: never more than the CPUs the process may use ---------------------------


@pytest.fixture
def threads():
    """Restore torch's and BLAS's thread counts after a test changes them."""
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    with threadpool_limits(user_api="blas"):  # restores BLAS's counts on leaving
        yield
    torch.set_num_threads(before)


def test_cgroup_quota_v2_v1_and_no_limit(tmp_path):
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cpu.max").write_text("150000 100000\n")
    assert runtime.cgroup_cpu_quota(v2) == 1.5
    (v2 / "cpu.max").write_text("max 100000\n")
    assert runtime.cgroup_cpu_quota(v2) is None
    v1 = tmp_path / "v1" / "cpu,cpuacct"
    v1.mkdir(parents=True)
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    (v1 / "cpu.cfs_quota_us").write_text("50000\n")
    assert runtime.cgroup_cpu_quota(tmp_path / "v1") == 0.5
    (v1 / "cpu.cfs_quota_us").write_text("-1\n")
    assert runtime.cgroup_cpu_quota(tmp_path / "v1") is None
    assert runtime.cgroup_cpu_quota(tmp_path / "nothing") is None
    (v2 / "cpu.max").write_text("garbage\n")
    assert runtime.cgroup_cpu_quota(v2) is None


def test_cpu_budget_is_capped_by_the_quota_rounded_up(monkeypatch):
    monkeypatch.setattr(runtime.os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    monkeypatch.setattr(runtime, "cgroup_cpu_quota", lambda: 1.5)
    assert runtime.cpu_budget() == 2
    monkeypatch.setattr(runtime, "cgroup_cpu_quota", lambda: 0.25)
    assert runtime.cpu_budget() == 1
    monkeypatch.setattr(runtime, "cgroup_cpu_quota", lambda: None)
    assert runtime.cpu_budget() == 16


def test_limit_threads_lowers_to_the_budget_never_raises_and_obeys_the_user(monkeypatch, threads):
    monkeypatch.delenv("TLEARN_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(runtime, "cpu_budget", lambda: 1)
    torch.set_num_threads(2)
    assert runtime.limit_threads() == 1  # an oversubscribed container: lowered
    monkeypatch.setattr(runtime, "cpu_budget", lambda: 8)
    assert runtime.limit_threads() == 1  # never raised
    monkeypatch.setattr(runtime, "cpu_budget", lambda: 1)
    torch.set_num_threads(2)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert runtime.limit_threads() == 2  # the user chose: left alone
    monkeypatch.setenv("TLEARN_THREADS", "1")
    assert runtime.limit_threads() == 1  # tlearn's own variable wins
    assert runtime.limit_threads(2) == 2  # and an explicit argument over it
    for bad in ("0", "two", "-3"):
        monkeypatch.setenv("TLEARN_THREADS", bad)
        with pytest.raises(ValueError, match="TLEARN_THREADS"):
            runtime.limit_threads()
    with pytest.raises(ValueError, match="positive int"):
        runtime.limit_threads(0)


def test_limit_threads_caps_the_blas_scikit_learn_computes_with(monkeypatch, threads):
    from threadpoolctl import threadpool_info

    def blas_threads() -> list[int]:  # numpy's OpenBLAS and scipy's own
        return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]

    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    assert runtime.limit_threads(1) == 1
    assert len(blas_threads()) >= 2 and set(blas_threads()) == {1}
    assert "OPENBLAS_NUM_THREADS" not in os.environ  # nothing for child processes to inherit
    if os.cpu_count() >= 2:
        runtime.limit_threads(2)
        assert set(blas_threads()) == {2}
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")  # the user chose: left alone
    before = blas_threads()
    runtime.limit_threads(3)
    assert blas_threads() == before


# --- cache keys and cached JSON entries ------------------------------------------------------


def test_cache_key_names_what_a_spec_describes_and_the_version(monkeypatch):
    spec = {"seed": 0, "config": {"lr": 1e-3, "epochs": 4}}
    key = runtime.cache_key(spec)
    assert len(key) == 24 and int(key, 16) >= 0  # 24 hex digits
    assert runtime.cache_key({"config": {"epochs": 4, "lr": 1e-3}, "seed": 0}) == key  # order
    assert runtime.cache_key({**spec, "seed": 1}) != key
    canonical = json.dumps({**spec, "tlearn": tlearn.__version__}, sort_keys=True)
    assert key == hashlib.sha256(canonical.encode()).hexdigest()[:24]
    unversioned = runtime.cache_key(spec, versioned=False)
    monkeypatch.setattr(tlearn, "__version__", "999.0")
    assert runtime.cache_key(spec) != key  # a new version names a new entry
    assert runtime.cache_key(spec, versioned=False) == unversioned


def test_cached_json_computes_once_then_reads_and_recomputes_a_wrong_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("TLEARN_CACHE", str(tmp_path))
    calls = []

    def compute():
        calls.append(1)
        return {"config": {"seed": 0}, "accuracy": 0.5, "rows": [1, 2]}

    def valid(value):
        return value.get("config") == {"seed": 0}

    first = runtime.cached_json("results/x.json", compute, valid=valid)
    assert first == compute() and len(calls) == 2
    again = runtime.cached_json("results/x.json", compute, valid=valid)
    assert again == first and len(calls) == 2  # read, not computed
    assert json.loads((tmp_path / "results" / "x.json").read_text()) == first
    runtime.cached_json("results/x.json", compute, valid=valid, recompute=True)
    assert len(calls) == 3
    (tmp_path / "results" / "x.json").write_text(json.dumps({"config": {"seed": 1}}))
    with pytest.warns(RuntimeWarning, match="another configuration"):
        assert runtime.cached_json("results/x.json", compute, valid=valid) == first
    assert len(calls) == 4 and valid(json.loads((tmp_path / "results" / "x.json").read_text()))
    (tmp_path / "results" / "x.json").write_text('{"config": {"se')  # truncated
    with pytest.warns(RuntimeWarning, match="unreadable cache entry"):
        runtime.cached_json("results/x.json", compute, valid=valid)
    assert len(calls) == 5
