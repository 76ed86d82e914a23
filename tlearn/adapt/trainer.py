r"""``fit_adapt``: ``train.fit`` plus an alignment step — unsupervised domain adaptation.

Every step takes a labelled *source* batch ``(x_s, y_s)`` and an unlabelled *target* batch
``x_t`` and minimises

.. math::  \mathcal{L} = \underbrace{\mathrm{CE}(h(g(x_s)), y_s)}_{\text{class loss}}
           \;+\; w \cdot \underbrace{\ell_{align}\big(z_s, z_t\big)}_{\text{align loss}},
           \qquad z_s = g(x_s),\; z_t = g(x_t)

with ``g`` the feature extractor (the module named by ``layer``, default ``"features"``),
``h`` the rest of the network and ``w`` the method's weight. The alignment term is an
``nn.Module`` whose ``forward(zs, zt)`` returns a scalar — one of the registered methods
(:data:`METHODS`: ``"coral"``, ``"mmd"``, ``"dann"``, ``"cdan"``, ``"cdan_e"``; ``"none"`` is
the source-only baseline) or **any module of yours**. If its ``forward`` accepts them, it is
also given ``progress`` (fraction of training done, in [0, 1]) and ``logits_s``, ``logits_t``
(the class logits of both batches, for class-conditional methods such as CDAN). Numbers it
keeps in a ``logs`` dict are averaged into the history. New methods plug in with
:func:`register_method`; the trainer itself never changes.

What the loop does is :func:`tlearn.train.fit`'s; this module only builds the objective:

* One epoch = one pass over the **source** (ragged last batch dropped); the target is
  **cycled**, reshuffled at every pass, with the same batch size.
* **Target labels are never read**: only images are taken from the target.
* ``bn`` says how the two batches pass through BatchNorm (:mod:`tlearn.bn`'s vocabulary):
  ``"per_domain"`` (a forward pass per domain: each is normalised with its own batch
  statistics, so per-layer means and variances are aligned for free and the loss aligns
  the rest) or ``"joint"`` (one concatenated batch, the classic DANN implementation).
* After training, BatchNorm statistics are re-estimated on the target images
  (``reestimate_bn``): with ``"per_domain"`` the target was normalised with target
  statistics in training, so test time should do the same. The returned network is then
  calibrated for the target (on source images it loses accuracy).
* Train/eval modes: each epoch puts every module of the model (and of the alignment module)
  in train mode, as ``train.fit`` does — so keep BatchNorm statistics fixed with
  ``freeze.freeze`` (a ``FrozenBatchNorm``), not with ``.eval()`` — and the model is returned
  in eval mode. Before the first epoch every module keeps the mode it had.
* **A collapsed run is named, not averaged** (:mod:`tlearn.adapt.diagnostics`): each epoch
  records ``target_majority_share``, the share of the most predicted class among the
  target images its steps saw; after training one pass over (up to
  :data:`CHECK_IMAGES`) target images sets the last record's ``collapsed`` and warns
  (:class:`~tlearn.adapt.diagnostics.CollapseWarning`) when one class takes ≥ 90 % of the
  predictions. No label is read.

The defaults (:data:`DEFAULTS`) were chosen on development pairs, never with the evaluation
target's labels; ``benchmarks/README.md`` records how.
"""

from __future__ import annotations

import difflib
import inspect
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tlearn import checks, runtime, train
from tlearn.adapt.cdan import ConditionalAdversarialLoss
from tlearn.adapt.coral import CORALLoss
from tlearn.adapt.dann import DomainAdversarialLoss, dann_lr
from tlearn.adapt.diagnostics import CollapseWarning, diagnose
from tlearn.adapt.mmd import MMDLoss
from tlearn.bn import estimate_bn_statistics
from tlearn.data.base import as_dataset, batches, data_length, input_batches
from tlearn.data.real import ImageFolderDomain, check_same_classes
from tlearn.features import FeatureHook

__all__ = ["fit_adapt", "register_method", "METHODS", "DEFAULTS", "BN", "Method"]

