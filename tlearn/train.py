"""Training, evaluation and checkpoints: one explicit loop a student can read in a minute.

The heart of this module is :func:`fit`, in the spirit of torchvision's reference scripts::

    for epoch in range(epochs):
        for x, y in batches(train, batch_size, shuffle=True):
            with autocast(device):             # bf16/fp16 on a GPU, a no-op on the CPU
                loss, logits, logs = objective(model, x, y, progress)   # cross-entropy
            optimizer.zero_grad(); scaler.scale(loss).backward()
            scaler.step(optimizer); scaler.update()

It is the library's only training loop: ``adapt.fit_adapt`` is ``fit`` with an objective
that adds an alignment term (and a target batch) to the cross-entropy.

**Several GPUs.** Started by ``torchrun --nproc_per_node=N script.py``, the same script runs
as N processes: ``fit`` sees torchrun's environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``),
joins the process group (:func:`distributed`), wraps model and objective in PyTorch's
``DistributedDataParallel`` (gradients averaged across processes at every step), gives each
process its own shard of every epoch's shuffled order, and sums the epoch's metrics over all
processes. ``batch_size`` is per process: the global batch is N × ``batch_size``. Only rank 0
shows progress and writes checkpoints.

Everything else — input checks, progress bars, validation, callbacks, checkpoints — sits
around that loop without hiding it. Only parameters with ``requires_grad=True`` are handed
to the optimizer ``fit`` builds, so frozen layers (see :mod:`tlearn.freeze`) never move.
"""

from __future__ import annotations

import atexit
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from tlearn import checks
from tlearn.bn import batchnorm_layers
from tlearn.data.base import batches
from tlearn.models.weights import state_dict_mismatch
from tlearn.runtime import (
    atomic_write,
    autocast,
    eval_mode,
    get_device,
    is_main_process,
    make_grad_scaler,
    progress_bar,
    seed_everything,
)

__all__ = [
    "History",
    "FitState",
    "fit",
    "fine_tune",
    "distributed",
    "same_on_every_rank",
    "classification_loss",
    "check_labels",
    "evaluate",
    "predict",
    "save_checkpoint",
    "load_checkpoint",
    "CheckpointError",
    "state_dict_mismatch",
]

# --- the loop --------------------------------------------------------------------------


