"""Freezing: which parameters learn, which BatchNorm statistics move, and at what learning rate.

Fine-tuning a pretrained network is mostly a decision about *what may change*:

* **freeze** a block → its parameters get ``requires_grad=False`` (autograd skips their
  backward pass, optimizers skip them because their ``.grad`` stays ``None``) and its
  BatchNorm layers stop updating their running statistics, even in ``model.train()``;
* **unfreeze** it again → ordinary trainable parameters and ordinary BatchNorm, with the
  same tensors (an optimizer built earlier still holds them);
* **discriminative learning rates** (Howard & Ruder 2018, ULMFiT) → layers near the input
  hold general features and move slowly, the head moves fast (:func:`discriminative_groups`;
  rates by name: :func:`param_groups`);
* **gradual unfreezing** (ULMFiT; fastai's ``fine_tune``) → train the head first, then
  unfreeze one block more every few epochs (:class:`GradualUnfreezing`);
* **L2-SP** (Li, Grandvalet & Davoine 2018) → let everything move, but pull the weights
  back towards their pretrained values (:func:`l2_sp_penalty`).

Names select modules the way you read them in ``print(model)``::

    freeze(net)                          # everything
    unfreeze(net, "head")                # a module and everything below it
    freeze(net, "features.*")            # a glob (fnmatch) on dotted module names
    freeze(net, lambda name, m: isinstance(m, nn.BatchNorm2d))   # a predicate
    freeze_to(net, 2)                    # only the last two blocks (models.blocks) learn

Why BatchNorm needs care: a BatchNorm layer normalises with the *batch's* mean and variance
in train mode and folds them into its running statistics (μ ← (1−m)μ + m·μ_batch). Setting
``requires_grad=False`` freezes γ and β but not μ and σ², so a "frozen" backbone still
drifts every time a training loop calls ``model.train()`` — badly so with the tiny batches
of few-shot fine-tuning. :func:`freeze` therefore swaps every BatchNorm it freezes for a
:class:`FrozenBatchNorm`, which computes the fixed per-channel affine map

    y = (x − μ_run) / √(σ²_run + ε) · γ + β

whatever mode the model is in (``bn="frozen"``, in the vocabulary of :mod:`tlearn.bn`).
``bn="batch"`` keeps γ, β fixed but lets μ, σ² follow the new data in train mode, as in AdaBN
(Li et al., "Revisiting Batch Normalization for Practical Domain Adaptation", 2016).
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from html import escape
from typing import Any, Literal, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from tlearn import checks, models

__all__ = [
    "FrozenBatchNorm", "freeze", "unfreeze", "freeze_to", "trainable_parameters",
    "count_parameters", "trainable_summary", "TrainableSummary", "param_groups",
    "discriminative_groups", "GradualUnfreezing", "l2_sp_penalty",
]  # fmt: skip

Selector = Union[str, Callable[[str, nn.Module], bool]]  # noqa: UP007 (runtime alias, py3.10)
BNMode = Literal["frozen", "batch"]
_BN_MODES = ("frozen", "batch")


# --------------------------------------------------------------------------------------
# freeze / unfreeze / freeze_to
# --------------------------------------------------------------------------------------


def freeze(model: nn.Module, *names_or_predicate: Selector, bn: BNMode = "frozen") -> nn.Module:
    """Stop the selected parameters — and BatchNorm statistics — from changing.

    For every selected parameter: ``requires_grad=False`` (autograd computes no gradient for
    it, and skips the backward pass of layers whose inputs need none) and ``.grad = None``
    (a stale gradient would otherwise still be applied, with momentum and weight decay, by an
    optimizer that holds the parameter — PyTorch optimizers skip parameters whose grad is None).
    Every selected BatchNorm is swapped for a :class:`FrozenBatchNorm` in mode ``bn``.

    Args:
        model: the network; changed in place and returned.
        *names_or_predicate: dotted module/parameter names, prefixes or globs ("layer4",
            "features.*", "features.conv1"), or callables ``f(name, module) -> bool``.
            None given: the whole model.
        bn: ``"frozen"`` (fixed statistics, the default) or ``"batch"`` (statistics follow
            the data in train mode, γ and β fixed); see :mod:`tlearn.bn`.

    Raises:
        ValueError: a name matches nothing (the message lists the blocks and close matches).
    """
    checks.one_of("bn", bn, _BN_MODES)
    params, bns = _select(model, names_or_predicate)
    for _, p in params:
        p.requires_grad_(False)
        p.grad = None
    for name in bns:
        m = model.get_submodule(name)
        if isinstance(m, FrozenBatchNorm):
            m.mode = bn
        else:
            _set_module(model, name, FrozenBatchNorm(m, mode=bn))
    return model


def unfreeze(model: nn.Module, *names_or_predicate: Selector) -> nn.Module:
    """Make the selected parameters trainable and restore ordinary BatchNorm (same tensors).

    Selection works as in :func:`freeze`; none given unfreezes the whole model. Returns ``model``.
    """
    params, bns = _select(model, names_or_predicate)
    for _, p in params:
        p.requires_grad_(True)
    for name in bns:
        m = model.get_submodule(name)
        if isinstance(m, FrozenBatchNorm):
            _set_module(model, name, m.to_batchnorm())
    return model


def _blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model's blocks, input → output, head last (:func:`tlearn.models.blocks`).

    A model that ``models.blocks`` does not know gets its top-level children that hold
    parameters, in order (so ``freeze_to`` and ``trainable_summary`` work on any nn.Module).
    """
    try:
        return list(models.blocks(model))
    except ValueError:
        return [(n, m) for n, m in model.named_children() if any(True for _ in m.parameters())]


