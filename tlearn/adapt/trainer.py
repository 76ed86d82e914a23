r"""``fit_adapt``: ``train.fit`` plus an alignment step — unsupervised domain adaptation.

Every step takes a labelled *source* batch ``(x_s, y_s)`` and an unlabelled *target* batch
``x_t`` and minimises

.. math::  \mathcal{L} = \underbrace{\mathrm{CE}(h(g(x_s)), y_s)}_{\text{class loss}}
           \;+\; w \cdot \underbrace{\ell_{align}\big(z_s, z_t\big)}_{\text{align loss}},
           \qquad z_s = g(x_s),\; z_t = g(x_t)

with ``g`` the feature extractor (the module named by ``layer``, default ``"features"``),
``h`` the rest of the network and ``w`` the method's weight. The alignment term is an
``nn.Module`` whose ``forward(zs, zt)`` returns a scalar — a registered method or **any
module of yours**. If its ``forward`` names them, it is also given ``progress`` (fraction of
training done, in [0, 1]) and ``logits_s``, ``logits_t`` (the class logits of both batches,
for class-conditional methods such as CDAN). Numbers it keeps in a ``logs`` dict are
averaged into the history. New methods plug in with :func:`register_method`; the trainer
itself never changes.

The registered methods (:data:`METHODS`), their options (``fit_adapt(…, **options)``, passed
to the module) and their training defaults (:func:`defaults`):

==========  ===========================================================  ======  ==========
method      options, with their defaults                                 weight  bn
==========  ===========================================================  ======  ==========
``none``    — (the source-only baseline: no alignment module)            0       joint
``coral``   — (:class:`~tlearn.adapt.coral.CORALLoss`)                   30      per_domain
``mmd``     ``kernel="multi"``, ``bandwidth=None``,                      1       per_domain
            ``estimator="biased"``, ``detach_bandwidth=False``
            (:class:`~tlearn.adapt.mmd.MMDLoss`)
``dann``    ``discriminator=None`` (a ``DomainClassifier``),             1       per_domain
            ``schedule=dann_lambda``; forward gets ``progress``
            (:class:`~tlearn.adapt.dann.DomainAdversarialLoss`)
``cdan``    ``entropy_conditioning=False``, ``randomized=None``,         1       per_domain
            ``randomized_dim=1024``, ``discriminator=None``,
            ``schedule=dann_lambda``; forward gets ``progress``,
            ``logits_s``, ``logits_t``
            (:class:`~tlearn.adapt.cdan.ConditionalAdversarialLoss`)
``cdan_e``  as ``cdan``, with ``entropy_conditioning=True`` (CDAN+E)     1       per_domain
==========  ===========================================================  ======  ==========

Every method trains ``epochs=8`` at ``lr=1e-3`` with ``optimizer="adam"`` and re-estimates
BatchNorm on the target afterwards (``reestimate_bn=True``; ``none``: False); ``dann``,
``cdan`` and ``cdan_e`` anneal the rate as DANN does, μ_p = μ₀/(1 + 10p)^0.75. A method's
options and what its ``forward`` takes are read once, when it is registered.

What the loop does is :func:`tlearn.train.fit`'s; this module only builds the objective:

* One epoch = one pass over the **source** (ragged last batch dropped, ``train.fit``'s
  default); the target is **cycled**, reshuffled at every pass, with the same batch size.
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

The defaults were chosen on development pairs, never with the evaluation
target's labels; ``benchmarks/README.md`` records how.
"""

from __future__ import annotations

import difflib
import inspect
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from itertools import chain, count
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tlearn import checks, runtime, train
from tlearn import distributed as ddp
from tlearn.adapt.cdan import ConditionalAdversarialLoss
from tlearn.adapt.coral import CORALLoss
from tlearn.adapt.dann import DomainAdversarialLoss, dann_lr
from tlearn.adapt.diagnostics import CollapseWarning, diagnose
from tlearn.adapt.mmd import MMDLoss
from tlearn.bn import estimate_bn_statistics
from tlearn.data.base import as_dataset, batches, data_length, input_batches
from tlearn.data.real import ImageFolderDomain, check_same_classes
from tlearn.features import FeatureHook

