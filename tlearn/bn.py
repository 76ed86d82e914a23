"""BatchNorm statistics: what a BatchNorm layer remembers about a domain, and re-estimating it.

A BatchNorm layer (Ioffe & Szegedy, ICML 2015) standardises each channel j, then rescales it:

    BN(x)_j = γ_j · (x_j − μ_j) / √(σ²_j + ε) + β_j

γ and β are learned weights. μ and σ² are *statistics*: in train mode the current batch's
mean and variance, folded into running averages (μ_run ← (1 − m)·μ_run + m·μ_batch); in eval
mode the running averages. The statistics describe the *domain* the network saw, which is why
they matter so much in transfer learning (Li et al., "Revisiting Batch Normalization For
Practical Domain Adaptation", ICLR workshop 2017).

The one vocabulary used across tlearn for what a BatchNorm layer does with its statistics:

* ``"batch"`` — normalise with the current batch's statistics and update the running ones
  (PyTorch's train mode);
* ``"frozen"`` — normalise with the stored running statistics, never updated;
* ``"target"`` — running statistics re-estimated on target images after training
  (AdaBN, Li et al. 2016: :func:`adabn`, :func:`estimate_bn_statistics`);

and, for training on two domains at once:

* ``"per_domain"`` — one forward pass per domain, each normalised by its own batch statistics;
* ``"joint"`` — one forward pass over the concatenated source + target batch.

>>> import torch
>>> from torch import nn
>>> net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
>>> target = 5 + torch.randn(64, 3)
>>> net = adabn(net, target, device="cpu", progress=False)
>>> bool(torch.allclose(net[1].running_mean, net[0](target).mean(0), atol=1e-5))
True
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from tlearn import checks, runtime
from tlearn.data.base import input_batches

__all__ = ["batchnorm_layers", "estimate_bn_statistics", "adabn"]


def _is_frozen_bn(module: nn.Module) -> bool:
    """A frozen BatchNorm (``tlearn.freeze.FrozenBatchNorm``): running statistics and a ``mode``
    of ``"frozen"`` or ``"batch"``. Recognised by what it has, so this module needs no import of
    ``tlearn.freeze`` (which builds on this one)."""
    return (
        not isinstance(module, _BatchNorm)
        and getattr(module, "mode", None) in ("frozen", "batch")
        and isinstance(getattr(module, "running_mean", None), torch.Tensor)
    )


def batchnorm_layers(model: nn.Module, *, include_frozen: bool = True) -> dict[str, nn.Module]:
    """The BatchNorm layers of ``model`` that keep running statistics, by qualified name.

    Ordinary BatchNorm (1d, 2d, 3d) and, unless ``include_frozen=False``, frozen ones
    (``tlearn.freeze.FrozenBatchNorm``).

    >>> from torch import nn
    >>> list(batchnorm_layers(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))))
    ['1']
    """
    return {
        name: m
        for name, m in model.named_modules()
        if (isinstance(m, _BatchNorm) and m.running_mean is not None)
        or (include_frozen and _is_frozen_bn(m))
    }


@torch.no_grad()
def estimate_bn_statistics(
    model: nn.Module,
    data: Any,
    *,
    batch_size: int = 256,
    include_frozen: bool = True,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> nn.Module:
    """Re-estimate every BatchNorm's running statistics on ``data``; weights stay untouched.

    Per channel j of every BN layer (Algorithm 1 of Li et al. 2016):

        μ_j = mean of x_j over every image of ``data`` (and every pixel, for BatchNorm2d)
        σ²_j = unbiased variance of the same values (PyTorch's convention for running_var)

    The sums are pooled over all batches in float64, so the first BN layer gets the exact
    population statistics whatever the batch size. The pass runs the BN layers in ``"batch"``
    mode (as ``torch.optim.swa_utils.update_bn`` does): each layer sees inputs that the layers
    before it normalised with *batch* statistics — close to the population's for batches of a
    few hundred images. Every other module (Dropout, stochastic depth …) stays in eval mode.
    A trailing batch of one image is merged into the batch before it. Under torchrun each
    process runs its shard of ``data`` and the sums are all-reduced, so every process ends
    with the same statistics.

    Args:
        model: the network (changed in place and returned, in its original train/eval modes).
        data: a Dataset (items ``x`` or ``(x, y)``; labels are never read), a DataLoader, or
            an N×C×H×W tensor.
        batch_size: images per forward pass (for a Dataset or tensor); at least 2.
        include_frozen: also re-estimate frozen layers (``tlearn.freeze.FrozenBatchNorm``);
            they stay frozen afterwards. With False they are left exactly as they were.
        device: where to run (default: where the model's parameters are).
        progress: a tqdm bar over the batches.

    Returns:
        ``model``. A model without BatchNorm layers is returned unchanged.
    """
    checks.module("model", model)
    checks.positive_int("batch_size", batch_size, minimum=2, why=" (BatchNorm needs 2+ samples)")
    layers = batchnorm_layers(model, include_frozen=include_frozen)
    if not layers:
        return model
    if device is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    model.to(device)
    rank, world = runtime.rank_and_world()
    shard = input_batches(data, batch_size, rank=rank, world_size=world)
    bar = runtime.progress_bar(
        shard, desc="BN statistics", enabled=progress and rank == 0, leave=False
    )
    sums = {
        n: [torch.zeros_like(m.running_mean, dtype=torch.float64) for _ in range(3)]
        for n, m in layers.items()
    }  # Σx, Σx², count
    hooks = [m.register_forward_pre_hook(_accumulate(sums[n])) for n, m in layers.items()]
    try:  # a refused batch: the running statistics stay as they were
        with runtime.restored_on_error(layers.values()):
            batches = _forward_in_batch_mode(model, layers, bar, device)
    finally:
        for hook in hooks:
            hook.remove()
    if world > 1:  # under torchrun each process saw its shard: add up every process's sums
        batches = _all_reduce(sums, batches)
    if batches == 0:
        raise ValueError("no batch of 2+ images in data: BatchNorm statistics need more images")
    for name, m in layers.items():
        _set_statistics(m, *sums[name], batches)
    return model


def _set_statistics(m: nn.Module, s: torch.Tensor, s2: torch.Tensor, n: torch.Tensor, batches):
    """Running mean and unbiased variance of BN layer ``m`` from its inputs' sums Σx, Σx² and
    count ``n`` per channel, over ``batches`` batches."""
    mean = s / n
    var = (s2 / n - mean * mean).clamp_min(0) * (n / (n - 1).clamp_min(1))  # unbiased
    m.running_mean.copy_(mean.to(m.running_mean.dtype))
    m.running_var.copy_(var.to(m.running_var.dtype))
    m.num_batches_tracked.fill_(batches)  # a BatchNorm with running statistics always has it


def _all_reduce(sums: dict[str, list[torch.Tensor]], batches: int) -> int:
    """Add up every torchrun process's ``sums`` (in place) and batch counts; the total count."""
    flat = [t for name in sums for t in sums[name]]
    count = torch.full((1,), float(batches), dtype=torch.float64, device=flat[0].device)
    for t in [*flat, count]:
        torch.distributed.all_reduce(t)  # in place: the sum over the processes
    return int(count.item())


def _accumulate(sums: list) -> Callable:
    """A forward pre-hook adding a BN layer's input to ``sums`` = [Σx, Σx², count] per channel,
    in float64 — 32 images at a time, so the float64 copy stays small beside the batch."""

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        for x in inputs[0].detach().split(32):
            x = x.double()
            dims = [0, *range(2, x.dim())]  # every axis except the channels
            sums[0] = sums[0] + x.sum(dims)
            sums[1] = sums[1] + (x * x).sum(dims)
            sums[2] = sums[2] + x.numel() // x.shape[1]

    return hook


@contextlib.contextmanager
def _batch_statistics(model: nn.Module, layers: dict[str, nn.Module]) -> Iterator[None]:
    """Everything in eval mode except the BN ``layers``, which normalise with batch statistics
    (frozen ones switched to ``"batch"``); every mode and frozen mode restored afterwards."""
    frozen_modes = {m: m.mode for m in layers.values() if _is_frozen_bn(m)}
    with runtime.eval_mode(model):
        try:
            for m in layers.values():
                m.train()  # normalise with batch statistics, as during training
                if m in frozen_modes:
                    m.mode = "batch"
            yield
        finally:
            for m, mode in frozen_modes.items():
                m.mode = mode


def _forward_in_batch_mode(
    model: nn.Module, layers: dict[str, nn.Module], batches: Iterable, device: torch.device | str
) -> int:
    """Run the image ``batches`` through ``model`` with the BN ``layers`` in ``"batch"`` mode and
    everything else in eval mode; restore every mode afterwards. A trailing batch of one image
    joins the batch before it. Returns the number of batches run."""
    count, pending = 0, None  # a batch is held back one step, so a single image can join it
    with _batch_statistics(model, layers):
        for x in batches:
            checks.images(x, "BatchNorm statistics", finite=True)  # before anything is stored
            checks.channels_match(model, x, "BatchNorm statistics")
            if pending is not None and len(x) < 2:
                pending = torch.cat([pending, x])
                continue
            if pending is not None:
                model(pending.to(device, non_blocking=True))
                count += 1
            pending = x
        if pending is not None and len(pending) >= 2:
            model(pending.to(device, non_blocking=True))
            count += 1
    return count


@torch.no_grad()
def adabn(
    model: nn.Module,
    target: Any,
    *,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> nn.Module:
    """AdaBN: set every BatchNorm layer's running statistics to the target domain's.

    Li, Wang, Shi, Liu & Hou, "Revisiting Batch Normalization For Practical Domain Adaptation"
    (ICLR workshop 2017; Pattern Recognition 2018). BatchNorm stores *domain* knowledge in its
    statistics (μ, σ²) and *task* knowledge in its weights (γ, β and everything else). Swap the
    source statistics for the target's and the network sees target activations standardised the
    way it saw source activations during training — the ``"target"`` mode of the vocabulary
    above. No labels, no gradients, no parameter changes: one pass over the unlabelled target
    set (:func:`estimate_bn_statistics`).

    Args:
        model: a trained network with BatchNorm layers (changed in place).
        target: target images — a Dataset (items ``x`` or ``(x, y)``; labels are ignored), a
            DataLoader, or an N×C×H×W tensor.
        batch_size: images per forward pass (Dataset/tensor input). Larger batches make the
            statistics that deeper layers see closer to the population's.
        device: where to run (default: ``tlearn.get_device()``); the model is moved there.
        progress: show a tqdm bar over the target batches.

    Returns:
        ``model`` in eval mode, with ``running_mean``/``running_var`` of each BN layer set to
        the target's per-channel mean and unbiased variance, ``num_batches_tracked`` to the
        number of batches seen. Weights, biases and ``requires_grad`` are untouched.
    """
    checks.module("model", model)
    if not batchnorm_layers(model):
        raise ValueError(
            f"{type(model).__name__} has no BatchNorm layer with running statistics; "
            "AdaBN has nothing to adapt (use CORAL, MMD or DANN instead)."
        )
    device = runtime.get_device(device)
    estimate_bn_statistics(model, target, batch_size=batch_size, device=device, progress=progress)
    return model.eval()