def freeze_to(model: nn.Module, n: int, *, bn: BNMode = "frozen") -> nn.Module:
    """Freeze everything except the last ``n`` blocks (``tlearn.models.blocks``), which learn.

    ``freeze_to(net, 1)`` trains the head only; ``freeze_to(net, 0)`` freezes all;
    ``freeze_to(net, len(blocks(net)))`` unfreezes all. (fastai's ``freeze_to(k)`` counts the
    *frozen* groups from the input instead; here ``n`` counts trainable blocks from the head.)
    """
    blocks = _blocks(model)
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= len(blocks):
        raise ValueError(
            f"n must be an int in 0..{len(blocks)} (the number of trainable blocks counted "
            f"from the head; blocks: {', '.join(b for b, _ in blocks)}), got {n!r}"
        )
    freeze(model, bn=bn)
    if n:
        unfreeze(model, *[name for name, _ in blocks[len(blocks) - n :]])
    return model


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters with ``requires_grad=True`` — what an optimizer should be given."""
    return [p for p in model.parameters() if p.requires_grad]


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters (each shared tensor counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


# --------------------------------------------------------------------------------------
# FrozenBatchNorm: BatchNorm that train() cannot wake up
# --------------------------------------------------------------------------------------


class FrozenBatchNorm(nn.Module):
    """A BatchNorm layer (1d, 2d or 3d) whose affine weights and, by default, statistics are fixed.

    Built from an existing BatchNorm; it *shares* that layer's tensors (the same ``weight``
    and ``bias`` Parameter objects, the same running-statistics buffers) and its state-dict
    keys, so checkpoints load into either form and :func:`unfreeze` restores the original.

    ``mode="frozen"`` — always ``y = (x − μ_run)/√(σ²_run + ε)·γ + β``, in train and eval mode
    alike (torchvision's ``FrozenBatchNorm2d`` does the same for 4-d input only).

    ``mode="batch"`` — as in AdaBN (Li et al. 2016): γ and β stay fixed; in train mode the layer
    normalises with batch statistics and updates μ_run, σ²_run with the usual momentum, so
    the statistics adapt to the new domain; in eval mode it uses the running statistics.

    Args:
        bn: the BatchNorm module to freeze (any ``torch.nn.modules.batchnorm._BatchNorm``).
        mode: ``"frozen"`` or ``"batch"`` (the vocabulary of :mod:`tlearn.bn`).
    """

    def __init__(self, bn: _BatchNorm, mode: BNMode = "frozen"):
        super().__init__()
        if not isinstance(bn, _BatchNorm):
            raise ValueError(f"FrozenBatchNorm wraps a BatchNorm layer, got {type(bn).__name__}")
        checks.one_of("mode", mode, _BN_MODES)
        self.mode = mode
        self.bn_class = type(bn)  # restored by unfreeze
        for name in _BN_SETTINGS:
            setattr(self, name, getattr(bn, name))
        # The very same Parameter / buffer objects: no copies, so identity survives a round trip.
        self.weight, self.bias = bn.weight, bn.bias
        for name in _BN_BUFFERS:
            self.register_buffer(name, getattr(bn, name))
        for p in (self.weight, self.bias):
            if p is not None:
                p.requires_grad_(False)
                p.grad = None
        self.train(bn.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.bn_class._check_input_dim(self, x)  # the original rule (BatchNorm2d: 4-d, …)
        has_stats = self.running_mean is not None
        batch_mode = self.mode == "batch" and self.training
        factor = 0.0
        if batch_mode and has_stats:
            self.num_batches_tracked.add_(1)
            # momentum=None means a cumulative average, as in nn.BatchNorm.
            n = float(self.num_batches_tracked)
            factor = 1.0 / n if self.momentum is None else self.momentum
        # training=True → batch statistics (and, with running buffers, an in-place update).
        return F.batch_norm(
            x,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            training=batch_mode or not has_stats,
            momentum=factor,
            eps=self.eps,
        )

    def to_batchnorm(self) -> _BatchNorm:
        """An ordinary BatchNorm of the original class that shares this layer's tensors."""
        bn = self.bn_class(**{name: getattr(self, name) for name in _BN_SETTINGS})
        for name in ("weight", "bias", *_BN_BUFFERS):  # every tensor replaced: device, dtype too
            setattr(bn, name, getattr(self, name))
        bn.train(self.training)
        return bn

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, mode={self.mode!r}"


#: What a BatchNorm layer is built from, and its buffers: shared by the two forms.
_BN_SETTINGS = ("num_features", "eps", "momentum", "affine", "track_running_stats")
_BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


# --------------------------------------------------------------------------------------
# Selecting modules and parameters by name
# --------------------------------------------------------------------------------------


def _prefixes(name: str) -> list[str]:
    """'a.b.c' → ['a', 'a.b', 'a.b.c']: the modules a dotted name lives in."""
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _matches(name: str, pattern: str) -> bool:
    """Does ``pattern`` select ``name``? True when the pattern equals, or globs (fnmatch), the
    name or one of its parents: "features" and "feat*" both select "features.conv1.0.weight"."""
    if pattern == "*":
        return True
    return any(p == pattern or fnmatchcase(p, pattern) for p in _prefixes(name))


def _unknown_name_error(model: nn.Module, pattern: str) -> ValueError:
    names = [n for n, _ in model.named_modules() if n] + [n for n, _ in model.named_parameters()]
    close = difflib.get_close_matches(pattern, names, n=5, cutoff=0.5)
    msg = (
        f"no module or parameter of {type(model).__name__} is named {pattern!r}. "
        f"Its blocks are: {', '.join(name for name, _ in _blocks(model))}."
    )
    if close:
        msg += f" Did you mean: {', '.join(close)}?"
    msg += " (Names are dotted module paths as in print(model); globs like 'features.*' work.)"
    return ValueError(msg)


def _select(
    model: nn.Module, selectors: tuple[Selector, ...]
) -> tuple[list[tuple[str, nn.Parameter]], list[str]]:
    """The (name, parameter) pairs and the BatchNorm module names that ``selectors`` choose.

    No selector chooses the whole model. A string selects a module (and everything below it)
    or a single parameter by dotted name, prefix or glob; a callable ``f(name, module)``
    selects every module for which it returns True (and everything below it).
    """
    checks.module("model", model)
    modules = dict(model.named_modules())
    chosen = set() if selectors else {""}  # module names; what lies below them is chosen too
    chosen_params: set[str] = set()
    for sel in selectors:
        if callable(sel):
            chosen.update(n for n, m in modules.items() if sel(n, m))
        elif isinstance(sel, str) and sel:
            hit_modules = {n for n in modules if n and _matches(n, sel)}
            hit_params = {n for n, _ in model.named_parameters() if _matches(n, sel)}
            if not hit_modules and not hit_params:
                raise _unknown_name_error(model, sel)
            chosen.update(hit_modules)
            chosen_params.update(hit_params)
        else:
            raise ValueError(
                "select modules with non-empty name strings (prefix or glob) or a "
                f"callable predicate(name, module) -> bool, got {sel!r}"
            )

    def under_chosen(name: str) -> bool:
        return "" in chosen or any(p in chosen for p in _prefixes(name))

    params = [(n, p) for n, p in model.named_parameters() if n in chosen_params or under_chosen(n)]
    bns = [
        n
        for n, m in modules.items()
        if n and isinstance(m, (_BatchNorm, FrozenBatchNorm)) and under_chosen(n)
    ]
    return params, bns


def _set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")  # get_submodule("") is the model itself
    setattr(model.get_submodule(parent), child, new)  # same key → same position in _modules


# --------------------------------------------------------------------------------------
# trainable_summary
# --------------------------------------------------------------------------------------


def _bn_status(module: nn.Module) -> str:
    """'frozen' or 'batch' (also ordinary BatchNorm, which trains on batch statistics), or '—'."""
    kinds = Counter(
        m.mode if isinstance(m, FrozenBatchNorm) else "batch"
        for m in module.modules()
        if isinstance(m, (FrozenBatchNorm, _BatchNorm))
    )
    if len(kinds) < 2:
        return next(iter(kinds), "—")
    return ", ".join(f"{k}×{v}" for k, v in kinds.items())


@dataclass
class TrainableSummary:
    """What :func:`trainable_summary` returns: rows per block plus totals.

    ``rows``: dicts with ``block``, ``parameters``, ``trainable``, ``bn``. Prints as a text
    table and renders as an HTML table in Jupyter.
    """

    model_name: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(r["parameters"] for r in self.rows)

    @property
    def trainable(self) -> int:
        return sum(r["trainable"] for r in self.rows)

    def _footer(self) -> str:
        pct = 100.0 * self.trainable / self.total if self.total else 0.0
        return f"{self.trainable:,} of {self.total:,} parameters trainable ({pct:.1f}%)"

    def __str__(self) -> str:
        rows = [("block", "parameters", "trainable", "BN")]
        rows += [
            (r["block"], f"{r['parameters']:,}", f"{r['trainable']:,}", r["bn"]) for r in self.rows
        ]
        rows.append(("total", f"{self.total:,}", f"{self.trainable:,}", ""))
        w = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = [f"{a:<{w[0]}}  {b:>{w[1]}}  {c:>{w[2]}}  {d}".rstrip() for a, b, c, d in rows]
        rule = "-" * max(map(len, lines))
        table = [self.model_name, lines[0], rule, *lines[1:-1], rule, lines[-1], self._footer()]
        return "\n".join(table)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        cells = "".join(
            "<tr><td style='text-align:left'><code>{}</code></td><td>{:,}</td><td>{:,}</td>"
            "<td style='text-align:left'>{}</td></tr>".format(
                escape(r["block"]), r["parameters"], r["trainable"], escape(r["bn"])
            )
            for r in self.rows
        )
        return (
            f"<table><caption>{escape(self.model_name)}</caption>"
            "<thead><tr><th style='text-align:left'>block</th><th>parameters</th>"
            "<th>trainable</th><th style='text-align:left'>BN</th></tr></thead>"
            f"<tbody>{cells}</tbody><tfoot><tr><th style='text-align:left'>total</th>"
            f"<th>{self.total:,}</th><th>{self.trainable:,}</th><th></th></tr>"
            f"<tr><td colspan='4' style='text-align:left'>{escape(self._footer())}</td></tr>"
            "</tfoot></table>"
        )


def trainable_summary(model: nn.Module) -> TrainableSummary:
    """A table of the model's blocks: parameter count, trainable count and BatchNorm mode.

    BN column: ``batch`` (an ordinary BatchNorm, or a :class:`FrozenBatchNorm` in mode
    ``"batch"``: batch statistics in train mode, running ones in eval mode), ``frozen`` (fixed
    statistics), a count of each (``frozen×2, batch×1``) when a block mixes them, or ``—``
    (no BatchNorm).
    Parameters outside every block (rare) get a row ``(other)``.
    """
    checks.module("model", model)
    summary = TrainableSummary(type(model).__name__)
    seen: set[int] = set()

    def add_row(name: str, params: list[nn.Parameter], bn: str) -> None:
        seen.update(id(p) for p in params)
        parameters = sum(p.numel() for p in params)
        trainable = sum(p.numel() for p in params if p.requires_grad)
        summary.rows.append(
            {"block": name, "parameters": parameters, "trainable": trainable, "bn": bn}
        )

    for name, block in _blocks(model):
        add_row(name, [p for p in block.parameters() if id(p) not in seen], _bn_status(block))
    rest = [p for p in model.parameters() if id(p) not in seen]
    if rest:
        add_row("(other)", rest, "—")
    return summary


# --------------------------------------------------------------------------------------
# Discriminative learning rates
# --------------------------------------------------------------------------------------


def param_groups(
    model: nn.Module, rates: Mapping[str, float | Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Optimizer parameter groups by name: a learning rate (or options) per pattern.

    ``param_groups(model, {"head": 1e-3, "features.fc": 3e-4, "*": 1e-4})``: patterns (dotted
    names, prefixes or globs, as in :func:`freeze`) in order; each trainable parameter joins
    the group of the **first** pattern that matches it; ``"*"`` catches the rest. A value is
    a learning rate or a dict of optimizer options (``{"lr": 1e-3, "weight_decay": 0}``).
    For rates spread over the blocks, see :func:`discriminative_groups`.

    Each group is a dict ``{"params": [...], "lr": …, "name": pattern}`` that any
    ``torch.optim`` optimizer accepts. Frozen parameters are left out; groups left empty are
    dropped; every trainable parameter appears in exactly one group.
    """
    if not isinstance(rates, Mapping) or not rates:
        raise ValueError(f"rates must be a non-empty dict {{pattern: lr}}, got {rates!r}")
    for pattern in rates:
        if not isinstance(pattern, str):
            raise ValueError(f"param_groups patterns must be non-empty strings, got {pattern!r}")
        if pattern != "*":
            _select(model, (pattern,))  # refuses a name that matches nothing
    unmatched = [n for n, _ in _trainable(model) if not any(_matches(n, pat) for pat in rates)]
    if unmatched:
        raise ValueError(
            f"{len(unmatched)} trainable parameters match no pattern (e.g. "
            f"{', '.join(unmatched[:3])}); add a catch-all '*' entry or freeze them first"
        )
    buckets: dict[str, list[nn.Parameter]] = {pattern: [] for pattern in rates}
    for n, p in _trainable(model):  # each parameter joins the first pattern that matches it
        buckets[next(pat for pat in rates if _matches(n, pat))].append(p)
    return [
        {"params": params, **_group_options(pattern, rates[pattern]), "name": pattern}
        for pattern, params in buckets.items()
        if params
    ]


def discriminative_groups(model: nn.Module, lr: slice) -> list[dict[str, Any]]:
    """Discriminative learning rates (ULMFiT; fastai's ``slice``): one group per block.

    ``discriminative_groups(model, slice(lo, hi))``: the blocks (``models.blocks``, input →
    head) get rates spread geometrically from ``lo`` (first block) to ``hi`` (head),
    ``lr_i = lo·(hi/lo)^{i/(k−1)}``. ``slice(hi)`` (no ``lo``) gives the head ``hi`` and every
    other block ``hi/10`` (fastai's rule). Trainable parameters outside every block learn at
    the first block's rate (a group ``"(other)"``).

    Groups as in :func:`param_groups`, named by block:
    ``torch.optim.AdamW(discriminative_groups(net, slice(1e-5, 1e-3)))``.
    """
    if not isinstance(lr, slice) or lr.step is not None or lr.stop is None:
        raise ValueError(f"lr must be slice(lo, hi) or slice(hi), got {lr!r}")
    hi = checks.positive_float("the head's learning rate hi in slice(lo, hi)", lr.stop)
    blocks = _blocks(model)
    if lr.start is None:
        rates = [hi / 10] * (len(blocks) - 1) + [hi]
    else:
        lo = checks.positive_float("the first block's learning rate lo in slice(lo, hi)", lr.start)
        k = len(blocks)  # lr_i = lo·(hi/lo)^(i/(k−1)), i = 0 … k−1
        rates = [lo * (hi / lo) ** (i / (k - 1)) for i in range(k)] if k > 1 else [hi]
    groups, taken = [], set()
    for (name, block), rate in zip(blocks, rates, strict=True):
        params = [p for p in block.parameters() if p.requires_grad and id(p) not in taken]
        taken.update(id(p) for p in params)
        if params:
            groups.append({"params": params, "lr": rate, "name": name})
    rest = [p for _, p in _trainable(model) if id(p) not in taken]
    if rest:  # parameters outside every block learn at the slowest rate
        groups.insert(0, {"params": rest, "lr": rates[0], "name": "(other)"})
    return groups


def _trainable(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """(name, parameter) of every trainable parameter, a shared one once."""
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def _group_options(pattern: str, value: float | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(value, Mapping):
        opts = dict(value)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        opts = {"lr": float(value)}
    else:
        raise ValueError(
            f"param_groups: the value for {pattern!r} must be a learning rate (float) or a dict "
            f"of optimizer options such as {{'lr': 1e-3, 'weight_decay': 0.0}}, got {value!r}"
        )
    if "lr" in opts:
        checks.positive_float(f"param_groups: the learning rate for {pattern!r}", opts["lr"])
    return opts


# --------------------------------------------------------------------------------------
# Gradual unfreezing
# --------------------------------------------------------------------------------------


class GradualUnfreezing:
    """ULMFiT's gradual unfreezing (Howard & Ruder 2018) as a ``tlearn.train.fit`` callback.

    At the start of fit only the last ``start`` blocks (``models.blocks``; the head is last)
    are trainable. At the start of epoch ``e`` (0-based) the last

        n(e) = min(#blocks, start + ⌊e / every⌋)

    blocks are trainable: one more block, from the head down, every ``every`` epochs.

    Newly trainable parameters are added to the running optimizer with
    ``optimizer.add_param_group``. Learning rate of the j-th block below the head
    (j = 1, 2, …): ``lr / decay**(j − 1)``, with ``lr`` the given one or, by default, the
    learning rate of the optimizer's first group when fit starts (what the head trains at)
    divided by ``decay``. ``decay=2.6`` is ULMFiT's discriminative factor
    (η^{l−1} = η^l / 2.6); ``decay=1`` trains every block at the same rate. Other group
    options (betas, weight decay) are copied from the optimizer's defaults.

    Frozen parameters that the optimizer already holds (fit built it before this callback
    ran) are taken out of its groups at fit start, so that each block joins at its own rate.

    ``schedule`` records ``(epoch, block)`` for every block unfrozen, in order.

    Args:
        every: epochs between two unfreezing steps (k ≥ 1).
        start: blocks trainable at epoch 0 (1 = the head only).
        lr: learning rate of the first block below the head (default: the head's / decay).
        decay: divide the rate by this for each block further from the head.
        bn: BatchNorm mode for blocks while they are frozen ("frozen" or "batch").
    """

    def __init__(
        self,
        every: int = 1,
        *,
        start: int = 1,
        lr: float | None = None,
        decay: float = 2.6,
        bn: BNMode = "frozen",
    ):
        checks.positive_int("every", every, why=" (epochs between unfreezing steps)")
        checks.nonnegative_int("start", start, why=" (blocks trainable at first)")
        if lr is not None:
            checks.positive_float("lr", lr)
        checks.positive_float("decay", decay)
        checks.one_of("bn", bn, _BN_MODES)
        self.every, self.start, self.lr, self.decay, self.bn = every, start, lr, decay, bn
        self.schedule: list[tuple[int, str]] = []
        self._unfrozen = 0
        self._base_lr: float | None = None

    def on_fit_start(self, state: Any) -> None:
        model, optimizer = state.model, state.optimizer
        blocks = _blocks(model)
        if self.start > len(blocks):
            raise ValueError(f"start={self.start} but the model has only {len(blocks)} blocks")
        freeze_to(model, self.start, bn=self.bn)
        self._unfrozen = self.start
        self.schedule = [(0, name) for name, _ in blocks[len(blocks) - self.start :]][::-1]
        head_lr = optimizer.param_groups[0]["lr"]
        self._base_lr = self.lr if self.lr is not None else head_lr / self.decay
        for group in optimizer.param_groups:  # drop frozen params (see class docstring)
            for p in group["params"]:
                if not p.requires_grad:
                    optimizer.state.pop(p, None)
            group["params"] = [p for p in group["params"] if p.requires_grad]

    def on_epoch_start(self, state: Any) -> None:
        model, optimizer = state.model, state.optimizer
        blocks = _blocks(model)
        target = min(len(blocks), self.start + state.epoch // self.every)  # n(e), blocks that train
        while self._unfrozen < target:
            name, block = blocks[len(blocks) - 1 - self._unfrozen]
            self._unfrozen += 1
            unfreeze(model, name)
            self.schedule.append((state.epoch, name))
            held = {id(p) for g in optimizer.param_groups for p in g["params"]}
            new = [p for p in block.parameters() if p.requires_grad and id(p) not in held]
            if new:
                depth = self._unfrozen - 1  # this block is the depth-th below the head
                optimizer.add_param_group(
                    {"params": new, "lr": self._base_lr / self.decay ** (depth - 1), "name": name}
                )

    def on_epoch_end(self, state: Any) -> None:
        state.history.records[-1]["trainable_blocks"] = self._unfrozen  # fit's record of the epoch


# --------------------------------------------------------------------------------------
# L2-SP: regularise towards the starting point
# --------------------------------------------------------------------------------------


def l2_sp_penalty(
    model: nn.Module, start: Mapping[str, torch.Tensor], alpha: float = 0.1, beta: float = 0.01
) -> torch.Tensor:
    r"""L2-SP: weight decay towards the pretrained weights instead of towards zero.

    Li, Grandvalet & Davoine, "Explicit Inductive Bias for Transfer Learning with
    Convolutional Networks", ICML 2018 (eq. 3):

    .. math::  \Omega(w) = \frac{\alpha}{2} \lVert w_S - w^0_S \rVert^2
                          + \frac{\beta}{2} \lVert w_{\bar S} \rVert^2

    :math:`S`: the parameters of ``model`` present in ``start`` (the pretrained state dict)
    with the same shape; :math:`w^0_S` their pretrained values. :math:`\bar S`: the others —
    the new head, which has no pretrained value and gets ordinary weight decay. Add it to the
    training loss; it is 0 at the start when ``beta=0`` and grows as the body moves away.

    Args:
        model: the network being fine-tuned.
        start: ``{name: tensor}``, e.g. ``{k: v.clone() for k, v in net.state_dict().items()}``
            taken before fine-tuning, without the head's entries (buffers are ignored).
        alpha, beta: the two strengths, ≥ 0 (the paper: α = 0.1, β = 0.01, and α/β tuned).

    Returns:
        A scalar tensor, differentiable w.r.t. the model's parameters.

    >>> net = nn.Linear(2, 1)
    >>> start = {k: v.clone() for k, v in net.state_dict().items()}
    >>> float(l2_sp_penalty(net, start, alpha=1.0, beta=0.0))
    0.0
    """
    checks.nonnegative_float("alpha", alpha)
    checks.nonnegative_float("beta", beta)
    if not isinstance(start, Mapping):
        raise ValueError(f"start must be a state dict {{name: tensor}}, got {type(start).__name__}")
    pulled, decayed = [], []
    for name, w in model.named_parameters():
        w0 = start.get(name)
        if isinstance(w0, torch.Tensor) and w0.shape == w.shape:
            pulled.append((w - w0.detach().to(w)).pow(2).sum())
        else:
            decayed.append(w.pow(2).sum())
    zero = next(model.parameters()).new_zeros(())
    return alpha / 2 * sum(pulled, zero) + beta / 2 * sum(decayed, zero)