BN = ("per_domain", "joint")
OPTIMIZERS = ("adam", "sgd")
#: Target images the collapse check predicts after training (the first ones, in order).
CHECK_IMAGES = 2048


# --------------------------------------------------------------------------- the registry
@dataclass(frozen=True)
class Method:
    """An alignment method: how to build its module, and its training defaults.

    ``build(in_features, **options)`` returns the alignment module (``None`` for source only).
    A builder that names a ``num_classes`` parameter is also given the width of the model's
    class logits (``None`` when the model does not return ``(N, C)`` logits). ``options``
    names the keyword options ``fit_adapt`` may pass on (None: whatever the builder takes).
    """

    build: Callable[..., nn.Module] | None
    weight: float = 1.0
    bn: str = "per_domain"
    reestimate_bn: bool = True
    lr: float = 1e-3
    epochs: int = 8
    optimizer: str = "adam"
    lr_schedule: Callable[[float], float] | None = field(default=None, compare=False)
    options: tuple[str, ...] | None = field(default=None, compare=False)

    def defaults(self) -> dict[str, Any]:
        d = asdict(self)
        del d["build"], d["lr_schedule"], d["options"]
        return d


def _keyword_options(fn: Callable, skip: tuple[str, ...] = ("in_features", "num_classes")):
    """The options ``fn`` (a builder or a loss class) takes by keyword, less those in ``skip``
    (the feature width and the number of classes, which the trainer passes itself)."""
    params = inspect.signature(fn).parameters.values()
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return tuple(p.name for p in params if p.kind in kinds and p.name not in skip)


METHODS: dict[str, Method] = {}


