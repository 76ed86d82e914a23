"""tlearn: learn — and do — transfer learning in PyTorch.

    import tlearn
    from tlearn import data, models, train
    tlearn.seed_everything(0)
    net = models.DigitNet()
    train.fit(net, data.load_domain("synth", split="train"), epochs=3)

Submodules (one concept each) load on first use, so ``import tlearn`` stays fast:
``runtime``, ``data``, ``models``, ``freeze``, ``bn``, ``train``, ``features``, ``probes``,
``adapt``, ``plot``, ``widgets``, ``exercises``, ``cli``, and ``checks``, ``distributed``
(torchrun), ``checkpoint``.
"""

from __future__ import annotations

import importlib

from tlearn.runtime import cache_dir, data_dir, get_device, seed_everything

__version__ = "0.2.0"

_SUBMODULES = (
    "runtime", "data", "models", "freeze", "bn", "train", "features", "probes",
    "adapt", "plot", "widgets", "exercises", "cli", "checks", "distributed", "checkpoint",
)  # fmt: skip

__all__ = ["__version__", "get_device", "seed_everything", "cache_dir", "data_dir", *_SUBMODULES]


def __getattr__(name: str):
    """``tlearn.data`` etc. work after a plain ``import tlearn`` (PEP 562 lazy submodules)."""
    if name in _SUBMODULES:
        return importlib.import_module(f"tlearn.{name}")
    raise AttributeError(f"module 'tlearn' has no attribute {name!r}")
