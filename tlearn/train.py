"""Training and evaluation: one explicit loop, read top to bottom.

The heart of this module is :func:`fit`, in the spirit of torchvision's reference scripts::

    for epoch in range(epochs):
        for x, y in batches(train, batch_size, shuffle=True):
            with autocast(device):             # bf16/fp16 on a GPU, a no-op on the CPU
                loss, logits, logs = objective(model, x, y, progress)   # cross-entropy
            optimizer.zero_grad(); scaler.scale(loss).backward()
            scaler.step(optimizer); scaler.update()

In the code that is :func:`fit` (setup, then per epoch: one pass, validation, callbacks),
:func:`_one_pass` (the batches of an epoch) and :class:`_Step` (one optimizer step). It is the
library's only training loop: ``adapt.fit_adapt`` is ``fit`` with an objective that adds an
alignment term (and a target batch) to the cross-entropy, ``adapt.shot`` and ``adapt.tent``
are ``fit`` with objectives that need no labels.

Everything else sits around that loop without hiding it: input checks (below the loop),
several processes under torchrun (:mod:`tlearn.distributed`), checkpoints and exact resume
(:mod:`tlearn.checkpoint`). Only parameters with ``requires_grad=True`` are handed to the
optimizer ``fit`` builds, so frozen layers (see :mod:`tlearn.freeze`) never move.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from tlearn import checkpoint as ckpt
from tlearn import checks, freeze, models, runtime
from tlearn import distributed as ddp
from tlearn.bn import batchnorm_layers, estimate_bn_statistics
from tlearn.data.base import _split, as_dataset, batches, data_length
from tlearn.freeze import l2_sp_penalty

__all__ = [
    "History", "FitState", "fit", "fine_tune", "classification_loss", "check_labels",
    "evaluate", "predict",
]  # fmt: skip

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


# fmt: off
def fit(
    model: nn.Module, train, *, epochs: int, batch_size: int = 128, drop_last: bool = True,
    objective: Callable = classification_loss, val=None, callbacks: Sequence | None = None,
    optimizer: str | torch.optim.Optimizer | None = None, lr: float = 1e-3,
    weight_decay: float = 0.0, lr_schedule: Callable[[float], float] | None = None,
    device: torch.device | str | None = None, amp: bool | None = None, progress: bool = True,
    seed: int | None = None, checkpoint: str | Path | None = None, resume: bool = False,
) -> History:
    # fmt: on
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
    _check_arguments(model, epochs, lr, batch_size, weight_decay, drop_last)
    if seed is not None:
        runtime.seed_everything(seed)
    rank, world, device = ddp.process_device(device)  # (0, 1, device) unless under torchrun
    model.to(device)
    _check_inputs(model, train, device, batch_size, drop_last, world)
    # Each epoch shuffles with its own generator, seeded from state.seed and the epoch number,
    # so a run resumed from a checkpoint sees exactly the batches it would have seen.
    base_seed = ddp.same_on_every_rank(int(torch.randint(0, 2**31 - 1, (1,)).item()))
    opt = _make_optimizer(_trainable(model, objective, device), optimizer, lr, weight_decay)
    state = FitState(model=model, optimizer=opt, device=device, epochs=epochs, seed=base_seed)
    if checkpoint is not None and resume:
        ckpt.load_progress(checkpoint, state)  # continue where the checkpoint left off, exactly
    start_epoch, callbacks = state.epoch, list(callbacks or [])
    _call(callbacks, "on_fit_start", state)
    steps = _steps_per_epoch(train, batch_size, drop_last, world)
    step = _Step(ddp.ddp_step(model, objective, device, world), opt, runtime.make_grad_scaler(device, amp),
                 device, amp, lr_schedule, steps * epochs, steps * start_epoch, world)  # fmt: skip
    bar = runtime.progress_bar(total=steps * (epochs - start_epoch), enabled=progress and rank == 0,
                       desc=getattr(objective, "name", "fit"), unit="batch")  # fmt: skip
    for epoch in range(start_epoch, epochs):
        state.epoch, t0 = epoch, time.perf_counter()
        model.train()  # a callback's on_epoch_start may keep some layers in eval mode
        if isinstance(objective, nn.Module):
            objective.train()
        _call(callbacks, "on_epoch_start", state)
        generator = torch.Generator().manual_seed(state.seed + epoch)
        shuffled = batches(train, batch_size, shuffle=True, generator=generator,
                           drop_last=drop_last, rank=rank, world_size=world)  # fmt: skip
        record = {"epoch": epoch + 1, **_one_pass(step, shuffled, bar, f"{epoch + 1}/{epochs}")}
        if val is not None:
            scores = evaluate(model, val, batch_size=max(batch_size, 256), device=device, amp=amp)
            record.update(val_loss=scores["loss"], val_accuracy=scores["accuracy"])
        state.history.append({**record, "seconds": time.perf_counter() - t0})
        _call(callbacks, "on_epoch_end", state)
        if checkpoint is not None:
            ckpt.save_progress(checkpoint, state)  # model, optimizer, history, seeds: rank 0 only
        if state.stop:
            break
    bar.close()
    if world > 1:
        ddp.average_buffers(model)  # BatchNorm statistics: the mean over the processes
    model.eval()
    return state.history


def _one_pass(step: _Step, batches: Iterable, bar, epoch: str) -> dict[str, float]:
    """One epoch: a training step on every batch. Returns the epoch's means of the loss, the
    accuracy and the objective's logs (over every process, under torchrun)."""
    sums, seen = defaultdict(float), 0
    for x, y in batches:
        x, y = x.to(step.device, non_blocking=True), y.to(step.device, non_blocking=True)
        loss, logits, logs = step(x, y, epoch)  # the objective, its gradient, one update
        n = len(y)
        sums["train_loss"] += loss.item() * n
        sums["train_accuracy"] += (logits.argmax(1) == y).sum().item()
        for key, value in logs.items():
            sums[key] += value * n
        seen += n
        bar.update()  # refresh=False: shown at the bar's next (throttled) redraw
        bar.set_postfix(epoch=epoch, loss=f"{sums['train_loss'] / seen:.3f}", refresh=False)
    if step.world > 1:  # the global epoch: every process's sums added up
        sums, seen = ddp.all_reduce_sums(sums, seen, step.device)
    means = {key: total / seen for key, total in sums.items()}
    return {**means, "lr": step.optimizer.param_groups[0]["lr"]}


