"""Where code runs and how it is made repeatable: device, seeding, mixed precision, folders.

Every other module asks this one for the device (``get_device``), the autocast context
(``autocast``) and the folders it may write to (``cache_dir``, ``data_dir``), so a user
changes one environment variable, not twenty call sites:

* ``TLEARN_DEVICE`` — force a device (``cpu``, ``cuda``, ``cuda:1``, ``mps``).
* ``TLEARN_CACHE``  — where pretrained source models and feature caches go
  (default ``~/.cache/tlearn``).
* ``TLEARN_DATA``   — where real datasets (MNIST, USPS, …) are looked for
  (default ``<cache>/data``).
* ``TLEARN_THREADS`` — torch's CPU threads. Unset: ``import tlearn`` lowers them to the CPUs
  this process may really use (:func:`cpu_budget`) when torch would start more — a
  container can show all of the host's cores while its CPU quota allows one or two, and a
  thread for every host core then trains 2–3× slower (``benchmarks/threads.py``: 2.1× with
  8 threads on 2 CPUs, 3.4× with 16). It never raises the count, and leaves it alone when
  ``OMP_NUM_THREADS`` is set.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

__all__ = [
    "get_device",
    "seed_everything",
    "autocast",
    "amp_dtype",
    "make_grad_scaler",
    "cache_dir",
    "data_dir",
    "atomic_write",
    "cgroup_cpu_quota",
    "cpu_budget",
    "limit_threads",
    "PROGRESS_INTERVAL",
]

#: Seconds between redraws of tlearn's per-batch progress bars. In a notebook every redraw
#: is a message to the front end, and a kernel that sends thousands of them during one long
#: cell overflows the channel: messages are dropped, and a runner such as nbval then fails
#: with "Timeout … waiting for output". Per-step statistics go in with ``refresh=False``.
PROGRESS_INTERVAL = 0.5


def cgroup_cpu_quota(root: str | Path = "/sys/fs/cgroup") -> float | None:
    """The CPU time this process's control group may use, in CPUs (1.5 = one and a half), or
    None when there is no limit or no control group to read.

    cgroup v2 writes ``"<quota> <period>"`` (or ``"max <period>"``) to ``cpu.max``; v1 writes
    ``cpu.cfs_quota_us`` (−1: no limit) and ``cpu.cfs_period_us``.
    """
    root = Path(root)
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    for folder in (root / "cpu", root / "cpu,cpuacct", root):
        try:
            quota = int((folder / "cpu.cfs_quota_us").read_text())
            period = int((folder / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            continue
        return None if quota <= 0 or period <= 0 else quota / period
    return None


def cpu_budget() -> int:
    """How many CPUs this process may really use: the CPUs it may be scheduled on, capped by
    its control group's CPU quota (rounded up). At least 1."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        n = os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    if quota is not None:
        n = min(n, math.ceil(quota))
    return max(1, n)


def limit_threads(n: int | None = None) -> int:
    """Cap torch's CPU threads at ``n`` — default ``TLEARN_THREADS``, else :func:`cpu_budget`.

    With ``n`` or ``TLEARN_THREADS`` given the count is set to it; otherwise it is only ever
    lowered, and left alone when ``OMP_NUM_THREADS`` is set (the user chose). Returns the
    thread count now in force. ``import tlearn`` calls it once.
    """
    env = os.environ.get("TLEARN_THREADS")
    if n is None and env:
        try:
            n = int(env)
        except ValueError:
            n = 0
        if n < 1:
            raise ValueError(f"TLEARN_THREADS must be a positive integer, got {env!r}")
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"threads must be a positive int, got {n!r}")
        torch.set_num_threads(n)
    elif not os.environ.get("OMP_NUM_THREADS"):
        budget = cpu_budget()
        if torch.get_num_threads() > budget:
            torch.set_num_threads(budget)
    return torch.get_num_threads()


def get_device(device: torch.device | str | None = None) -> torch.device:
    """The one place a device is chosen: ``device`` if given, else ``TLEARN_DEVICE``, else
    cuda > mps > cpu.

    Every function of tlearn that takes ``device=None`` calls this, so one environment
    variable moves the whole library (``TLEARN_DEVICE=cpu`` forces the CPU).

    >>> get_device("cpu")
    device(type='cpu')
    """
    name = device if device is not None else os.environ.get("TLEARN_DEVICE")
    if name:
        chosen = torch.device(name)
        if chosen.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(
                f"the device {str(name)!r} (argument or TLEARN_DEVICE) is CUDA, but CUDA is not "
                "available here; unset TLEARN_DEVICE or use 'cpu'."
            )
        return chosen
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int, *, deterministic: bool = True) -> int:
    """Seed Python, NumPy and PyTorch (CPU and every CUDA device).

    With ``deterministic=True`` cuDNN picks deterministic kernels, so the same seed gives
    the same weights on the same machine and library versions. Returns the seed.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - seeding the legacy global RNG is the point
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    return seed


def amp_dtype(device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype for ``device``: bf16 on CUDA that supports it, else fp16; None on CPU/MPS."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device | str, enabled: bool | None = None):
    """Mixed-precision context for ``device``; a no-op on CPU (and MPS) or when disabled.

    ``enabled=None`` means: on when the device supports it (CUDA).
    """
    device = torch.device(device)
    dtype = amp_dtype(device)
    if enabled is False or dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def make_grad_scaler(device: torch.device | str, enabled: bool | None = None):
    """A GradScaler when training in fp16 on CUDA (bf16 needs none); else a disabled one."""
    device = torch.device(device)
    use = enabled is not False and amp_dtype(device) == torch.float16
    return torch.amp.GradScaler("cuda", enabled=use)


def cache_dir() -> Path:
    """``TLEARN_CACHE`` or ``~/.cache/tlearn``; created on first use."""
    path = Path(os.environ.get("TLEARN_CACHE") or Path.home() / ".cache" / "tlearn").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    """``TLEARN_DATA`` or ``<cache_dir>/data``: where real datasets are looked for."""
    env = os.environ.get("TLEARN_DATA")
    path = Path(env).expanduser() if env else cache_dir() / "data"
    return path


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """Create or replace ``path`` all at once: ``write(f)`` fills a temporary file beside it,
    which is flushed to disk and renamed over ``path`` (``os.replace`` is atomic).

    An interruption (error, Ctrl-C) leaves the old file, or none — never half a file — and
    removes the temporary one. Every cache and checkpoint in tlearn is written this way.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


limit_threads()
