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

Here that loop is ``train.fit``'s, as for every method: :func:`tent` hands it the objective
(the entropy, no labels), the parameters (only γ, β: :func:`train_only`), the modes (only
BatchNorm in train mode) and the stream of batches (each pass a new order, one generator).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.data import DataLoader, Dataset, Sampler

from tlearn import checks, runtime, train
from tlearn.bn import estimate_bn_statistics
from tlearn.data.base import QUIET_GENERATOR, _input_tensor, as_dataset, data_length, inputs_of

__all__ = ["entropy", "tent", "OPTIMIZERS", "TargetImages", "train_only"]

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
    checks.matrix(logits, "the logits of entropy", "class logits of shape (N, C)")
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
        target: target images — a Dataset (items ``x`` or ``(x, y)``), a DataLoader (its
            dataset, in batches of its ``batch_size``), or an N×C×H×W tensor. **Its labels
            are never read.**
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
    layers = _adaptable_batchnorms(model)
    data = TargetImages(target, "TENT")  # labels all 0, never used: fit reads (x, y) pairs
    if isinstance(target, DataLoader) and target.batch_size is not None:
        batch_size = target.batch_size
    stream = _OnlineStream(len(data), batch_size, shuffle)
    if len(stream) == 0:
        raise ValueError(
            "tent: every target batch held a single image (a DataLoader with batch_size=1?); "
            "BatchNorm needs 2+ images per batch. The model is unchanged."
        )
    device = runtime.get_device(device)
    affine = [p for m in layers for p in (m.weight, m.bias) if p is not None]
    # A refused batch leaves the model as it was: BatchNorm state, modes, requires_grad.
    with runtime.restored_on_error(layers), train_only(model, affine), runtime.eval_mode(model):
        train.fit(model, DataLoader(data, batch_sampler=stream, generator=QUIET_GENERATOR),
                  epochs=steps, lr=lr, optimizer=optimizer, device=device, amp=False,
                  progress=progress, objective=_EntropyObjective(),
                  callbacks=[stream, _OnlyBatchNormTrains(layers)])  # fmt: skip
    estimate_bn_statistics(model, target, include_frozen=False, device=device)
    return model.eval()


class _EntropyObjective:
    """TENT's objective for ``train.fit``: the mean prediction :func:`entropy` (no labels)."""

    name = "TENT"

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, progress: float):
        logits = model(x)
        return entropy(logits), logits, {}


class _OnlyBatchNormTrains:
    """A ``fit`` callback: each epoch, every module in eval mode (Dropout & co. off) but the
    adapted BatchNorm layers, which normalise with the current batch's statistics."""

    def __init__(self, layers: list[_BatchNorm]):
        self.layers = layers

    def on_epoch_start(self, state: Any) -> None:
        state.model.eval()
        for m in self.layers:
            m.train()


class _OnlineStream(Sampler):
    """TENT's batches of target indices: each pass over the target in a new random order, all
    passes drawn from one generator (the paper's stream runs on; ``fit`` alone would reseed
    each epoch), seeded with ``fit``'s own seed. A batch of one image (no statistics) is left
    out. ``shuffle=False``: the stored order."""

    def __init__(self, n: int, batch_size: int, shuffle: bool):
        self.n, self.batch_size, self.shuffle = n, batch_size, shuffle
        self.generator = torch.Generator()

    def on_fit_start(self, state: Any) -> None:
        self.generator.manual_seed(state.seed)

    def __iter__(self) -> Iterator[list[int]]:
        n, generator = self.n, self.generator
        order = torch.randperm(n, generator=generator) if self.shuffle else torch.arange(n)
        return (idx.tolist() for idx in order.split(self.batch_size) if len(idx) > 1)

    def __len__(self) -> int:
        full, rest = divmod(self.n, self.batch_size)  # batches of one image are left out
        return (full if self.batch_size > 1 else 0) + (rest > 1)


class TargetImages(Dataset):
    """The target's images as ``(x, label)`` pairs that ``train.fit`` can read, the labels
    those in ``labels``: zeros, until a method writes pseudo-labels there (``adapt.shot``).
    The target's own labels are never read. ``method`` (its name) needs at least 2 images."""

    def __init__(self, target: Any, method: str):
        self.target = as_dataset(target)
        self.images = _input_tensor(self.target)  # in memory: fit's batching slices it (else None)
        self.labels = torch.zeros(data_length(target, "target"), dtype=torch.long)
        if len(self.labels) < 2:
            raise ValueError(
                f"{method} needs a target with at least 2 images (a batch has statistics)"
            )

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return inputs_of(self.target[i]), self.labels[i]


@contextlib.contextmanager
def train_only(model: nn.Module, params: Iterable[nn.Parameter]) -> Iterator[nn.Module]:
    """Within the block only ``params`` have ``requires_grad=True`` (so only they reach the
    optimizer ``train.fit`` builds); afterwards every parameter of ``model`` has its own
    ``requires_grad`` back, and no gradient."""
    chosen = set(params)
    flags = {p: p.requires_grad for p in model.parameters()}
    for p in flags:
        p.requires_grad_(p in chosen)
    try:
        yield model
    finally:
        for p, flag in flags.items():
            p.requires_grad_(flag)
            p.grad = None


# --------------------------------------------------------------------------- checks
def _adaptable_batchnorms(model: nn.Module) -> list[_BatchNorm]:
    """The ordinary BatchNorm layers with affine parameters: what TENT adapts."""
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