def classification_loss(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, progress: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """The supervised objective: cross-entropy of the model's logits (in float32).

    An *objective* maps ``(model, x, y, progress)`` to ``(loss, logits of x, logs)``; ``fit``
    minimises it. ``adapt.fit_adapt`` passes one that adds an alignment term.
    """
    logits = model(x)
    return F.cross_entropy(logits.float(), y), logits, {}


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
    objective: Callable = classification_loss,
    lr_schedule: Callable[[float], float] | None = None,
    drop_last: bool = True,
) -> History:
    """Train ``model`` on ``train`` for ``epochs`` epochs (cross-entropy unless ``objective`` says).

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
        objective: ``objective(model, x, y, progress) -> (loss, logits, logs)`` with
            ``progress`` the fraction of training done, in [0, 1]; the numbers in ``logs``
            are averaged per epoch into the history. An ``nn.Module`` objective's trainable
            parameters are optimised too (a domain discriminator, say).
        lr_schedule: ``progress → factor``; each step every group's lr is its initial lr
            times the factor (DANN's annealing, for instance).
        drop_last: drop the last, incomplete batch of each epoch (the default, as fastai's
            training loaders do): with 1,257 images in batches of 8 the last batch would hold
            one image, on which BatchNorm cannot train. An epoch then sees ``n − n mod
            batch_size`` images, each epoch another random remainder left out. A dataset
            smaller than ``batch_size`` still gives one (smaller) batch. With
            ``drop_last=False`` every image is used each epoch, and a last batch of one image
            under BatchNorm is refused before training. A DataLoader keeps its own setting.

    Returns:
        a :class:`History` with one record per epoch.

    >>> from tlearn.data import DigitDataset
    >>> ds = DigitDataset(torch.rand(32, 1, 8, 8), torch.arange(32) % 2)
    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    >>> hist = fit(net, ds, epochs=2, batch_size=8, progress=False, seed=0, device="cpu")
    >>> len(hist), sorted(hist.last)
    (2, ['epoch', 'lr', 'seconds', 'train_accuracy', 'train_loss'])
    """
    _check_hyperparameters(epochs, lr, batch_size, weight_decay)
    checks.module("model", model)
    checks.boolean("drop_last", drop_last)
    if seed is not None:
        seed_everything(seed)
    device = get_device(device)
    rank, world = distributed(device)  # (0, 1) unless started by torchrun
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", torch.cuda.current_device())
    model.to(device)
    _check_inputs(model, train, device)
    # Each epoch shuffles with its own generator, seeded from base_seed and the epoch number,
    # so a run resumed from a checkpoint sees exactly the batches it would have seen.
    base_seed = same_on_every_rank(int(torch.randint(0, 2**31 - 1, (1,)).item()))
    params = [p for p in model.parameters() if p.requires_grad]
    if isinstance(objective, nn.Module):
        objective.to(device)
        params += [p for p in objective.parameters() if p.requires_grad]
    opt = _make_optimizer(params, optimizer, lr, weight_decay)
    initial_lrs = [group["lr"] for group in opt.param_groups]
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
    steps_per_epoch = _steps_per_epoch(train, batch_size, drop_last, world)
    _check_shards(train, batch_size, world, steps_per_epoch)
    _check_last_batch(model, train, batch_size, drop_last, world)
    training_step = _training_step(model, objective, device, world)
    total_steps, step = steps_per_epoch * epochs, steps_per_epoch * start_epoch
    bar = progress_bar(
        total=steps_per_epoch * (epochs - start_epoch),
        enabled=progress and rank == 0,
        desc=getattr(objective, "name", "fit"),
        unit="batch",
    )
    for epoch in range(start_epoch, epochs):
        state.epoch = epoch
        _call(callbacks, "on_epoch_start", state)
        model.train()
        if isinstance(objective, nn.Module):
            objective.train()
        generator = torch.Generator().manual_seed(base_seed + epoch)
        t0, sums, seen = time.perf_counter(), defaultdict(float), 0
        for x, y in batches(
            train, batch_size, shuffle=True, generator=generator, drop_last=drop_last,
            rank=rank, world_size=world,  # this process's shard of the epoch
        ):  # fmt: skip
            p = step / max(total_steps - 1, 1)
            if lr_schedule is not None:
                for group, lr0 in zip(opt.param_groups, initial_lrs, strict=True):
                    group["lr"] = lr0 * lr_schedule(p)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with autocast(device, amp):
                loss, logits, logs = training_step(x, y, p)  # objective(model, x, y, p)
            _check_finite(loss, x, epoch, step)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            n = len(y)
            sums["train_loss"] += loss.item() * n
            sums["train_accuracy"] += (logits.argmax(1) == y).sum().item()
            for key, value in logs.items():
                sums[key] += value * n
            seen, step = seen + n, step + 1
            bar.update()
            # refresh=False: shown at the bar's next (throttled) redraw, not one message per batch
            bar.set_postfix(
                epoch=f"{epoch + 1}/{epochs}",
                loss=f"{sums['train_loss'] / seen:.3f}",
                refresh=False,
            )
        if world > 1:
            sums, seen = _all_reduce_sums(sums, seen, device)
        record = {"epoch": epoch + 1, **{k: v / seen for k, v in sums.items()}}
        record["lr"] = opt.param_groups[0]["lr"]
        if val is not None:
            scores = evaluate(model, val, batch_size=max(batch_size, 256), device=device, amp=amp)
            record.update(val_loss=scores["loss"], val_accuracy=scores["accuracy"])
        record["seconds"] = time.perf_counter() - t0
        state.history.append(record)
        _call(callbacks, "on_epoch_end", state)
        if checkpoint is not None and is_main_process():
            save_checkpoint(
                checkpoint, model, opt, epoch=epoch, base_seed=base_seed,
                history=state.history.records, torch_rng=torch.get_rng_state(),
            )  # fmt: skip
        if state.stop:
            break
    bar.close()
    if world > 1:
        _average_buffers(model)
    model.eval()
    return state.history


