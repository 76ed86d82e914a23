"""Training, evaluation and checkpoints: one explicit loop a student can read in a minute.

The heart of this module is :func:`fit`, in the spirit of torchvision's reference scripts::

    for epoch in range(epochs):
        for x, y in loader:
            with autocast(device):             # bf16/fp16 on a GPU, a no-op on the CPU
                loss = cross_entropy(model(x), y)
            optimizer.zero_grad(); scaler.scale(loss).backward()
            scaler.step(optimizer); scaler.update()

Everything else — input checks, progress bars, validation, callbacks, checkpoints — sits
around that loop without hiding it. Only parameters with ``requires_grad=True`` are handed
to the optimizer ``fit`` builds, so frozen layers (see :mod:`tlearn.freeze`) never move.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from tqdm.auto import tqdm

from tlearn.models.weights import state_dict_mismatch
from tlearn.runtime import (
    PROGRESS_INTERVAL,
    atomic_write,
    autocast,
    get_device,
    make_grad_scaler,
    seed_everything,
)

__all__ = [
    "History",
    "FitState",
    "fit",
    "evaluate",
    "predict",
    "save_checkpoint",
    "load_checkpoint",
    "CheckpointError",
    "state_dict_mismatch",
]

CHECKPOINT_FORMAT = "tlearn-checkpoint-v1"


class CheckpointError(ValueError):
    """A checkpoint file that is corrupt, truncated, not ours, or does not fit the model."""


class History:
    """Per-epoch records of a training run: ``hist["val_accuracy"]`` → list, ``hist.last``."""

    def __init__(self, records: Iterable[dict] | None = None):
        self.records: list[dict[str, Any]] = [dict(r) for r in records or []]

    def append(self, record: dict[str, Any]) -> None:
        self.records.append(dict(record))

    def __getitem__(self, key: str) -> list:
        if not any(key in r for r in self.records):
            known = sorted({k for r in self.records for k in r})
            raise KeyError(f"no {key!r} in this history; it has {known}")
        return [r.get(key) for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    @property
    def last(self) -> dict[str, Any]:
        if not self.records:
            raise IndexError("History is empty: no epoch has finished yet")
        return self.records[-1]

    def keys(self) -> list[str]:
        return sorted({k for r in self.records for k in r})

    def __repr__(self) -> str:
        if not self.records:
            return "History(empty)"
        last = ", ".join(f"{k}={v:.4g}" for k, v in self.last.items() if isinstance(v, float))
        return f"History({len(self)} epochs; last: {last})"


@dataclass
class FitState:
    """What callbacks see: they may change the optimizer or set ``stop = True``."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    device: torch.device
    epochs: int
    epoch: int = 0
    history: History = field(default_factory=History)
    stop: bool = False


# --- input handling --------------------------------------------------------------------


def _as_dataset(data) -> Dataset:
    if isinstance(data, DataLoader):
        return data.dataset
    if isinstance(data, torch.Tensor):
        return TensorDataset(data)
    return data


def _loader(data, batch_size: int, *, shuffle: bool, seed: int = 0) -> DataLoader:
    """``data`` as a DataLoader: a given DataLoader is used as is; a Dataset gets one."""
    if isinstance(data, DataLoader):
        return data
    if isinstance(data, torch.Tensor):
        data = TensorDataset(data)
    if not isinstance(data, Dataset):
        raise TypeError(
            f"expected a torch Dataset, DataLoader or tensor, got {type(data).__name__}"
        )
    if len(data) == 0:
        raise ValueError("the dataset is empty: there is nothing to train on or evaluate")
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(data, batch_size=batch_size, shuffle=shuffle, generator=generator)


def _labels(dataset: Dataset) -> torch.Tensor:
    """All labels of ``dataset``, read from ``.labels``/``.targets`` or, failing that, the items."""
    for attr in ("labels", "targets"):
        if hasattr(dataset, attr):
            return torch.as_tensor(getattr(dataset, attr))
    if isinstance(dataset, torch.utils.data.Subset):
        return _labels(dataset.dataset)[torch.as_tensor(dataset.indices)]
    return torch.as_tensor([int(dataset[i][1]) for i in range(len(dataset))])