@dataclass
class _Step:
    """One training step: the objective's loss (under autocast), its gradient, one update."""

    objective: Callable  # (x, y, progress) → (loss, logits, logs); DDP-wrapped under torchrun
    optimizer: torch.optim.Optimizer
    scaler: Any  # torch's GradScaler: scales fp16 losses on a GPU; a no-op otherwise
    device: torch.device
    amp: bool | None
    lr_schedule: Callable[[float], float] | None
    total: int  # steps in the whole run
    done: int = 0  # steps taken (a resumed run starts at its epoch's first)
    world: int = 1  # processes (torchrun)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, epoch: str):
        progress = self.done / max(self.total - 1, 1)  # the fraction of training done
        if self.lr_schedule is not None:
            for group in self.optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])  # kept as torch's LR schedulers do
                group["lr"] = group["initial_lr"] * self.lr_schedule(progress)
        with runtime.autocast(self.device, self.amp):
            loss, logits, logs = self.objective(x, y, progress)
        _check_finite(loss, x, epoch, self.done)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.done += 1
        return loss, logits, logs


def _steps_per_epoch(data, batch_size: int, drop_last: bool, world: int = 1) -> int:
    if isinstance(data, DataLoader):
        return len(data)
    shard = -(-data_length(data) // world)  # rows per process, padded as in data.shard
    full, ragged = divmod(shard, batch_size)
    return full + (1 if ragged and not (drop_last and full) else 0)


def _trainable(model: nn.Module, objective: Callable, device: torch.device) -> list:
    """What the optimizer ``fit`` builds trains: the parameters with ``requires_grad`` of the
    model and of an ``nn.Module`` objective (a domain discriminator, moved to ``device``)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if isinstance(objective, nn.Module):
        objective.to(device)
        params += [p for p in objective.parameters() if p.requires_grad]
    return params


def _outputs(model: nn.Module, data, batch_size: int, device, amp):
    """Yield (logits, labels or None) over ``data`` in eval mode, without autograd."""
    device = runtime.get_device(device)
    model.to(device)
    with runtime.eval_mode(model), torch.inference_mode():  # each module's own mode comes back after
        data_length(data, "the data to evaluate or predict")  # a Dataset, DataLoader or tensor
        loader = data if isinstance(data, DataLoader) else DataLoader(data, batch_size=batch_size)
        for batch in loader:
            x, y = _split(batch, None)  # (x, y), or (x, None) for unlabelled items
            checks.images(x, "evaluate/predict")
            checks.channels_match(model, x, "evaluate/predict")
            with runtime.autocast(device, amp):
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
    if seen == 0:  # (a DataLoader that drops its only, ragged batch)
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
    _check_fine_tune(epochs, head_epochs, head_lr_mult, bn, l2_sp)
    if seed is not None:
        runtime.seed_everything(seed)
    device = runtime.get_device(device)
    model.to(device)
    head = models.head_name(model)
    options = dict(batch_size=batch_size, callbacks=callbacks, device=device, progress=progress)
    if bn == "target":
        estimate_bn_statistics(model, as_dataset(train), device=device)
    history = History()
    if head_epochs:  # stage 1: linear probing
        freeze.freeze_to(model, 1)
        opt = torch.optim.Adam(freeze.param_groups(model, {head: lr * head_lr_mult, "*": lr}))
        _append(history, fit(model, train, epochs=head_epochs, optimizer=opt, **options), "head")
    if epochs:  # stage 2: everything, at discriminative rates
        opt, objective = _all_layers(model, head, lr, head_lr_mult, discriminative, bn, l2_sp)
        hist = fit(model, train, epochs=epochs, optimizer=opt, objective=objective, **options)
        _append(history, hist, "all")
    if reestimate_bn:
        estimate_bn_statistics(model, as_dataset(train), include_frozen=False, device=device)
    model.eval()
    return history


def _all_layers(model, head, lr, head_lr_mult, discriminative, bn, l2_sp):
    """Stage 2 of :func:`fine_tune`: every layer trainable (BatchNorm's statistics, γ and β
    fixed unless ``bn="batch"``), Adam at discriminative rates, cross-entropy (+ L2-SP)."""
    freeze.unfreeze(model)
    if bn != "batch":
        layers = set(batchnorm_layers(model))
        freeze.freeze(model, lambda name, m: name in layers)
    if discriminative:
        groups = freeze.discriminative_groups(model, slice(lr / head_lr_mult, lr * head_lr_mult))
    else:
        groups = freeze.param_groups(model, {head: lr * head_lr_mult, "*": lr})
    objective = _L2SPObjective(model, head, l2_sp) if l2_sp else classification_loss
    return torch.optim.Adam(groups), objective


class _L2SPObjective:
    """Cross-entropy + L2-SP (α on the pretrained body, β = 0 on the head): an objective for fit.
    The body's starting point is its weights now, the head (``head``) is left out."""

    name = "fine_tune[l2_sp]"

    def __init__(self, model: nn.Module, head: str, alpha: float):
        params = model.named_parameters()
        self.start = {n: p.detach().clone() for n, p in params if not n.startswith(head + ".")}
        self.alpha = alpha

    def __call__(self, model: nn.Module, x, y, progress: float):
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


class History:
    """Per-epoch records of a training run: ``hist["val_accuracy"]`` → list, ``hist.last``."""

    def __init__(self, records: Iterable[dict] | None = None):
        self.records: list[dict[str, Any]] = [dict(r) for r in records or []]

    def append(self, record: dict[str, Any]) -> None:
        self.records.append(dict(record))

    def __getitem__(self, key: str) -> list:
        if not any(key in r for r in self.records):
            raise KeyError(f"no {key!r} in this history; it has {self.keys()}")
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
    seed: int = 0  # the run's shuffling seed: epoch e shuffles with seed + e
    epoch: int = 0
    history: History = field(default_factory=History)
    stop: bool = False


# --- input handling --------------------------------------------------------------------


def _labels(dataset: Dataset) -> torch.Tensor:
    """All labels of ``dataset``, read from ``.labels``/``.targets`` or, failing that, from a
    pass over its items (which must be ``(x, y)`` pairs)."""
    for attr in ("labels", "targets"):
        if hasattr(dataset, attr):
            return torch.as_tensor(getattr(dataset, attr))
    if isinstance(dataset, torch.utils.data.Subset):
        return _labels(dataset.dataset)[torch.as_tensor(dataset.indices)]
    return torch.cat([y for _, y in batches(dataset, 256)])


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


def _check_inputs(model: nn.Module, data, device, batch_size: int, drop_last: bool, world: int):
    """Fail before training on what would fail (or silently mislead) later: empty data,
    labels the model cannot output, images that are not float, a last batch of one image
    under BatchNorm, more processes than batches."""
    n, dataset = data_length(data, "the training data"), as_dataset(data)
    if n < 2:
        raise ValueError(
            f"the dataset holds {n} image: training needs at least 2 "
            "(a batch needs statistics, a loss an average)"
        )
    x = dataset[0][0] if isinstance(dataset[0], (tuple, list)) else dataset[0]
    checks.images(x, "fit")
    checks.channels_match(model, x.unsqueeze(0), "fit")
    with runtime.eval_mode(model), torch.no_grad():
        n_out = model(x.unsqueeze(0).expand(2, *x.shape).to(device)).shape[-1]
    check_labels(_labels(dataset), n_out)
    _check_last_batch(model, data, batch_size, drop_last, world)
    ddp.check_shards(world, _steps_per_epoch(data, batch_size, False), n, batch_size)


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


def _check_arguments(model, epochs, lr, batch_size, weight_decay, drop_last) -> None:
    checks.module("model", model)
    checks.positive_int("epochs", epochs)
    checks.positive_float("lr", lr, example="1e-3")
    checks.positive_int("batch_size", batch_size)
    checks.nonnegative_float("weight_decay", weight_decay)
    checks.boolean("drop_last", drop_last)


def _check_last_batch(model: nn.Module, data, batch_size: int, drop_last: bool, world: int):
    """Refuse, before the first step, an epoch whose last batch would be one image under
    BatchNorm (each process's shard under torchrun; a DataLoader's own batching)."""
    if isinstance(data, DataLoader) and not (data.drop_last or data.batch_size is None):
        hint = " (DataLoader(..., drop_last=True))"
        checks.batch_of_one(model, len(data.dataset), data.batch_size, "fit", hint)
    elif not isinstance(data, DataLoader) and not drop_last:
        checks.batch_of_one(model, -(-data_length(data) // world), batch_size, "fit")


def _check_finite(loss: torch.Tensor, x: torch.Tensor, epoch: str, step: int) -> None:
    if torch.isfinite(loss):
        return
    if not torch.isfinite(x).all():
        raise ValueError(
            f"the images of batch {step} (epoch {epoch}) contain NaN or Inf values; "
            "clean the data (e.g. torch.nan_to_num) before training."
        )
    raise FloatingPointError(
        f"the loss became {loss.item()} at epoch {epoch}, step {step}: training diverged; "
        "lower lr (or the alignment weight)."
    )


def _call(callbacks: Sequence, hook: str, state: FitState) -> None:
    for cb in callbacks:
        fn = getattr(cb, hook, None)
        if fn is not None:
            fn(state)