def _steps_per_epoch(data, batch_size: int, drop_last: bool, world: int = 1) -> int:
    if isinstance(data, DataLoader):
        return len(data)
    shard = -(-len(_as_dataset(data)) // world)  # rows per process, padded as in data.shard
    full, ragged = divmod(shard, batch_size)
    return full + (1 if ragged and not (drop_last and full) else 0)


def _outputs(model: nn.Module, data, batch_size: int, device, amp):
    """Yield (logits, labels or None) over ``data`` in eval mode, without autograd."""
    device = get_device(device)
    model.to(device)
    with eval_mode(model), torch.inference_mode():  # each module's own mode comes back after
        loader = data if isinstance(data, DataLoader) else None
        for batch in loader or DataLoader(_as_dataset(data), batch_size=batch_size):
            x = batch[0] if isinstance(batch, (list, tuple)) else batch
            y = batch[1] if isinstance(batch, (list, tuple)) and len(batch) > 1 else None
            checks.images(x, "evaluate/predict")
            checks.channels_match(model, x, "evaluate/predict")
            with autocast(device, amp):
                logits = model(x.to(device)).float()
            yield logits, (y.to(device) if y is not None else None)


def evaluate(
    model: nn.Module, data, *, batch_size: int = 256, device=None, amp: bool | None = None
) -> dict[str, float]:
    """Accuracy (fraction in [0, 1]) and mean cross-entropy of ``model`` on labelled ``data``."""
    loss_sum, correct, seen = 0.0, 0, 0
    for logits, y in _outputs(model, data, batch_size, device, amp):
        if y is None:
            raise ValueError("evaluate needs labelled data: items of the form (x, y)")
        check_labels(y, logits.shape[1])
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
        for logits, _ in _outputs(model, data, batch_size, device, amp)
    ]
    if not outs:
        raise ValueError("the dataset is empty: there is nothing to predict")
    return torch.cat(outs)


# --- fine-tuning a pretrained network: LP-FT ------------------------------------------

FINE_TUNE_BN = ("batch", "frozen", "target")


def fine_tune(
    model: nn.Module,
    train,
    *,
    epochs: int = 5,
    head_epochs: int = 1,
    lr: float = 1e-3,
    head_lr_mult: float = 10.0,
    discriminative: bool = True,
    bn: str = "batch",
    l2_sp: float = 0.0,
    reestimate_bn: bool = True,
    batch_size: int = 128,
    callbacks: Sequence | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
    seed: int | None = None,
) -> History:
    r"""Fine-tune a pretrained ``model`` (new head already in place) in two stages, with Adam.

    1. **The head only** for ``head_epochs`` (every other block and BatchNorm frozen) at
       ``lr × head_lr_mult`` — linear probing, so that the body is never trained through a
       random head. Then fine-tuning distorts the pretrained features less (LP-FT: Kumar,
       Raghunathan, Jones, Ma & Liang, ICLR 2022); fastai's ``fine_tune`` does the same.
    2. **Everything** for ``epochs``, at discriminative rates (Howard & Ruder 2018): with
       ``discriminative=True`` one group per block (``models.blocks``), geometrically from
       ``lr / head_lr_mult`` (first block) to ``lr × head_lr_mult`` (head), fastai's ``slice``;
       otherwise the head at ``lr × head_lr_mult`` and the body at ``lr``.

    Args:
        model: a network :mod:`tlearn.models` knows (its head: ``models.head_name``); trained
            in place, returned in eval mode.
        train: labelled data, as for :func:`fit` (a DataLoader is used as it is, each stage).
        epochs, head_epochs: of each stage (≥ 0, not both 0). ``epochs=0`` is linear probing:
            the body stays frozen afterwards.
        lr, head_lr_mult: the body's learning rate, and how many times faster the head learns.
        bn: what BatchNorm does in stage 2 (:mod:`tlearn.bn`'s vocabulary): ``"batch"``
            (ordinary train mode), ``"frozen"`` (the pretrained statistics, fixed) or
            ``"target"`` (re-estimated on ``train``'s images first, then fixed).
        l2_sp: α of L2-SP (:func:`tlearn.freeze.l2_sp_penalty`) in stage 2: the body is pulled
            towards its pretrained weights, the head is not regularised (β = 0). 0: off.
        reestimate_bn: afterwards, re-estimate the running statistics of every BatchNorm
            layer that is not frozen, on ``train``'s images (running averages lag behind
            weights that moved fast in a few steps).
        batch_size, callbacks, device, progress, seed: as in :func:`fit` (each stage).

    Returns:
        The :class:`History` of both stages, each record with its ``stage`` (``"head"`` or
        ``"all"``) and the epochs numbered on through both.
    """
    from tlearn import freeze, models
    from tlearn.bn import estimate_bn_statistics
    from tlearn.data.base import as_dataset

    _check_fine_tune(epochs, head_epochs, head_lr_mult, bn, l2_sp)
    if seed is not None:
        seed_everything(seed)
    device = get_device(device)
    model.to(device)
    head = models.head_name(model)
    options = dict(batch_size=batch_size, callbacks=callbacks, device=device, progress=progress)
    rates = {head: lr * head_lr_mult, "*": lr}
    if bn == "target":
        estimate_bn_statistics(model, as_dataset(train), device=device)
    history = History()
    if head_epochs:  # stage 1: linear probing
        freeze.freeze_to(model, 1)
        opt = torch.optim.Adam(freeze.param_groups(model, rates))
        _append(history, fit(model, train, epochs=head_epochs, optimizer=opt, **options), "head")
    if epochs:  # stage 2: everything, at discriminative rates
        freeze.unfreeze(model)
        if bn != "batch":
            layers = set(batchnorm_layers(model))  # BatchNorm: fixed statistics, γ and β
            freeze.freeze(model, lambda name, m: name in layers)
        if discriminative:
            groups = freeze.param_groups(model, lr=slice(lr / head_lr_mult, lr * head_lr_mult))
        else:
            groups = freeze.param_groups(model, rates)
        objective = classification_loss
        if l2_sp:
            pretrained = {n: p.detach().clone() for n, p in model.named_parameters()}
            start = {n: w for n, w in pretrained.items() if not n.startswith(head + ".")}
            objective = _L2SPObjective(start, l2_sp)
        hist = fit(model, train, epochs=epochs, optimizer=torch.optim.Adam(groups),
                   objective=objective, **options)  # fmt: skip
        _append(history, hist, "all")
    if reestimate_bn:
        estimate_bn_statistics(model, as_dataset(train), include_frozen=False, device=device)
    model.eval()
    return history