def _num_outputs(model: nn.Module, x: torch.Tensor) -> int:
    """How many logits the model produces (one eval-mode forward on two images, no grad)."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = model(x[:2])
    model.train(was_training)
    return out.shape[-1]


def _check_labels(model: nn.Module, data, device: torch.device) -> None:
    dataset = _as_dataset(data)
    if len(dataset) == 0:
        raise ValueError("the dataset is empty: there is nothing to train on")
    labels = _labels(dataset)
    x = dataset[0][0].unsqueeze(0).to(device)
    n_out = _num_outputs(model, x.expand(2, *x.shape[1:]))
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= n_out:
        raise ValueError(
            f"labels range over [{lo}, {hi}] but the model has {n_out} outputs (classes 0…{n_out - 1}); "
            f"replace its head with models.replace_head(model, num_classes={hi + 1})."
        )


def _make_optimizer(model: nn.Module, optimizer, lr: float, weight_decay: float):
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters: unfreeze something first")
    if optimizer in (None, "adam"):
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    raise ValueError(
        f"optimizer must be 'adam', 'adamw', 'sgd' or a torch Optimizer, got {optimizer!r}"
    )


def _call(callbacks: Sequence, hook: str, state: FitState) -> None:
    for cb in callbacks:
        fn = getattr(cb, hook, None)
        if fn is not None:
            fn(state)


# --- the loop --------------------------------------------------------------------------


def fit(
    model: nn.Module,
    train,
    *,
    epochs: int,
    lr: float = 1e-3,
    optimizer: str | torch.optim.Optimizer | None = None,
    batch_size: int = 128,
    val=None,
    device: torch.device | str | None = None,
    amp: bool | None = None,
    progress: bool = True,
    callbacks: Sequence | None = None,
    weight_decay: float = 0.0,
    seed: int | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = False,
) -> History:
    """Train ``model`` with cross-entropy on ``train`` for ``epochs`` epochs.

    Args:
        model: any classifier ``x → logits``; it is moved to ``device``.
        train: a Dataset of ``(x, y)`` (shuffled here, reproducibly) or a ready DataLoader.
        epochs: number of passes over ``train``.
        lr, weight_decay: for the optimizer ``fit`` builds (Adam unless ``optimizer`` says).
        optimizer: ``"adam"``, ``"adamw"``, ``"sgd"`` (momentum 0.9) or an Optimizer you built
            (e.g. from :func:`tlearn.freeze.param_groups`).
        val: optional Dataset/DataLoader evaluated after each epoch (``val_loss``, ``val_accuracy``).
        device: default :func:`tlearn.get_device` (GPU when there is one).
        amp: mixed precision on CUDA (default on there; always off on the CPU).
        callbacks: objects with any of ``on_fit_start/on_epoch_start/on_epoch_end(state)``.
        seed: seeds everything first, so the same seed gives the same weights.
        checkpoint: save model, optimizer and history here after every epoch (atomically).
        resume: with ``checkpoint``, continue from the epoch saved there, exactly.

    Returns:
        a :class:`History` with one record per epoch.
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if seed is not None:
        seed_everything(seed)
    device = torch.device(device) if device is not None else get_device()
    model.to(device)
    _check_labels(model, train, device)
    # Each epoch shuffles with its own generator, seeded from base_seed and the epoch number,
    # so a run resumed from a checkpoint sees exactly the batches it would have seen.
    base_seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
    opt = _make_optimizer(model, optimizer, lr, weight_decay)
    scaler = make_grad_scaler(device, amp)
    state = FitState(model=model, optimizer=opt, device=device, epochs=epochs)
    callbacks = list(callbacks or [])

    start_epoch = 0
    if checkpoint is not None and resume and Path(checkpoint).exists():
        extra = load_checkpoint(checkpoint, model, opt)
        start_epoch, base_seed = extra["epoch"] + 1, extra["base_seed"]
        state.history = History(extra["history"])
        torch.set_rng_state(extra["torch_rng"])

    _call(callbacks, "on_fit_start", state)
    steps_per_epoch = len(_loader(train, batch_size, shuffle=True, seed=0))
    bar = tqdm(
        total=steps_per_epoch * (epochs - start_epoch),
        disable=not progress,
        desc="fit",
        unit="batch",
        mininterval=PROGRESS_INTERVAL,
    )
    for epoch in range(start_epoch, epochs):
        state.epoch = epoch
        _call(callbacks, "on_epoch_start", state)
        loader = _loader(train, batch_size, shuffle=True, seed=base_seed + epoch)
        model.train()
        t0, loss_sum, correct, seen = time.perf_counter(), 0.0, 0, 0
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with autocast(device, amp):
                logits = model(x)
                loss = F.cross_entropy(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            loss_sum += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
            bar.update()
            # refresh=False: shown at the bar's next (throttled) redraw, not one message per batch
            bar.set_postfix(
                epoch=f"{epoch + 1}/{epochs}", loss=f"{loss_sum / seen:.3f}", refresh=False
            )
        record = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / seen,
            "train_accuracy": correct / seen,
        }
        if val is not None:
            scores = evaluate(model, val, batch_size=max(batch_size, 256), device=device, amp=amp)
            record.update(val_loss=scores["loss"], val_accuracy=scores["accuracy"])
        record["seconds"] = time.perf_counter() - t0
        state.history.append(record)
        bar.set_postfix({k: f"{v:.3f}" for k, v in record.items() if k != "epoch"})
        _call(callbacks, "on_epoch_end", state)
        if checkpoint is not None:
            save_checkpoint(
                checkpoint, model, opt, epoch=epoch, base_seed=base_seed,
                history=state.history.records, torch_rng=torch.get_rng_state(),
            )  # fmt: skip
        if state.stop:
            break
    bar.close()
    model.eval()
    return state.history


