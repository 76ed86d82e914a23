"""The source model: a small CNN trained on the synthetic digits, what every lesson transfers from.

Transfer learning starts from *source knowledge*: a network trained where labels are
plentiful. Here that is a :class:`tlearn.models.DigitNet` trained on rendered digits
(``data.load_domain("synth")``) — about 99.7 % accurate on held-out rendered digits and only
about 40–45 % on handwriting (``"uci"``): the domain gap the lessons close.

Training it takes about half a minute of CPU, so :func:`source_model` trains it once per
configuration and caches it on disk (``models/`` in a layer of ``TLEARN_CACHE``); later
calls load it in milliseconds. Example::

    from tlearn.studies.source import source_model
    source = source_model(seed=0)        # DigitNet, eval mode, on the CPU
"""

from __future__ import annotations

import time
from pathlib import Path

import tlearn
from tlearn import checkpoint, checks, data, runtime, train
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


def _source_config(seed: int, size: int, epochs: int, lr: float, batch_size: int) -> dict:
    """What the source model's weights depend on (stored in its checkpoint, hashed into its
    cache entry's name)."""
    return {
        "model": "DigitNet(num_classes=10, in_channels=1, feature_dim=128, channels_last=True)",
        "domain": "synth",
        "size": size,
        "seed": seed,
        "epochs": epochs,
        "lr": lr,
        "batch_size": batch_size,
        "optimizer": "adam",
        "tlearn": tlearn.__version__,
    }


def _entry(seed: int, size: int, epochs: int, lr: float, batch_size: int) -> str:
    """The cache entry's name: ``models/digitnet-synth-<key>.pt``, ``key`` the
    :func:`tlearn.runtime.cache_key` of the configuration (and tlearn's version)."""
    config = _source_config(seed, size, epochs, lr, batch_size)
    return f"models/digitnet-synth-{runtime.cache_key(config)}.pt"


def source_model_path(
    seed: int = 0,
    size: int = 6000,
    epochs: int = SOURCE_EPOCHS,
    *,
    lr: float = SOURCE_LR,
    batch_size: int = SOURCE_BATCH_SIZE,
) -> Path:
    """Where :func:`source_model` finds the model for this configuration: the copy in the
    first cache layer that has one (``runtime.find_cached``), else where it will be written
    (``<cache_dir()>/models/digitnet-synth-<key>.pt``).

    ``key`` hashes the configuration and tlearn's version, so a change to any of them trains
    a new model instead of reusing a stale one.
    """
    name = _entry(seed, size, epochs, lr, batch_size)
    return runtime.find_cached(name) or runtime.cache_dir() / name


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
    The result is cached (``models/`` in ``TLEARN_CACHE``): every cache layer is searched in
    order, and a trained model is written atomically into the first writable one, so a
    teacher's read-only cache serves a whole class. Later calls load it in milliseconds. A
    cached file that cannot be read or was saved for another configuration is skipped with a
    warning — never used, never deleted — and the model is trained again. ``rebuild=True``
    retrains regardless. Returned in eval mode, on the CPU.

    The default (6000 images, 4 epochs: ≈ 25 s of CPU time) is ≈ 99.7% accurate on held-out
    synthetic digits and only ≈ 40–45% on handwriting (``uci``): the domain gap the lessons
    close. (4 epochs were chosen on synthetic test accuracy, never on ``uci``.)
    """
    seed = checks.nonnegative_int("seed", seed)
    size, epochs, batch_size = (
        checks.positive_int(name, value)
        for name, value in (("size", size), ("epochs", epochs), ("batch_size", batch_size))
    )
    checks.positive_float("lr", lr)
    config = _source_config(seed, size, epochs, lr, batch_size)
    name = _entry(seed, size, epochs, lr, batch_size)

    def read(path: Path) -> DigitNet:  # raises for a file to skip: corrupt, or another config
        net = DigitNet()
        if checkpoint.load_checkpoint(path, net).get("config") != config:
            raise checkpoint.CheckpointError(f"{path} was saved for a different configuration")
        return net.eval()

    cached = None if rebuild else runtime.load_cached(name, read)  # every layer, in order
    if cached is not None:
        return cached
    source = data.load_domain("synth", split="train", size=size, seed=seed)
    runtime.seed_everything(seed)  # the initial weights, too, come from the seed
    net = DigitNet()
    start = time.perf_counter()
    history = train.fit(
        net,
        source,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        drop_last=False,  # the recorded protocol: every image, every epoch (6000 = 46 × 128 + 112)
        device="cpu",
        seed=seed,
        progress=progress,
    )
    checkpoint.save_checkpoint(  # atomically, into the first writable layer
        runtime.cache_dir() / name,
        net,
        config=config,
        history=history.records,
        seconds=time.perf_counter() - start,
    )
    return net.eval()