class _L2SPObjective:
    """Cross-entropy + L2-SP (α on the pretrained body, β = 0 on the head): an objective for fit."""

    name = "fine_tune[l2_sp]"

    def __init__(self, start: dict[str, torch.Tensor], alpha: float):
        self.start, self.alpha = start, alpha

    def __call__(self, model: nn.Module, x, y, progress: float):
        from tlearn.freeze import l2_sp_penalty

        loss, logits, logs = classification_loss(model, x, y, progress)
        penalty = l2_sp_penalty(model, self.start, self.alpha, 0.0)
        return loss + penalty, logits, {"class_loss": loss.item(), "l2_sp": penalty.item()}


def _append(history: History, stage: History, name: str) -> None:
    """Add a stage's records to ``history``, numbering epochs on and naming the stage."""
    done = len(history)
    for record in stage.records:
        history.append({**record, "epoch": done + record["epoch"], "stage": name})


def _check_fine_tune(epochs, head_epochs, head_lr_mult, bn, l2_sp) -> None:
    checks.nonnegative_int("epochs", epochs)
    checks.nonnegative_int("head_epochs", head_epochs)
    if epochs + head_epochs == 0:
        raise ValueError("epochs and head_epochs are both 0: nothing would train")
    checks.positive_float("head_lr_mult", head_lr_mult)
    checks.one_of("bn", bn, FINE_TUNE_BN)
    checks.nonnegative_float("l2_sp (L2-SP's alpha)", l2_sp)


# --- what fit records: History, FitState ------------------------------------------

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
    if not isinstance(data, Dataset):
        raise TypeError(
            f"expected a torch Dataset, DataLoader or tensor, got {type(data).__name__}"
        )
    return data


def _labels(dataset: Dataset) -> torch.Tensor:
    """All labels of ``dataset``, read from ``.labels``/``.targets`` or, failing that, the items."""
    for attr in ("labels", "targets"):
        if hasattr(dataset, attr):
            return torch.as_tensor(getattr(dataset, attr))
    if isinstance(dataset, torch.utils.data.Subset):
        return _labels(dataset.dataset)[torch.as_tensor(dataset.indices)]
    items = [dataset[i] for i in range(len(dataset))]
    if not all(isinstance(it, (tuple, list)) and len(it) >= 2 for it in items):
        raise ValueError("training needs labelled data: a Dataset of (x, y) pairs")
    return torch.as_tensor([int(it[1]) for it in items])


