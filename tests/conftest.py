"""Shared test setup: a private cache dir, CPU only, few threads, small data."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("TLEARN_DEVICE", "cpu")
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Each test session writes its caches to a temporary folder, never ~/.cache/tlearn."""
    if "TLEARN_TEST_KEEP_CACHE" not in os.environ:
        monkeypatch.setenv("TLEARN_CACHE", str(tmp_path_factory.getbasetemp() / "tlearn-cache"))


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one thread avoids OpenMP hand-offs that dominate on a busy 2-core box."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
