r"""TENT: test-time adaptation by entropy minimisation — no source data, no labels.

Wang, Shelhamer, Liu, Olshausen & Darrell, "Tent: Fully Test-Time Adaptation by Entropy
Minimization", ICLR 2021. All TENT has is the trained model and a stream of unlabelled
target batches. For each batch it

1. normalises every BatchNorm layer with **the batch's own statistics** (as AdaBN does, but
   from one batch at a time);
2. predicts, :math:`\hat y = \mathrm{softmax}(\text{logits})`;
3. takes one gradient step on the mean **prediction entropy**

.. math::  H(\hat y) = -\frac1N \sum_{n=1}^N \sum_{c=1}^C \hat y_{nc} \log \hat y_{nc}

updating **only the BatchNorm affine parameters** :math:`\gamma, \beta` (a per-channel
scale and shift: less than 1% of the weights), every other parameter frozen. Confident
predictions on the target are the signal; restricting the update to a feature-wise affine
transformation keeps it from drifting far from the source model. Written out::

    for x in target_batches:                      # one pass, online
        logits = model(x)                         # BN: batch statistics; the prediction
        loss = entropy(logits)                    # -(p * log p).sum(1).mean()
        loss.backward(); optimizer.step(); optimizer.zero_grad()   # only γ, β move

AdaBN is TENT without the entropy step. The paper uses Adam (lr 1e-3) on small networks and
SGD with momentum on ImageNet.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from tlearn import checks, runtime
from tlearn.bn import estimate_bn_statistics
from tlearn.data.base import data_length, input_batches

__all__ = ["entropy", "tent", "OPTIMIZERS"]

OPTIMIZERS = ("adam", "sgd")


def entropy(logits: Tensor) -> Tensor:
    r"""Mean prediction entropy :math:`-\frac1N \sum_n \sum_c p_{nc} \log p_{nc}`, in nats.

    ``logits`` ``(N, C)`` → scalar; :math:`p = \mathrm{softmax}(\text{logits})`, computed
    with ``log_softmax`` so confident rows do not give ``0 · log 0 = nan``. Zero for one-hot
    predictions, :math:`\log C` for uniform ones.

    Example:
        >>> entropy(torch.tensor([[0.0, 0.0], [100.0, 0.0]]))  # (log 2 + 0) / 2
        tensor(0.3466)
    """
    if not isinstance(logits, Tensor) or logits.dim() != 2 or logits.shape[1] < 1:
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(f"entropy expects class logits of shape (N, C), got {shape}")
    log_p = F.log_softmax(logits.float(), dim=1)
    return -(log_p.exp() * log_p).sum(1).mean()


def tent(
    model: nn.Module,
    target: Any,
    *,
    steps: int = 1,
    lr: float = 1e-3,
    batch_size: int = 64,
    optimizer: str = "adam",
    shuffle: bool = True,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> nn.Module:
    """Adapt ``model`` to ``target`` at test time with TENT (Wang et al., ICLR 2021).

    Online: each target batch is predicted with BatchNorm in batch-statistics mode, then used
    for one optimiser step on the mean prediction :func:`entropy`. Only the BatchNorm affine
    parameters γ, β move; every other parameter is frozen for the duration (its
    ``requires_grad`` restored afterwards) and Dropout and the like run in eval mode.

    **After TENT, eval mode uses target statistics.** The paper scores the online
    predictions, each made with its own batch's statistics. A model you evaluate afterwards
    (``train.evaluate``, ``train.predict``) runs in eval mode on stored running statistics,
    so, as a last step, those are re-estimated on the whole target with the adapted
    parameters (:func:`tlearn.bn.estimate_bn_statistics`, AdaBN's estimate): eval-mode
    predictions then use population statistics — close to what large batches see, and
    independent of which images share a batch. ``tent`` is therefore "AdaBN + adapted γ, β".

    Args:
        model: a trained classifier returning class logits ``(N, C)``, with at least one
            BatchNorm layer that has affine parameters (changed in place and returned).
            Frozen BatchNorm layers (``tlearn.freeze.FrozenBatchNorm``) are left alone.
        target: target images — a Dataset (items ``x`` or ``(x, y)``), a DataLoader, or an
            N×C×H×W tensor. **Its labels are never read.**
        steps: passes over the target (the paper: 1, online).
        lr: learning rate (the paper: 1e-3 with Adam for small networks).
        batch_size: images per batch (Dataset/tensor input); at least 2, since BatchNorm
            normalises with the batch's statistics. A trailing batch of one image is skipped.
        optimizer: ``"adam"`` or ``"sgd"`` (momentum 0.9, as the paper on ImageNet).
        shuffle: visit the target in a random order (from the global RNG: seed first), so a
            target stored class by class still gives mixed batches. False: the stored order.
        device: where to run (default: ``tlearn.get_device()``); the model is moved there.
        progress: a tqdm bar over the batches.

    Returns:
        ``model`` in eval mode, BatchNorm γ, β adapted and running statistics re-estimated
        on ``target``; every other parameter bit-identical.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
        >>> before = net[0].weight.clone()
        >>> net = tent(net, torch.randn(64, 4) + 2, batch_size=16, device="cpu", progress=False)
        >>> torch.equal(net[0].weight, before), net[1].weight.requires_grad, net.training
        (True, True, False)
    """
    _check_arguments(model, steps, lr, batch_size, optimizer)
    if data_length(target, "target") < 2:
        raise ValueError("TENT needs a target with at least 2 images (a batch has statistics)")
    layers = _adaptable_batchnorms(model)
    device = runtime.get_device(device)
    model.to(device)
    affine = [p for m in layers for p in (m.weight, m.bias) if p is not None]
    requires_grad = {p: p.requires_grad for p in model.parameters()}
    saved = {m: {k: v.clone() for k, v in m.state_dict().items()} for m in layers}
    trainable = set(affine)
    try:
        for p in model.parameters():
            p.requires_grad_(p in trainable)
        with runtime.eval_mode(model):  # Dropout & co. off …
            for m in layers:
                m.train()  # … BatchNorm normalises with the current batch's statistics
            _adapt(
                model, target, affine, steps, lr, batch_size, optimizer, shuffle, device, progress
            )
    except BaseException:
        for m, state in saved.items():  # a refused batch leaves the model as it was
            m.load_state_dict(state)
        raise
    finally:
        for p, flag in requires_grad.items():
            p.requires_grad_(flag)
            p.grad = None
    estimate_bn_statistics(model, target, include_frozen=False, device=device)
    return model.eval()


def _adapt(
    model: nn.Module,
    target: Any,
    params: list[nn.Parameter],
    steps: int,
    lr: float,
    batch_size: int,
    optimizer: str,
    shuffle: bool,
    device: torch.device,
    progress: bool,
) -> None:
    """The online loop: predict each batch, then one entropy step on γ, β."""
    from tqdm.auto import tqdm

    if optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(params, lr=lr)
    else:
        opt = torch.optim.SGD(params, lr=lr, momentum=0.9)
    generator = torch.Generator().manual_seed(int(torch.randint(0, 2**31 - 1, ()).item()))
    updates = 0
    for _ in range(steps):
        stream = input_batches(target, batch_size, shuffle=shuffle, generator=generator)
        for x in tqdm(stream, desc="TENT", disable=not progress, leave=False):
            checks.images(x, "tent (target)", finite=True)
            checks.channels_match(model, x, "tent (target)")
            if len(x) < 2:  # one image has no batch statistics
                continue
            loss = entropy(model(x.to(device, non_blocking=True)))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            updates += 1
    if updates == 0:
        raise ValueError(
            "tent: every target batch held a single image (a DataLoader with batch_size=1?); "
            "BatchNorm needs 2+ images per batch. The model is unchanged."
        )


# --------------------------------------------------------------------------- checks
def _adaptable_batchnorms(model: nn.Module) -> list[_BatchNorm]:
    """The ordinary BatchNorm layers with affine parameters: what TENT adapts."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    layers = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.affine]
    if not layers:
        raise ValueError(
            f"{type(model).__name__} has no BatchNorm layer with affine parameters (γ, β); "
            "TENT adapts only those, so it has nothing to adapt. Use a model with BatchNorm "
            "(e.g. models.DigitNet), or an alignment method that trains on source data."
        )
    return layers


def _check_arguments(model: Any, steps: int, lr: float, batch_size: int, optimizer: str) -> None:
    checks.module("model", model)
    checks.positive_int("steps", steps, why=" (passes over the target)")
    checks.positive_float("lr", lr, example="1e-3, the paper's")
    checks.positive_int(
        "batch_size", batch_size, minimum=2, why=" (BatchNorm needs a batch's statistics)"
    )
    checks.one_of("optimizer", optimizer, OPTIMIZERS)