def check_labels(labels: torch.Tensor, num_outputs: int, what: str = "labels") -> None:
    """Raise a clear ValueError unless every label is a class index in ``0 … num_outputs−1``."""
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0:
        raise ValueError(
            f"{what} must be class indices 0…K−1, found {lo}; map your classes to 0…K−1 "
            "(e.g. with torch.unique(labels, return_inverse=True))."
        )
    if hi >= num_outputs:
        raise ValueError(
            f"{what} range over [{lo}, {hi}] but the model has {num_outputs} outputs (classes "
            f"0…{num_outputs - 1}); replace its head: models.replace_head(model, num_classes={hi + 1})."
        )


def _check_inputs(model: nn.Module, data, device: torch.device) -> None:
    """Fail before training on what would fail (or silently mislead) later: empty data,
    labels the model cannot output, images that are not float."""
    dataset = _as_dataset(data)
    if len(dataset) == 0:
        raise ValueError("the dataset is empty: there is nothing to train on")
    if len(dataset) < 2:
        raise ValueError(
            f"the dataset holds {len(dataset)} image: training needs at least 2 "
            "(a batch needs statistics, a loss an average)"
        )
    x = dataset[0][0] if isinstance(dataset[0], (tuple, list)) else dataset[0]
    checks.images(x, "fit")
    checks.channels_match(model, x.unsqueeze(0), "fit")
    with eval_mode(model), torch.no_grad():
        n_out = model(x.unsqueeze(0).expand(2, *x.shape).to(device)).shape[-1]
    check_labels(_labels(dataset), n_out)


def _make_optimizer(params: list[nn.Parameter], optimizer, lr: float, weight_decay: float):
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer
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


def _check_hyperparameters(epochs, lr, batch_size, weight_decay) -> None:
    checks.positive_int("epochs", epochs)
    checks.positive_float("lr", lr, example="1e-3")
    checks.positive_int("batch_size", batch_size)
    checks.nonnegative_float("weight_decay", weight_decay)