def _batches(model: nn.Module, data, batch_size: int, device, amp):
    """Yield (logits, labels or None) over ``data`` in eval mode, without autograd."""
    device = torch.device(device) if device is not None else get_device()
    was_training = model.training
    model.to(device).eval()
    try:
        with torch.inference_mode():
            for batch in _loader(data, batch_size, shuffle=False):
                x = batch[0] if isinstance(batch, (list, tuple)) else batch
                y = batch[1] if isinstance(batch, (list, tuple)) and len(batch) > 1 else None
                with autocast(device, amp):
                    logits = model(x.to(device)).float()
                yield logits, (y.to(device) if y is not None else None)
    finally:
        model.train(was_training)


def evaluate(
    model: nn.Module, data, *, batch_size: int = 256, device=None, amp: bool | None = None
) -> dict[str, float]:
    """Accuracy (fraction in [0, 1]) and mean cross-entropy of ``model`` on labelled ``data``."""
    loss_sum, correct, seen = 0.0, 0, 0
    for logits, y in _batches(model, data, batch_size, device, amp):
        if y is None:
            raise ValueError("evaluate needs labelled data: items of the form (x, y)")
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
        seen += len(y)
    if seen == 0:
        raise ValueError("the dataset is empty: there is nothing to evaluate")
    return {"accuracy": correct / seen, "loss": loss_sum / seen}


def predict(
    model: nn.Module,
    data,
    *,
    batch_size: int = 256,
    device=None,
    amp: bool | None = None,
    return_logits: bool = False,
) -> torch.Tensor:
    """Predicted classes (or logits, on the CPU) for every item of ``data``, in order."""
    outs = [
        logits.cpu() if return_logits else logits.argmax(1).cpu()
        for logits, _ in _batches(model, data, batch_size, device, amp)
    ]
    if not outs:
        raise ValueError("the dataset is empty: there is nothing to predict")
    return torch.cat(outs)


# --- checkpoints -----------------------------------------------------------------------


def save_checkpoint(
    path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None, **extra
) -> Path:
    """Save model (and optimizer) state plus ``extra`` values to ``path``, atomically.

    The bytes go to a temporary file in the same folder, are flushed to disk, and only then
    renamed over ``path`` (``os.replace`` is atomic): an interrupted save leaves the old
    checkpoint (or nothing), never half a file.
    """
    payload = {
        "format": CHECKPOINT_FORMAT,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "extra": extra,
    }
    return atomic_write(path, lambda f: torch.save(payload, f))


def _check_fits(model: nn.Module, state: dict, path: Path) -> None:
    """Raise CheckpointError unless ``state`` has exactly the model's keys and shapes."""
    problems = state_dict_mismatch(model, state)
    if problems:
        raise CheckpointError(
            f"checkpoint {path} does not fit this model ({'; '.join(problems)}); "
            "the model is unchanged."
        )


def load_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    map_location: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` into ``model`` (and ``optimizer``).

    Uses ``torch.load(weights_only=True)``: a checkpoint cannot run code. A missing, corrupt,
    truncated or mismatched file raises :class:`CheckpointError` (``FileNotFoundError`` when
    missing) and leaves the model unchanged. Returns the ``extra`` values saved with it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # pickle, zip and EOF errors all mean: not a readable checkpoint
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated ({type(e).__name__}: {e}); "
            "the model is unchanged. Delete it and train again."
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} is not a tlearn checkpoint (expected format {CHECKPOINT_FORMAT!r}); "
            "for a plain state dict use model.load_state_dict(torch.load(path, weights_only=True))."
        )
    _check_fits(model, payload["model"], path)
    model.load_state_dict(payload["model"])
    if optimizer is not None and payload.get("optimizer") is not None:
        optimizer.load_state_dict(payload["optimizer"])
    return payload.get("extra", {})