__all__ = ["fit_adapt", "register_method", "defaults", "METHODS", "BN", "Method"]

BN = ("per_domain", "joint")
OPTIMIZERS = ("adam", "sgd")
#: Target images the collapse check predicts after training (the first ones, in order).
CHECK_IMAGES = 2048
#: What the trainer passes to an alignment module's ``forward`` by name, when it names them.
OFFERED = ("progress", "logits_s", "logits_t")
#: The training settings a method has defaults for, each with its check.
SETTINGS: dict[str, Callable[[str, Any], Any]] = {
    "weight": checks.nonnegative_float,
    "bn": partial(checks.one_of, options=BN),
    "reestimate_bn": checks.boolean,
    "lr": partial(checks.positive_float, example="1e-3"),
    "epochs": checks.positive_int,
    "optimizer": partial(checks.one_of, options=OPTIMIZERS),
}


# --------------------------------------------------------------------------- the registry
@dataclass(frozen=True)
class Method:
    """An alignment method: how to build its module, and its training defaults.

    ``build(in_features, **options)`` returns the alignment module (``None`` for source only).
    The rest is read once from ``build``'s signature and a trial build, at registration:
    ``options`` (the keyword options ``fit_adapt`` may pass on; None: any), ``takes_classes``
    (``build`` also takes ``num_classes``, the width of the model's class logits) and
    ``forward_takes`` (which of :data:`OFFERED` the module's ``forward`` names).
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
    takes_classes: bool = field(default=False, compare=False)
    forward_takes: tuple[str, ...] = field(default=(), compare=False)


METHODS: dict[str, Method] = {}


def defaults(method: str | nn.Module) -> dict[str, Any]:
    """The training defaults of ``method`` (a registered name, or your module):
    ``weight``, ``bn``, ``reestimate_bn``, ``lr``, ``epochs`` and ``optimizer``.

    >>> defaults("coral")["weight"]
    30.0
    """
    spec = _resolve_method(method)[1]
    return {name: getattr(spec, name) for name in SETTINGS}


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
    METHODS[name] = spec = _method_from(name, build, defaults)
    return spec


_BUILT_IN = ("none", "coral", "mmd", "dann", "cdan", "cdan_e")
_DEFAULTS = (*SETTINGS, "lr_schedule", "options")  # what register_method takes


def _method_from(name: str, build: Any, given: dict[str, Any]) -> Method:
    """A :class:`Method`, after checking ``build`` and every default."""
    if build is not None and not callable(build):
        raise TypeError(
            f"build for method {name!r} must be a callable in_features → nn.Module (or None "
            f"for source only), got {type(build).__name__}"
        )
    unknown = sorted(set(given) - set(_DEFAULTS))
    if unknown:
        raise ValueError(
            f"register_method({name!r}): unknown default(s) {', '.join(unknown)}; "
            f"the defaults are {', '.join(_DEFAULTS)}"
        )
    if given.get("lr_schedule") is not None and not callable(given["lr_schedule"]):
        raise TypeError(
            f"lr_schedule must be a callable progress → factor, got {given['lr_schedule']!r}"
        )
    spec = replace(Method(build), **_checked(given))
    return spec if build is None else replace(spec, **_read_builder(name, build, spec.options))


def _checked(given: dict[str, Any]) -> dict[str, Any]:
    """The settings ``given`` without those left None (the method's default), each training
    setting checked (see :data:`SETTINGS`)."""
    return {k: SETTINGS[k](k, v) if k in SETTINGS else v for k, v in given.items() if v is not None}


def _read_builder(name: str, build: Callable, options: tuple[str, ...] | None) -> dict:
    """What the trainer needs to know of ``build``, read once: the options it takes, whether it
    takes ``num_classes``, and what the ``forward`` of a module it builds (a trial) names."""
    params = inspect.signature(build).parameters
    trial = {"num_classes": 2} if "num_classes" in params else {}
    try:
        inspect.signature(build).bind(8, **trial)
    except TypeError:
        raise TypeError(
            f"build for method {name!r} must take the feature width as its first argument: "
            "build(in_features, **options) → nn.Module"
        ) from None
    if options is None and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        options = _keyword_options(build, (next(iter(params)), "num_classes"))
    with torch.random.fork_rng(devices=[]):
        made = build(8, **trial)
    if not isinstance(made, nn.Module):
        raise TypeError(
            f"build for method {name!r} returned {type(made).__name__}, not an nn.Module "
            "whose forward(zs, zt) returns a scalar loss"
        )
    forward_takes = _forward_arguments(made, name)
    return {"options": options, "takes_classes": bool(trial), "forward_takes": forward_takes}


def _keyword_options(fn: Callable, skip: tuple[str, ...] = ("in_features", "num_classes")):
    """The options ``fn`` (a builder or a loss class) takes by keyword, less those in ``skip``
    (the feature width and the number of classes, which the trainer passes itself)."""
    params = inspect.signature(fn).parameters.values()
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return tuple(p.name for p in params if p.kind in kinds and p.name not in skip)


def _forward_arguments(align: nn.Module, name: str) -> tuple[str, ...]:
    """Which of :data:`OFFERED` ``align.forward`` names, after refusing a ``forward`` that
    cannot be called as the trainer calls it: ``forward(zs, zt, **those)``."""
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
        if p.default is p.empty and p.name not in OFFERED
    ]
    if required:
        raise TypeError(
            f"the alignment module of {name!r} ({type(align).__name__}) requires "
            f"{', '.join(required)}, which the trainer does not offer: it calls forward(zs, zt) "
            f"and passes {', '.join(OFFERED)} by name when forward names them. Give "
            f"{', '.join(required)} a default."
        )
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params)
    return tuple(k for k in OFFERED if takes_any or k in {p.name for p in params})


register_method("none", None, weight=0.0, bn="joint", reestimate_bn=False)
# Deep CORAL (Sun & Saenko 2016): a weight that makes both terms the same order late in training.
register_method("coral", lambda d: CORALLoss(), weight=30.0)
# DAN's multi-kernel MMD (Long et al. 2015).
register_method("mmd", lambda d, **kw: MMDLoss(**kw), options=_keyword_options(MMDLoss))
# DANN (Ganin et al. 2016), CDAN and CDAN+E (Long et al. 2018): μ_p = μ₀ / (1 + 10p)^0.75.
register_method("dann", DomainAdversarialLoss, lr_schedule=lambda p: dann_lr(p, 1.0))
register_method("cdan", ConditionalAdversarialLoss, lr_schedule=lambda p: dann_lr(p, 1.0))
register_method(
    "cdan_e",
    partial(ConditionalAdversarialLoss, entropy_conditioning=True),
    lr_schedule=lambda p: dann_lr(p, 1.0),
    options=tuple(k for k in METHODS["cdan"].options if k != "entropy_conditioning"),  # it is on
)


def _resolve_method(method: str | nn.Module, options: dict | None = None) -> tuple[str, Method]:
    """The method's name and :class:`Method`, after refusing options it does not take."""
    if isinstance(method, nn.Module):
        name = type(method).__name__
        spec = Method(lambda d: method, options=(), forward_takes=_forward_arguments(method, name))
    elif isinstance(method, str) and method in METHODS:
        name, spec = method, METHODS[method]
    else:
        raise ValueError(
            f"unknown method {method!r}; expected one of {', '.join(METHODS)}, or an nn.Module "
            "whose forward(zs, zt) returns a scalar loss"
        )
    unknown = [k for k in options or {} if spec.options is not None and k not in spec.options]
    if unknown:
        hints = [
            f" (did you mean {close[0]!r}?)"
            for k in unknown
            if (close := difflib.get_close_matches(k, spec.options, n=1))
        ]
        raise ValueError(
            f"method {name!r} takes no option {', '.join(map(repr, unknown))}{''.join(hints)}; "
            f"the options it accepts: {', '.join(spec.options) or 'none'}"
        )
    return name, spec


# --------------------------------------------------------------------------- the objective
class AlignedObjective(nn.Module):
    """``CE(logits_s, y_s) + w · align(z_s, z_t)``: the objective ``fit_adapt`` hands to ``fit``.

    Holds the alignment module (so its parameters — a discriminator — are trained too), the
    feature hook and the endless target stream.
    """

    def __init__(self, align: nn.Module, spec: Method, target: Iterator, hook, method: str):
        super().__init__()
        self.align, self.weight, self.bn = align, spec.weight, spec.bn
        self.offers, self.target, self.hook = spec.forward_takes, target, hook
        self.method, self.name = method, f"fit_adapt[{method}]"
        self.checked = False
        self.target_predictions: list[torch.Tensor] = []  # the target classes predicted this epoch

    def forward(self, model: nn.Module, xs: torch.Tensor, ys: torch.Tensor, progress: float):
        xt = next(self.target).to(xs.device, non_blocking=True)
        self.hook.output = None  # forget what a forward outside the training step recorded
        if self.bn == "joint":  # one batch: BatchNorm sees the mixture's statistics
            logits, z = model(torch.cat([xs, xt])), self.hook.take()
            logits_s, logits_t = logits[: len(xs)], logits[len(xs) :]
            zs, zt = z[: len(xs)], z[len(xs) :]
        else:  # a pass per domain: each normalised with its own batch statistics
            logits_s, zs = model(xs), self.hook.take()
            logits_t, zt = model(xt), self.hook.take()
        class_loss = F.cross_entropy(logits_s.float(), ys)
        if logits_t.dim() == 2:  # (a model without (N, C) logits: nothing to count)
            self.target_predictions.append(logits_t.detach().argmax(1).cpu())
        offered = {"progress": progress, "logits_s": logits_s, "logits_t": logits_t}
        align_loss = self.align(zs.float(), zt.float(), **{k: offered[k] for k in self.offers})
        _check_scalar(align_loss, self.name)
        if not self.checked and not align_loss.requires_grad and torch.is_grad_enabled():
            warnings.warn(
                f"fit_adapt: the alignment loss of method {self.method!r} carries no gradient "
                "to the features (a constant, or computed without autograd), so training "
                "aligns nothing: it is source-only. Build the loss from zs and zt with torch "
                "operations.",
                UserWarning,
                stacklevel=2,
            )
        self.checked = True  # once, at the first step
        logs = {"class_loss": class_loss.item(), "align_loss": align_loss.item()}
        logs.update(getattr(self.align, "logs", {}))
        return class_loss + self.weight * align_loss, logits_s, logs

    def on_epoch_end(self, state: train.FitState) -> None:
        """(A ``fit`` callback.) Record ``target_majority_share`` of this epoch's target steps."""
        if self.target_predictions:
            counts = torch.bincount(torch.cat(self.target_predictions))
            share = counts.max() / counts.sum()
            state.history.records[-1]["target_majority_share"] = float(share)
        self.target_predictions = []


class AlignmentError(TypeError):
    """An alignment module that returned something other than a scalar tensor."""


def _check_scalar(loss: Any, name: str) -> None:
    """The alignment term must be a scalar tensor (a vector would be summed, a float has no
    gradient)."""
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        got = f"shape {tuple(loss.shape)}" if torch.is_tensor(loss) else type(loss).__name__
        raise AlignmentError(
            f"{name}: the alignment module must return a scalar tensor (e.g. x.mean() or "
            f"x.sum()), got {got}"
        )


def _check_collapse(
    model: nn.Module, target: Any, history: train.History, device: torch.device, name: str
) -> None:
    """After training: predict the first :data:`CHECK_IMAGES` target images (no labels read),
    set ``history.last["collapsed"]`` and warn with the reason when the run collapsed."""
    if target is None:  # a source-only run without a target: nothing to check
        return
    predictions, seen = [], 0
    with runtime.eval_mode(model), torch.no_grad():
        for x in input_batches(target, 256):
            logits = model(x[: CHECK_IMAGES - seen].to(device))
            if not (isinstance(logits, torch.Tensor) and logits.dim() == 2):
                return  # not a classifier's (N, C) logits: nothing to check
            predictions.append(logits.argmax(1).cpu())
            seen += len(logits)
            if seen >= CHECK_IMAGES:
                break
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


# --------------------------------------------------------------------------- the aligned run
def _fit_aligned(model, source, target, name: str, spec: Method, layer: str, options, fit_options):
    """``train.fit`` with the :class:`AlignedObjective` of ``spec`` on ``layer``'s features;
    then BatchNorm statistics re-estimated on the target (``spec.reestimate_bn``). Source only
    (a method without ``build``): ``train.fit`` as it is."""
    if spec.build is None:
        return train.fit(model, source, **fit_options)
    checks.module("model", model)
    if target is None or data_length(target, "target") < 2:
        raise ValueError(f"method {name!r} needs a target with at least 2 images")
    folders = [as_dataset(d) for d in (source, target)]
    if all(isinstance(d, ImageFolderDomain) for d in folders):  # class names from folder names:
        check_same_classes(*folders)  # label k must mean the same class in both domains
    xs, device = _first_images(source, target), fit_options["device"]
    model.to(device)
    stream = _target_stream(target, fit_options["batch_size"], device)
    with FeatureHook(model, layer) as hook:
        in_features, num_classes = _probe(model, hook, xs, device)
        classes = {"num_classes": num_classes} if spec.takes_classes else {}
        align = spec.build(in_features, **classes, **options)  # a module: checked at registration
        objective = AlignedObjective(align, spec, stream, hook, name)
        callbacks = [*(fit_options.pop("callbacks") or []), objective]
        buffers = {k: v.clone() for k, v in model.named_buffers()}
        try:
            history = train.fit(
                model, source, objective=objective, callbacks=callbacks, **fit_options
            )
        except AlignmentError:  # refused at the first step: undo its BatchNorm updates
            model.load_state_dict(buffers, strict=False)
            raise
    if spec.reestimate_bn:
        estimate_bn_statistics(model, target, include_frozen=False, device=device, progress=False)
    model.eval()
    return history


def _target_stream(target: Any, batch_size: int, device: torch.device) -> Iterator:
    """Endless target image batches of a fixed size: the target cycled, reshuffled at every
    pass (under torchrun: this process's shard of each pass, shuffled alike on every rank)."""
    rank, world = ddp.distributed(device)  # (0, 1) unless started by torchrun
    seed = ddp.same_on_every_rank(int(torch.randint(0, 2**31 - 1, ()).item()))
    generator = torch.Generator().manual_seed(seed)
    shard = -(-data_length(target) // world)  # target images per process
    if shard < 2:
        raise ValueError(
            f"{world} processes share {data_length(target)} target images: each needs at "
            "least 2 (BatchNorm trains on a batch's statistics); start fewer processes"
        )
    size = min(batch_size, shard)
    return chain.from_iterable(  # one pass after another, each shuffled anew
        input_batches(target, size, shuffle=True, generator=generator, drop_last=True,
                      rank=rank, world_size=world)
        for _ in count()
    )  # fmt: skip


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
        method: a registered name (:data:`METHODS`, the table in the module doc) or an
            ``nn.Module`` whose ``forward(zs, zt)`` returns a scalar loss.
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
        **method_options: passed to the method's module (the table in the module doc:
            ``kernel=`` for ``"mmd"``, ``discriminator=`` for ``"dann"``, …).

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
    name, spec = _resolve_method(method, method_options)
    given = dict(weight=weight, bn=bn, reestimate_bn=reestimate_bn, lr=lr, epochs=epochs)
    spec = replace(spec, **_checked(dict(optimizer=optimizer, **given)))
    checks.positive_int("batch_size", batch_size, minimum=2)
    if seed is not None:
        runtime.seed_everything(seed)
    fit_options = dict(
        epochs=spec.epochs,
        lr=spec.lr,
        optimizer=spec.optimizer,
        lr_schedule=spec.lr_schedule,
        batch_size=batch_size,
        weight_decay=weight_decay,
        val=val,
        callbacks=callbacks,
        device=runtime.get_device(device),
        amp=amp,
        progress=progress,
    )
    history = _fit_aligned(model, source, target, name, spec, layer, method_options, fit_options)
    _check_collapse(model, target, history, fit_options["device"], f"fit_adapt[{name}]")
    return history
