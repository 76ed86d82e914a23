"""Shared test setup: a private cache dir, CPU only, few threads, small data."""

from __future__ import annotations

import os

import pytest
import torch

from tlearn import runtime

os.environ.setdefault("TLEARN_DEVICE", "cpu")
# One thread (torch's and BLAS's), unless TLEARN_THREADS asks for more: the tests' networks are
# tiny, and one thread is fastest and does not slow twentyfold beside another job (OpenMP's
# threads spin waiting for a core). Set here once; no test module sets it at import, where the
# last one imported would win.
runtime.limit_threads(None if os.environ.get("TLEARN_THREADS", "").strip() else 1)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Each test session writes its caches to a temporary folder, never ~/.cache/tlearn."""
    if "TLEARN_TEST_KEEP_CACHE" not in os.environ:
        monkeypatch.setenv("TLEARN_CACHE", str(tmp_path_factory.getbasetemp() / "tlearn-cache"))


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one thread avoids OpenMP hand-offs that dominate on a busy 2-core box.
    A module asks for it with ``pytestmark = pytest.mark.usefixtures("one_thread")``; the
    thread count is restored after the module, so it never leaks into the next one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