def register_method(
    name: str,
    build: Callable[..., nn.Module] | None,
    *,
    replace: bool = False,
    **defaults: Any,
) -> Method:
    """Make ``fit_adapt(method=name)`` build ``build(in_features, **options)`` with ``defaults``
    (any :class:`Method` field: ``weight``, ``bn``, ``lr``, ``epochs``, ``lr_schedule``, …).
    A builder with a ``num_classes`` parameter also receives the number of classes.

    Checked here, not at the first training step: ``name`` is a non-empty string that is not
    a built-in method (unless ``replace=True``); ``build`` is None or a callable that, called
    as ``build(8)`` (plus ``num_classes=2`` when it names it), returns an ``nn.Module`` whose
    ``forward`` takes ``(zs, zt)``; every default is a :class:`Method` field of the right kind.
    The trial build runs with the random number generators forked, so it changes no draw.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"a method name must be a non-empty string, got {name!r}")
    if name in _BUILT_IN and name in METHODS and not replace:
        raise ValueError(
            f"{name!r} is a built-in method; pass replace=True to overwrite it, or choose "
            "another name"
        )
    spec = _method_from(name, build, defaults)
    if build is not None and name not in _BUILT_IN:
        _check_builder(name, spec)
    METHODS[name] = spec
    return spec


_BUILT_IN = ("none", "coral", "mmd", "dann", "cdan", "cdan_e")


def _method_from(name: str, build: Any, defaults: dict[str, Any]) -> Method:
    """A :class:`Method`, after checking ``build`` and every default."""
    if build is not None and not callable(build):
        raise TypeError(
            f"build for method {name!r} must be a callable in_features → nn.Module (or None "
            f"for source only), got {type(build).__name__}"
        )
    fields = [f for f in Method.__dataclass_fields__ if f != "build"]
    unknown = sorted(set(defaults) - set(fields))
    if unknown:
        raise ValueError(
            f"register_method({name!r}): unknown default(s) {', '.join(unknown)}; "
            f"the defaults are {', '.join(fields)}"
        )
    d = defaults
    if "weight" in d:
        checks.nonnegative_float("weight", d["weight"])
    if "bn" in d:
        checks.one_of("bn", d["bn"], BN)
    if "optimizer" in d:
        checks.one_of("optimizer", d["optimizer"], OPTIMIZERS)
    if "reestimate_bn" in d:
        checks.boolean("reestimate_bn", d["reestimate_bn"])
    if "lr" in d:
        checks.positive_float("lr", d["lr"], example="1e-3")
    if "epochs" in d:
        checks.positive_int("epochs", d["epochs"])
    if d.get("lr_schedule") is not None and not callable(d["lr_schedule"]):
        raise TypeError(
            f"lr_schedule must be a callable progress → factor, got {d['lr_schedule']!r}"
        )
    if build is not None and "options" not in d:
        params = inspect.signature(build).parameters.values()
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            first = next(iter(inspect.signature(build).parameters), "")
            d = {**d, "options": _keyword_options(build, (first, "num_classes"))}
    return Method(build, **d)


def _check_builder(name: str, spec: Method) -> None:
    """Build once with a made-up width, and check the module it returns."""
    try:
        params = inspect.signature(spec.build).parameters
        inspect.signature(spec.build).bind(
            8, **({"num_classes": 2} if "num_classes" in params else {})
        )
    except TypeError:
        raise TypeError(
            f"build for method {name!r} must take the feature width as its first argument: "
            "build(in_features, **options) → nn.Module"
        ) from None
    with torch.random.fork_rng(devices=[]):
        made = _build(spec, 8, 2, {})
    if not isinstance(made, nn.Module):
        raise TypeError(
            f"build for method {name!r} returned {type(made).__name__}, not an nn.Module "
            "whose forward(zs, zt) returns a scalar loss"
        )
    _check_forward(made, name)


register_method("none", None, weight=0.0, bn="joint", reestimate_bn=False)
# Deep CORAL (Sun & Saenko 2016): a weight that makes both terms the same order late in training.
register_method(
    "coral", lambda d, **kw: CORALLoss(**kw), weight=30.0, options=_keyword_options(CORALLoss)
)
# DAN's multi-kernel MMD (Long et al. 2015).
register_method("mmd", lambda d, **kw: MMDLoss(**kw), weight=1.0, options=_keyword_options(MMDLoss))
# DANN (Ganin et al. 2016): μ_p = μ₀ / (1 + 10p)^0.75 as in the paper.
register_method(
    "dann",
    lambda d, **kw: DomainAdversarialLoss(d, **kw),
    weight=1.0,
    lr_schedule=lambda p: dann_lr(p, 1.0),
    options=_keyword_options(DomainAdversarialLoss),
)
# CDAN / CDAN+E (Long et al. 2018): DANN's discriminator on features ⊗ class predictions.
register_method(
    "cdan",
    lambda d, num_classes, **kw: ConditionalAdversarialLoss(d, num_classes, **kw),
    weight=1.0,
    lr_schedule=lambda p: dann_lr(p, 1.0),
    options=_keyword_options(ConditionalAdversarialLoss),
)
register_method(
    "cdan_e",
    lambda d, num_classes, **kw: ConditionalAdversarialLoss(
        d, num_classes, entropy_conditioning=True, **kw
    ),
    weight=1.0,
    lr_schedule=lambda p: dann_lr(p, 1.0),
    options=_keyword_options(
        ConditionalAdversarialLoss, ("in_features", "num_classes", "entropy_conditioning")
    ),
)


class _Defaults(Mapping):
    """``DEFAULTS[name]``: the training defaults of every registered method (read-only)."""

    def __getitem__(self, name: str) -> dict[str, Any]:
        return METHODS[name].defaults()

    def __iter__(self) -> Iterator[str]:
        return iter(METHODS)

    def __len__(self) -> int:
        return len(METHODS)


DEFAULTS: Mapping[str, dict[str, Any]] = _Defaults()


# --------------------------------------------------------------------------- the objective
def _target_stream(
    target: Any, batch_size: int, generator: torch.Generator, rank: int = 0, world: int = 1
) -> Iterator:
    """Endless target image batches of a fixed size: the target cycled, reshuffled each pass
    (under torchrun: this process's shard of each pass)."""
    while True:
        yield from input_batches(
            target, batch_size, shuffle=True, generator=generator, drop_last=True,
            rank=rank, world_size=world,
        )  # fmt: skip


class AlignedObjective(nn.Module):
    """``CE(logits_s, y_s) + w · align(z_s, z_t)``: the objective ``fit_adapt`` hands to ``fit``.

    Holds the alignment module (so its parameters — a discriminator — are trained too), the
    feature hook and the endless target stream.
    """

    def __init__(self, align: nn.Module, weight: float, target: Iterator, hook, bn: str, name: str):
        super().__init__()
        self.align, self.weight, self.target, self.hook, self.bn = align, weight, target, hook, bn
        self.name = f"fit_adapt[{name}]"
        params = inspect.signature(align.forward).parameters
        takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        self.offers = {k for k in ("progress", "logits_s", "logits_t") if takes_any or k in params}
        self.checked = False
        self.target_counts = torch.zeros(0, dtype=torch.long)  # predictions per class, this epoch

    def forward(self, model: nn.Module, xs: torch.Tensor, ys: torch.Tensor, progress: float):
        xt = next(self.target).to(xs.device, non_blocking=True)
        self.hook.output = None  # forget what a forward outside the training step recorded
        if self.bn == "joint":  # one batch: BatchNorm sees the mixture's statistics
            logits = model(torch.cat([xs, xt]))
            z = self.hook.take()
            logits_s, logits_t, zs, zt = (
                logits[: len(xs)],
                logits[len(xs) :],
                z[: len(xs)],
                z[len(xs) :],
            )
        else:  # a pass per domain: each normalised with its own batch statistics
            logits_s, zs = model(xs), self.hook.take()
            logits_t, zt = model(xt), self.hook.take()
        class_loss = F.cross_entropy(logits_s.float(), ys)
        self._count(logits_t)
        offered = {"progress": progress, "logits_s": logits_s, "logits_t": logits_t}
        align_loss = self.align(zs.float(), zt.float(), **{k: offered[k] for k in self.offers})
        _check_scalar(align_loss, self.name)
        if not self.checked:  # once, at the first step
            self.checked = True
            if not align_loss.requires_grad and torch.is_grad_enabled():
                warnings.warn(
                    f"fit_adapt: the alignment loss of method {self.name[10:-1]!r} carries no "
                    "gradient to the features (a constant, or computed without autograd), so "
                    "training aligns nothing: it is source-only. Build the loss from zs and zt "
                    "with torch operations.",
                    UserWarning,
                    stacklevel=2,
                )
        logs = {"class_loss": class_loss.item(), "align_loss": align_loss.item()}
        logs.update(getattr(self.align, "logs", {}))
        return class_loss + self.weight * align_loss, logits_s, logs

    def _count(self, logits_t: torch.Tensor) -> None:
        if logits_t.dim() != 2:  # a model without (N, C) logits: nothing to count
            return
        counts = torch.bincount(logits_t.detach().argmax(1).cpu(), minlength=logits_t.shape[1])
        if len(self.target_counts) < len(counts):
            self.target_counts = F.pad(
                self.target_counts, (0, len(counts) - len(self.target_counts))
            )
        self.target_counts += counts

    def on_epoch_end(self, state: train.FitState) -> None:
        """(A ``fit`` callback.) Record ``target_majority_share`` of this epoch's target steps."""
        if self.target_counts.sum() > 0:
            share = self.target_counts.max() / self.target_counts.sum()
            state.history.records[-1]["target_majority_share"] = float(share)
        self.target_counts = torch.zeros(0, dtype=torch.long)


def _check_collapse(
    model: nn.Module, target: Any, history: train.History, device: torch.device, name: str
) -> str | None:
    """After training: predict the first :data:`CHECK_IMAGES` target images (no labels read),
    set ``history.last["collapsed"]`` and warn with the reason when the run collapsed."""
    was = model.training
    model.eval()
    predictions, seen = [], 0
    with torch.no_grad():
        for x in input_batches(target, 256):
            logits = model(x[: CHECK_IMAGES - seen].to(device))
            if not (isinstance(logits, torch.Tensor) and logits.dim() == 2):
                model.train(was)
                return None  # not a classifier's (N, C) logits: nothing to check
            predictions.append(logits.argmax(1).cpu())
            seen += len(logits)
            if seen >= CHECK_IMAGES:
                break
    model.train(was)
    losses = [r["train_loss"] for r in history.records if "train_loss" in r]
    verdict = diagnose(torch.cat(predictions), losses)
    history.last["collapsed"] = verdict is not None
    if verdict is not None:
        warnings.warn(
            f"{name}: the run {verdict}; its accuracy measures the collapse, not the method "
            "(see tlearn.adapt.diagnostics)",
            CollapseWarning,
            stacklevel=3,
        )
    return verdict


# --------------------------------------------------------------------------- checks
_OFFERED = ("progress", "logits_s", "logits_t")


def _check_forward(align: nn.Module, name: str) -> None:
    """Refuse an alignment module whose ``forward`` cannot be called as the trainer calls it:
    ``forward(zs, zt)``, plus any of ``progress``, ``logits_s``, ``logits_t`` it names."""
    params = list(inspect.signature(align.forward).parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) < 2 and not any(p.kind is p.VAR_POSITIONAL for p in params):
        raise TypeError(
            f"the alignment module of {name!r} ({type(align).__name__}) must take two feature "
            f"batches, forward(self, zs, zt); its forward takes "
            f"({', '.join(p.name for p in params)})"
        )
    required = [
        p.name
        for p in (positional[2:] + [p for p in params if p.kind is p.KEYWORD_ONLY])
        if p.default is p.empty and p.name not in _OFFERED
    ]
    if required:
        raise TypeError(
            f"the alignment module of {name!r} ({type(align).__name__}) requires "
            f"{', '.join(required)}, which the trainer does not offer: it calls forward(zs, zt) "
            f"and passes {', '.join(_OFFERED)} by name when forward names them. Give "
            f"{', '.join(required)} a default."
        )


class AlignmentError(TypeError):
    """An alignment module that returned something other than a scalar tensor."""


def _check_scalar(loss: Any, name: str) -> None:
    """The alignment term must be a scalar tensor (a vector would be summed, a float has no
    gradient)."""
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        got = (
            f"shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else type(loss).__name__
        )
        raise AlignmentError(
            f"{name}: the alignment module must return a scalar tensor (e.g. x.mean() or "
            f"x.sum()), got {got}"
        )


def _resolve_method(method: str | nn.Module) -> tuple[str, Method]:
    if isinstance(method, nn.Module):
        name = type(method).__name__
        _check_forward(method, name)
        return name, Method(build=lambda d: method)
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(
            f"unknown method {method!r}; expected one of {', '.join(METHODS)}, or an nn.Module "
            "whose forward(zs, zt) returns a scalar loss"
        )
    return method, METHODS[method]


def _check(weight: float, bn: str, optimizer: str, batch_size: int) -> None:
    checks.nonnegative_float("weight", weight)
    checks.one_of("bn", bn, BN)
    checks.one_of("optimizer", optimizer, OPTIMIZERS)
    checks.positive_int("batch_size", batch_size, minimum=2)


def _check_options(name: str, spec: Method, options: dict[str, Any]) -> None:
    """Refuse options the method does not take, naming the ones it does."""
    if spec.options is None or not options:
        return
    unknown = [k for k in options if k not in spec.options]
    if not unknown:
        return
    hints = [
        f" (did you mean {close[0]!r}?)"
        for k in unknown
        if (close := difflib.get_close_matches(k, spec.options, n=1))
    ]
    accepted = ", ".join(spec.options) if spec.options else "none"
    raise ValueError(
        f"method {name!r} takes no option {', '.join(map(repr, unknown))}{''.join(hints)}; "
        f"the options it accepts: {accepted}"
    )


def _first_images(source: Any, target: Any) -> torch.Tensor:
    """Two source images, after checking both domains give images of the same shape."""
    try:
        xs = next(batches(source, 2))[0]
    except ValueError as e:
        raise ValueError(f"the source must be labelled: {e}") from None
    xt = next(input_batches(target, 2))
    checks.images(xt, "fit_adapt (target)", finite=True)
    if xs.shape[1:] != xt.shape[1:]:
        raise ValueError(
            f"source images are {'×'.join(map(str, xs.shape[1:]))} but target images are "
            f"{'×'.join(map(str, xt.shape[1:]))}; load both domains alike, e.g. "
            "load_domain(name, channels=3, image_size=64) for each."
        )
    return xs


def _probe(model: nn.Module, hook, x: torch.Tensor, device: torch.device) -> tuple[int, int | None]:
    """One forward pass: the feature dimension, and the number of classes (None: no logits)."""
    with runtime.eval_mode(model), torch.no_grad():
        out = model(x.to(device))
    num_classes = out.shape[1] if isinstance(out, torch.Tensor) and out.dim() == 2 else None
    return hook.take().shape[1], num_classes


def _build(spec: Method, in_features: int, num_classes: int | None, options: dict) -> nn.Module:
    """``build(in_features, **options)``, plus ``num_classes`` when the builder names it."""
    if "num_classes" in inspect.signature(spec.build).parameters:
        options = {"num_classes": num_classes, **options}
    return spec.build(in_features, **options)


# --------------------------------------------------------------------------- the entry point
def fit_adapt(
    model: nn.Module,
    source: Any,
    target: Any,
    method: str | nn.Module = "coral",
    *,
    weight: float | None = None,
    epochs: int | None = None,
    lr: float | None = None,
    batch_size: int = 128,
    bn: str | None = None,
    reestimate_bn: bool | None = None,
    layer: str = "features",
    optimizer: str | None = None,
    weight_decay: float = 0.0,
    seed: int | None = None,
    val: Any = None,
    callbacks: Sequence[Any] | None = None,
    device: torch.device | str | None = None,
    amp: bool | None = None,
    progress: bool = True,
    **method_options: Any,
) -> train.History:
    r"""Train ``model`` on labelled ``source`` while aligning its features to unlabelled ``target``.

    Args:
        model: a classifier in which the module named ``layer`` outputs the features to
            align (e.g. ``models.DigitNet``: ``"features"``); trained in place.
        source: labelled source data — a Dataset of ``(x, y)``, or a DataLoader.
        target: target images — a Dataset, DataLoader or image tensor. **Its labels are
            never read.**
        method: a registered name (:data:`METHODS`: ``"none"``, ``"coral"``, ``"mmd"``,
            ``"dann"``, ``"cdan"``, ``"cdan_e"``) or an ``nn.Module`` whose
            ``forward(zs, zt)`` returns a scalar loss.
        weight: w in ``CE + w·ℓ_align``; None → the method's default (1 for your module).
        epochs, lr, optimizer (``"adam"``/``"sgd"``), weight_decay: as in ``train.fit``;
            None → the method's default.
        batch_size: source images per step; the target batch has the same size.
        bn: ``"per_domain"`` or ``"joint"`` (see the module doc); None → the method's default.
        reestimate_bn: re-estimate BatchNorm statistics on the target images after training
            (frozen BatchNorm layers are left alone); None → the method's default.
        layer: the module whose output is aligned (conv maps are average-pooled).
        seed: seeds everything, so the same seed gives the same weights (seed *before*
            building the model to fix its initialisation too).
        val: labelled **source** validation data, evaluated after each epoch. Never pass
            target test data here to pick epochs or weights: that is target-label leakage.
        callbacks, device, amp, progress: as in ``train.fit``.
        **method_options: passed to the method's module (``kernel=`` for ``"mmd"``,
            ``discriminator=`` for ``"dann"``; ``randomized=``, ``discriminator=`` … for
            ``"cdan"``: see ``ConditionalAdversarialLoss``).

    Returns:
        ``train.History``: per epoch ``train_loss``, ``train_accuracy`` (source),
        ``class_loss``, ``align_loss``, the module's ``logs`` (DANN, CDAN: ``domain_accuracy``,
        ``lambda``), ``target_majority_share`` (see the module doc), ``lr``, ``seconds`` (and
        ``val_*`` with ``val``); the last record also holds ``collapsed`` (True: one class
        takes ≥ 90 % of the target predictions — a :class:`CollapseWarning` said so).

    >>> from tlearn import data, models
    >>> src = data.load_domain("synth", size=64)
    >>> tgt = data.load_domain("uci", size=64)
    >>> class MeanGap(nn.Module):  # your own alignment: match the feature means
    ...     def forward(self, zs, zt):
    ...         return (zs.mean(0) - zt.mean(0)).pow(2).sum()
    >>> hist = fit_adapt(models.DigitNet(), src, tgt, MeanGap(), epochs=1, batch_size=32,
    ...                  seed=0, progress=False, device="cpu")
    >>> sorted(k for k in hist.last if "loss" in k)
    ['align_loss', 'class_loss', 'train_loss']
    """
    name, spec = _resolve_method(method)
    _check_options(name, spec, method_options)
    weight = checks.nonnegative_float("weight", spec.weight if weight is None else weight)
    bn = spec.bn if bn is None else bn
    optimizer = spec.optimizer if optimizer is None else optimizer
    reestimate_bn = spec.reestimate_bn if reestimate_bn is None else reestimate_bn
    _check(weight, bn, optimizer, batch_size)
    checks.module("model", model)
    uses_target = spec.build is not None
    if uses_target and (target is None or data_length(target, "target") < 2):
        raise ValueError(f"method {name!r} needs a target with at least 2 images")
    if seed is not None:
        runtime.seed_everything(seed)
    device = runtime.get_device(device)
    model.to(device)
    fit_options = dict(
        epochs=spec.epochs if epochs is None else epochs,
        lr=spec.lr if lr is None else lr,
        optimizer=optimizer,
        batch_size=batch_size,
        weight_decay=weight_decay,
        val=val,
        callbacks=callbacks,
        device=device,
        amp=amp,
        progress=progress,
        lr_schedule=spec.lr_schedule,
        drop_last=True,
    )
    if not uses_target:
        history = train.fit(model, source, **fit_options)
        if target is not None:
            _check_collapse(model, target, history, device, f"fit_adapt[{name}]")
        return history
    folders = [as_dataset(d) for d in (source, target)]
    if all(isinstance(d, ImageFolderDomain) for d in folders):  # class names from folder names:
        check_same_classes(*folders)  # label k must mean the same class in both domains
    xs = _first_images(source, target)
    rank, world = train.distributed(device)  # (0, 1) unless started by torchrun
    seed_t = train.same_on_every_rank(int(torch.randint(0, 2**31 - 1, ()).item()))
    generator = torch.Generator().manual_seed(seed_t)
    shard = -(-data_length(target) // world)  # target images per process
    if shard < 2:
        raise ValueError(
            f"{world} processes share {data_length(target)} target images: each needs at "
            "least 2 (BatchNorm trains on a batch's statistics); start fewer processes"
        )
    stream = _target_stream(target, min(batch_size, shard), generator, rank, world)
    with FeatureHook(model, layer) as hook:
        align = _build(spec, *_probe(model, hook, xs, device), method_options)
        if not isinstance(align, nn.Module):
            raise TypeError(f"method {name!r} built {type(align).__name__}, not an nn.Module")
        _check_forward(align, name)
        objective = AlignedObjective(align, weight, stream, hook, bn, name)
        fit_options["callbacks"] = [*(callbacks or []), objective]
        buffers = {
            k: v.clone()
            for k, v in model.state_dict().items()
            if k not in dict(model.named_parameters())
        }
        try:
            history = train.fit(model, source, objective=objective, **fit_options)
        except AlignmentError:  # refused at the first step: undo its BatchNorm updates
            model.load_state_dict(buffers, strict=False)
            raise
    if reestimate_bn:
        estimate_bn_statistics(model, target, include_frozen=False, device=device, progress=False)
    _check_collapse(model, target, history, device, f"fit_adapt[{name}]")
    model.eval()
    return history