def _check_last_batch(model: nn.Module, data, batch_size: int, drop_last: bool, world: int):
    """Refuse, before the first step, an epoch whose last batch would be one image under
    BatchNorm (each process's shard under torchrun; a DataLoader's own batching)."""
    if isinstance(data, DataLoader):
        if data.drop_last or data.batch_size is None:
            return
        n, size, hint = len(data.dataset), data.batch_size, " (DataLoader(..., drop_last=True))"
    elif drop_last:
        return
    else:
        n, size, hint = -(-len(_as_dataset(data)) // world), batch_size, ""
    checks.batch_of_one(model, n, size, "fit", hint)


def _check_finite(loss: torch.Tensor, x: torch.Tensor, epoch: int, step: int) -> None:
    if torch.isfinite(loss):
        return
    if not torch.isfinite(x).all():
        raise ValueError(
            f"the images of batch {step} (epoch {epoch + 1}) contain NaN or Inf values; "
            "clean the data (e.g. torch.nan_to_num) before training."
        )
    raise FloatingPointError(
        f"the loss became {loss.item()} at epoch {epoch + 1}, step {step}: training diverged; "
        "lower lr (or the alignment weight)."
    )


def _call(callbacks: Sequence, hook: str, state: FitState) -> None:
    for cb in callbacks:
        fn = getattr(cb, hook, None)
        if fn is not None:
            fn(state)


# --- several processes (torchrun) -------------------------------------------------------

#: Seconds a process waits for the others (to join, or in a collective) before it gives up
#: with an error: a rank that failed brings the rest down instead of leaving them waiting
#: forever. The environment variable ``TLEARN_DIST_TIMEOUT`` overrides it (read when used).
DIST_TIMEOUT = 600.0

#: What torchrun sets for every process besides ``WORLD_SIZE``.
_TORCHRUN_VARIABLES = ("RANK", "MASTER_ADDR", "MASTER_PORT")


def distributed(device: torch.device | str | None = None) -> tuple[int, int]:
    """``(rank, world_size)`` of this process: ``(0, 1)`` unless started by torchrun.

    Under torchrun (``WORLD_SIZE`` > 1) the first call joins the process group — NCCL when
    ``device`` is a GPU (each process on GPU ``LOCAL_RANK``), Gloo on the CPU — with a
    timeout of :data:`DIST_TIMEOUT` seconds (``TLEARN_DIST_TIMEOUT`` overrides it): a peer
    that never joins, or stops answering, ends the wait with an error after that long.
    Later calls only read it.

    >>> distributed("cpu")   # a plain Python process
    (0, 1)
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    world = checks.env_int("WORLD_SIZE", 1, minimum=1)
    if world <= 1:
        return 0, 1
    missing = [v for v in _TORCHRUN_VARIABLES if not os.environ.get(v)]
    if missing:
        raise RuntimeError(
            f"WORLD_SIZE={world} but {', '.join(missing)} not set: this process was not "
            f"started by torchrun. Start it with torchrun --nproc_per_node={world} script.py, "
            "or unset WORLD_SIZE to train in one process."
        )
    timeout = checks.env_float("TLEARN_DIST_TIMEOUT", DIST_TIMEOUT)
    cuda = get_device(device).type == "cuda"
    if cuda:
        torch.cuda.set_device(checks.env_int("LOCAL_RANK", 0))
    try:
        dist.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(seconds=timeout))
    except RuntimeError as e:  # torch's DistStoreError: a peer never joined
        if "timed out" not in str(e).lower() and "timeout" not in str(e).lower():
            raise
        raise RuntimeError(
            f"not all {world} processes joined within {timeout:g} s (TLEARN_DIST_TIMEOUT "
            "bounds the wait): a peer failed to start or crashed; check every process's "
            "output, or raise TLEARN_DIST_TIMEOUT for slow starts."
        ) from e
    atexit.register(lambda: dist.is_initialized() and dist.destroy_process_group())
    return dist.get_rank(), dist.get_world_size()


def same_on_every_rank(value: int) -> int:
    """Rank 0's ``value`` on every process (a shuffling seed: all ranks must cut one order)."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class _Step(nn.Module):
    """``objective(model, x, y, progress)`` as one module, so that DistributedDataParallel
    averages the gradients of the model *and* of a trainable objective (a discriminator)."""

    def __init__(self, model: nn.Module, objective: Callable):
        super().__init__()
        self.model, self.objective = model, objective

    def forward(self, x, y, progress):
        return self.objective(self.model, x, y, progress)


def _training_step(model: nn.Module, objective: Callable, device: torch.device, world: int):
    """What the loop calls: the objective, wrapped in DistributedDataParallel under torchrun."""
    if world == 1:
        return lambda x, y, p: objective(model, x, y, p)
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(_Step(model, objective), device_ids=ids)


def _all_reduce_sums(sums: dict, seen: int, device: torch.device) -> tuple[dict, int]:
    """Add every process's epoch sums (and image counts): the metrics of the global epoch."""
    keys = sorted(sums)
    packed = torch.tensor([sums[k] for k in keys] + [seen], dtype=torch.float64, device=device)
    dist.all_reduce(packed)
    return dict(zip(keys, packed[:-1].tolist(), strict=True)), int(packed[-1].item())


def _average_buffers(model: nn.Module) -> None:
    """Average floating buffers (BatchNorm running statistics) over the processes: each one
    updated its own from its own batches after DDP's last broadcast of rank 0's."""
    for buffer in model.buffers():
        if buffer.is_floating_point():
            dist.all_reduce(buffer)
            buffer /= dist.get_world_size()


def _check_shards(data, batch_size: int, world: int, steps: int) -> None:
    if (world > 1 and steps == 0) or world > _steps_per_epoch(data, batch_size, False, 1):
        n = len(_as_dataset(data))
        raise ValueError(
            f"{world} processes but {n} images make only "
            f"{_steps_per_epoch(data, batch_size, False, 1)} batch(es) of {batch_size}: every "
            "process needs at least one batch. Start fewer processes (torchrun "
            "--nproc_per_node), or use a smaller batch_size or more data."
        )


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
        # torch's own message suggests weights_only=False, which would let a file run code:
        # name the failure, never that advice.
        raise CheckpointError(
            f"checkpoint {path} is corrupt, truncated or not a checkpoint (torch.load raised "
            f"{type(e).__name__}); the model is unchanged. Delete the file and train again."
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
