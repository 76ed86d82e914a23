"""Where code runs and how it is made repeatable: device, seeding, mixed precision, folders.

Every other module asks this one for the device (``get_device``), the autocast context
(``autocast``) and the folders it may write to (``cache_dir``, ``data_dir``), so a user
changes one environment variable, not twenty call sites:

* ``TLEARN_DEVICE`` — force a device (``cpu``, ``cuda``, ``cuda:1``, ``mps``).
* ``TLEARN_CACHE``  — where pretrained source models and feature caches go
  (default ``~/.cache/tlearn``).
* ``TLEARN_DATA``   — where real datasets (MNIST, USPS, …) are looked for
  (default ``<cache>/data``).
"""

from __future__ import annotations

import contextlib
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
    "PROGRESS_INTERVAL",
]

#: Seconds between redraws of tlearn's per-batch progress bars. In a notebook every redraw
#: is a message to the front end, and a kernel that sends thousands of them during one long
#: cell overflows the channel: messages are dropped, and a runner such as nbval then fails
#: with "Timeout … waiting for output". Per-step statistics go in with ``refresh=False``.
PROGRESS_INTERVAL = 0.5


def get_device(prefer: str | None = None) -> torch.device:
    """The device to compute on: ``TLEARN_DEVICE`` if set, else cuda > mps > cpu.

    ``prefer`` (e.g. ``"cpu"``) overrides both, which tests and benchmarks use.
    """
    name = prefer or os.environ.get("TLEARN_DEVICE")
    if name:
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(
                f"TLEARN_DEVICE/prefer asks for {name!r} but CUDA is not available here; "
                "unset TLEARN_DEVICE or use 'cpu'."
            )
        return device
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
