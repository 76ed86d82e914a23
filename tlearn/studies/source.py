"""The source model: a small CNN trained on the synthetic digits, what every lesson transfers from.

Transfer learning starts from *source knowledge*: a network trained where labels are
plentiful. Here that is a :class:`tlearn.models.DigitNet` trained on rendered digits
(``data.load_domain("synth")``) — about 99.7 % accurate on held-out rendered digits and only
about 40–45 % on handwriting (``"uci"``): the domain gap the lessons close.

Training it takes about half a minute of CPU, so :func:`source_model` trains it once per
configuration and caches it on disk (``<cache_dir>/models/``); later calls load it in
milliseconds. Example::

    from tlearn.studies.source import source_model
    source = source_model(seed=0)        # DigitNet, eval mode, on the CPU
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from pathlib import Path

from tlearn.models import DigitNet

__all__ = [
    "source_model",
    "source_model_path",
    "SOURCE_EPOCHS",
    "SOURCE_LR",
    "SOURCE_BATCH_SIZE",
]

#: Default training recipe of :func:`source_model`: Adam at 1e-3 on batches of 128, 4 epochs.
SOURCE_EPOCHS = 4
SOURCE_LR = 1e-3
SOURCE_BATCH_SIZE = 128


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def _source_config(seed: int, size: int, epochs: int, lr: float, batch_size: int) -> dict:
    import tlearn

    return {
        "model": "DigitNet(num_classes=10, in_channels=1, feature_dim=128)",
        "domain": "synth",
        "size": size,
        "seed": seed,
        "epochs": epochs,
        "lr": lr,
        "batch_size": batch_size,
        "optimizer": "adam",
        "tlearn": tlearn.__version__,
    }


def source_model_path(
    seed: int = 0,
    size: int = 6000,
    epochs: int = SOURCE_EPOCHS,
    *,
    lr: float = SOURCE_LR,
    batch_size: int = SOURCE_BATCH_SIZE,
) -> Path:
    """Where :func:`source_model` caches the model for this configuration.

    ``<cache_dir>/models/digitnet-synth-<key>.pt``, ``key`` = the first 12 hex digits of the
    SHA-256 of the configuration (and tlearn's version), so a change to any of them trains a
    new model instead of reusing a stale one.
    """
    from tlearn.runtime import cache_dir

    config = _source_config(seed, size, epochs, lr, batch_size)
    key = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]
    return cache_dir() / "models" / f"digitnet-synth-{key}.pt"


def source_model(
    seed: int = 0,
    size: int = 6000,
    epochs: int = SOURCE_EPOCHS,
    progress: bool = True,
    *,
    lr: float = SOURCE_LR,
    batch_size: int = SOURCE_BATCH_SIZE,
    rebuild: bool = False,
) -> DigitNet:
    """A :class:`DigitNet` trained on the synthetic digits: the course's "source knowledge".

    Trained with ``train.fit`` (Adam, cross-entropy) on ``data.load_domain("synth",
    split="train", size=size, seed=seed)`` on the CPU, seeded (initial weights and batch order),
    so a rebuild gives the same weights on the same machine, thread count and library versions.
    The result is cached at :func:`source_model_path` (written atomically); later calls load it
    in milliseconds. A cache file that cannot be read or was saved for another configuration is
    rebuilt with a warning — never used. ``rebuild=True`` retrains regardless. Returned in eval
    mode, on the CPU.

    The default (6000 images, 4 epochs: ≈ 25 s of CPU time) is ≈ 99.7% accurate on held-out
    synthetic digits and only ≈ 40–45% on handwriting (``uci``): the domain gap the lessons
    close. (4 epochs were chosen on synthetic test accuracy, never on ``uci``.)
    """
    from tlearn import data, train
    from tlearn.runtime import seed_everything

    _check_int("seed", seed, minimum=0)
    for arg, value in (("size", size), ("epochs", epochs), ("batch_size", batch_size)):
        _check_int(arg, value, minimum=1)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    config = _source_config(seed, size, epochs, lr, batch_size)
    path = source_model_path(seed, size, epochs, lr=lr, batch_size=batch_size)
    if path.exists() and not rebuild:
        net = DigitNet()
        try:
            extra = train.load_checkpoint(path, net)
            if extra.get("config") != config:
                raise train.CheckpointError(f"{path} was saved for a different configuration")
            return net.eval()
        except (train.CheckpointError, KeyError, TypeError, AttributeError) as e:
            warnings.warn(
                f"ignoring the cached source model ({e}); training it again",
                RuntimeWarning,
                stacklevel=2,
            )
    source = data.load_domain("synth", split="train", size=size, seed=seed)
    seed_everything(seed)  # the initial weights, too, come from the seed
    net = DigitNet()
    start = time.perf_counter()
    history = train.fit(
        net,
        source,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        device="cpu",
        seed=seed,
        progress=progress,
    )
    train.save_checkpoint(
        path,
        net,
        config=config,
        history=history.records,
        seconds=time.perf_counter() - start,
    )
    return net.eval()
