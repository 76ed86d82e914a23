"""The fine-tuning experiment: target accuracy against the number of labels, per strategy.

Lesson 01 asks one question: *with only k labelled target images per class, which way of
reusing a source model works best?* Five strategies, one shared training budget:

========================  ==============================================================
``"scratch"``             the same architecture, weights re-initialised (no transfer)
``"head"``                source weights, new head; only the head trains, BatchNorm frozen
                          (``freeze.freeze_to(net, 1)``)
``"full"``                source weights, new head; everything trains (ordinary BatchNorm)
``"gradual"``             source weights, new head; ULMFiT's gradual unfreezing
                          (``freeze.GradualUnfreezing``): the head first, one more block
                          each epoch, deeper blocks at smaller learning rates
``"discriminative"``      source weights, new head; everything trains from the first step,
                          each block at its own learning rate, spread geometrically from
                          ``lr / head_lr_mult`` (first block) to ``lr × head_lr_mult`` (head)
                          (ULMFiT's discriminative fine-tuning, fastai's ``slice``)
========================  ==============================================================

Protocol: every hyperparameter lives in :class:`Recipe` and was fixed before looking at any
target result; the target *test* split is only ever evaluated, once per run, at the end.
Every strategy gets the same number of optimizer steps, drawn from the few-shot set (an
"epoch" is ``steps_per_epoch`` batches, so the schedule does not depend on how many labels
there are). Mean ± std over seeds, where a seed fixes the few-shot draw, the new head's
initialisation and the batch order.

    from tlearn.studies.finetune import few_shot_curve
    from tlearn.studies.source import source_model

    results = few_shot_curve(source=source_model(), target_train=tr, target_test=te)
    results.plot(); print(results)
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from html import escape
from typing import Any, Literal

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.data import DataLoader, Dataset, RandomSampler

from tlearn import data, freeze, models, runtime, train
from tlearn.data.base import data_length, input_batches

__all__ = [
    "METHODS",
    "METHOD_LABELS",
    "Recipe",
    "few_shot_loader",
    "prepare",
    "fine_tune",
    "few_shot_curve",
    "head_only_on_features",
    "train_eval_agreement",
    "feature_drift",
    "FewShotResults",
]

METHODS = ("scratch", "head", "full", "gradual", "discriminative")
METHOD_LABELS = {
    "scratch": "from scratch",
    "head": "head only",
    "full": "full fine-tune",
    "gradual": "gradual unfreezing",
    "discriminative": "discriminative LRs",
}


@dataclass(frozen=True)
class Recipe:
    """The training schedule all strategies share. Fixed in advance — never tuned on target data.

    Defaults: Adam, body at ``lr = 1e-3`` (Adam's usual step size, Kingma & Ba 2015; fastai's
    ``fine_tune`` uses 2e-3), the new head at ``head_lr_mult × lr`` = 1e-2 (d2l's fine-tuning
    recipe: the output layer learns 10× faster than the pretrained layers it sits on;
    "scratch" has no pretrained layers to protect and trains everything at ``lr``),
    5 epochs × 6 steps of (up to) 16 images = 30 steps.
    Gradual unfreezing adds one block per epoch (``every=1``), so DigitNet's 5 blocks are all
    trainable in the last epoch; the block j below the head learns at ``lr / decay**(j−1)``
    (ULMFiT's factor 2.6).

    ``bn`` — what BatchNorm does while the body trains:

    * ``"batch"``: each method's default — ordinary BatchNorm for "full" and "scratch"
      (normalise with the current batch's statistics, update the running ones: train mode),
      frozen for "head", frozen until unfrozen for "gradual";
    * ``"frozen"``: every BatchNorm layer frozen (affine and statistics) at the *source*
      statistics — the usual advice for tiny batches;
    * ``"target"``: the statistics are first re-estimated on the few-shot training images
      (AdaBN, :func:`tlearn.bn.estimate_bn_statistics`), then frozen.

    "frozen" and "target" apply to "full", "discriminative", "scratch" and "head" (not
    "gradual", whose callback manages BatchNorm block by block).

    ``reestimate_bn``: after training, re-estimate the running statistics of every *unfrozen*
    BatchNorm layer over the few-shot training set. After a few dozen steps the exponential
    running averages still lag behind weights that moved fast — a model trained from scratch
    then misclassifies, in eval mode, training images it fits in train mode. Frozen
    BatchNorm layers are left alone. Uses training images only.
    """

    epochs: int = 5
    steps_per_epoch: int = 6
    batch_size: int = 16
    lr: float = 1e-3
    head_lr_mult: float = 10.0
    every: int = 1
    decay: float = 2.6
    bn: Literal["batch", "frozen", "target"] = "batch"
    reestimate_bn: bool = True

    def __post_init__(self) -> None:
        for name in ("epochs", "steps_per_epoch", "batch_size", "every"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"Recipe.{name} must be an int >= 1, got {v!r}")
        if not (self.lr > 0 and self.decay > 0 and self.head_lr_mult > 0):
            raise ValueError(
                "Recipe.lr, head_lr_mult and decay must be > 0, got "
                f"{self.lr}, {self.head_lr_mult}, {self.decay}"
            )
        if self.bn not in ("batch", "frozen", "target"):
            raise ValueError(f"Recipe.bn must be 'batch', 'frozen' or 'target', got {self.bn!r}")

    @property
    def steps(self) -> int:
        return self.epochs * self.steps_per_epoch


def few_shot_loader(dataset: Dataset, *, batch_size: int, steps: int, seed: int = 0) -> DataLoader:
    """``steps`` batches of ``min(batch_size, len(dataset))`` images, reshuffled every pass.

    A few-shot set is smaller than one epoch of an ordinary loader needs: with 10 images an
    epoch of ``data.make_loader`` is a single step. So an "epoch" here is a fixed number of
    steps, however many labels there are. Sampling is without replacement within a pass
    over the data (a pass is a fresh permutation), so with 10 images and batch size 32 each
    batch is the whole (shuffled) set. Reproducible by ``seed``; iterating the loader again
    (the next epoch) draws new batches.
    """
    n = data_length(dataset, "few_shot_loader's dataset")  # the data layer's check: not empty
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {steps}, {batch_size}")
    bs = min(batch_size, n)
    generator = torch.Generator().manual_seed(seed)
    sampler = RandomSampler(dataset, num_samples=steps * bs, generator=generator)
    return DataLoader(dataset, batch_size=bs, sampler=sampler)


def _reinitialise(model: nn.Module) -> nn.Module:
    """Fresh random weights (PyTorch's default init) and fresh BatchNorm statistics."""
    for m in model.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
        if isinstance(m, _BatchNorm):
            m.reset_running_stats()
    return model


def prepare(
    method: str,
    source: nn.Module,
    *,
    num_classes: int = 10,
    seed: int = 0,
    recipe: Recipe | None = None,
) -> tuple[nn.Module, list]:
    """A copy of ``source`` set up for ``method``, and the ``train.fit`` callbacks it needs.

    The source model is never changed. The head (``models.head_name(model)``) is always a
    new, randomly initialised layer (seeded by ``seed``) — even when, as here, source and
    target share their classes: this is the general recipe.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    recipe = recipe or Recipe()
    torch.manual_seed(seed)
    net = copy.deepcopy(source)
    freeze.unfreeze(net)  # whatever state the source was left in
    if method == "scratch":
        _reinitialise(net)
    models.replace_head(net, num_classes)
    callbacks: list = []
    if method in ("head", "gradual"):
        freeze.freeze_to(net, 1)
    if method == "gradual":
        callbacks.append(
            freeze.GradualUnfreezing(every=recipe.every, lr=recipe.lr, decay=recipe.decay)
        )
    if recipe.bn != "batch" and method == "gradual":
        raise ValueError("Recipe.bn 'frozen'/'target' does not apply to 'gradual'; use 'batch'")
    return net, callbacks


def fine_tune(
    method: str,
    train_set: Dataset,
    *,
    source: nn.Module,
    recipe: Recipe | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = False,
):
    """Prepare ``source`` for ``method`` and train it on ``train_set`` with ``recipe``.

    The training is the library's :func:`tlearn.train.fine_tune` with no head-only stage
    (``head_epochs=0``; "head" is the head-only stage alone), Adam over the trainable
    parameters: the head at ``recipe.head_lr_mult × recipe.lr``, the rest at ``recipe.lr``;
    "scratch" trains everything at ``recipe.lr``; "discriminative" gives each block its own
    group, geometrically from ``recipe.lr / recipe.head_lr_mult`` (first block) to
    ``recipe.lr × recipe.head_lr_mult`` (head); "gradual" hands ``GradualUnfreezing`` to it.
    ``device``: :func:`tlearn.runtime.get_device` (argument, else ``TLEARN_DEVICE``, else
    the fastest available). Returns ``(model, history)``; the model is in eval mode.
    """
    recipe = recipe or Recipe()
    num_classes = getattr(train_set, "num_classes", None) or int(max(train_set.labels)) + 1
    net, callbacks = prepare(method, source, num_classes=num_classes, seed=seed, recipe=recipe)
    loader = few_shot_loader(
        train_set, batch_size=recipe.batch_size, steps=recipe.steps_per_epoch, seed=seed
    )
    head_only = method == "head"
    history = train.fine_tune(
        net,
        loader,
        epochs=0 if head_only else recipe.epochs,
        head_epochs=recipe.epochs if head_only else 0,
        lr=recipe.lr,
        head_lr_mult=1.0 if method == "scratch" else recipe.head_lr_mult,
        discriminative=method == "discriminative",
        bn=recipe.bn,
        reestimate_bn=recipe.reestimate_bn,
        callbacks=callbacks,
        device=runtime.get_device(device),
        progress=progress,
    )
    return net, history


def few_shot_curve(
    *,
    source: nn.Module,
    target_train: Dataset,
    target_test: Dataset,
    methods: Sequence[str] = METHODS,
    per_class: Sequence[int] = (1, 5, 10, 30),
    seeds: Sequence[int] = (0, 1, 2),
    recipe: Recipe | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> FewShotResults:
    """Target test accuracy of every method, at every labels-per-class count, for every seed.

    For each seed and count ``k``: ``data.few_shot(target_train, k, seed)`` draws the labelled
    set (the same set for every method), each method trains on it with ``recipe``, and the
    model is evaluated once on ``target_test``. Nothing is selected on ``target_test``.
    """
    recipe = recipe or Recipe()
    device = runtime.get_device(device)
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"unknown method {m!r}; choose from {METHODS}")
    if not per_class or any(not isinstance(k, int) or k < 1 for k in per_class):
        raise ValueError(f"per_class must be positive ints, got {per_class!r}")
    if not seeds:
        raise ValueError("seeds must not be empty")
    results = FewShotResults(recipe=recipe, started=time.time())
    jobs = [(s, k, m) for s in seeds for k in per_class for m in methods]
    few_sets: dict[tuple[int, int], Dataset] = {}
    for seed, k, method in runtime.progress_bar(
        jobs, enabled=progress, desc="few-shot runs", unit="run"
    ):
        if (seed, k) not in few_sets:
            few_sets = {(seed, k): data.few_shot(target_train, k, seed=seed)}
        t0 = time.perf_counter()
        net, hist = fine_tune(
            method, few_sets[seed, k], source=source, recipe=recipe, seed=seed, device=device
        )
        acc = train.evaluate(net, target_test, device=device)["accuracy"]
        results.rows.append(
            {
                "method": method,
                "per_class": k,
                "seed": seed,
                "accuracy": acc,
                "train_accuracy": hist.last["train_accuracy"],
                "seconds": time.perf_counter() - t0,
            }
        )
    return results


@torch.no_grad()
def _features(model: nn.Module, images: torch.Tensor, device, batch_size: int = 32) -> torch.Tensor:
    """``model.features`` of every image (eval mode, on ``device``), as float32 on the CPU."""
    model.to(device).eval()  # as train.evaluate does: the model moves to the device
    batches = input_batches(images, batch_size)  # the data layer's batching, in order
    return torch.cat([model.features(x.to(device)).float().cpu() for x in batches])


def head_only_on_features(
    model: nn.Module,
    *,
    target_train: Dataset,
    target_test: Dataset,
    per_class: int = 10,
    seeds: Sequence[int] = (0, 1, 2),
    recipe: Recipe | None = None,
    device: str | torch.device | None = None,
) -> list[float]:
    """Head-only fine-tuning of a big frozen backbone, computing its features only once.

    With every block frozen (BatchNorm frozen, dropout off) the body is a fixed function
    ``x ↦ z = model.features(x)``, so training a new head on it is the same computation as
    ``fine_tune("head", …)`` — same seeds, few-shot sets, head initialisation, batches and
    learning rate (``recipe.head_lr_mult × recipe.lr``) — without re-running the backbone
    at every step. (The one difference: a backbone whose body ends in dropout, such as
    EfficientNet's, applies it to ``z`` during ``fine_tune``; here it does not.)

    ``model`` needs ``.features`` (images → vectors) and ``.head`` (an ``nn.Linear``), like
    ``models.DigitNet`` and ``models.for_digits(...)``. Returns the test accuracy per seed.
    """
    recipe = recipe or Recipe()
    device = runtime.get_device(device)
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Linear) or not hasattr(model, "features"):
        raise ValueError("model needs .features and an nn.Linear .head (DigitNet, for_digits)")
    z_test = _features(model, target_test.images, device)
    y_test = target_test.labels
    accuracies = []
    for seed in seeds:
        few = data.few_shot(target_train, per_class, seed=seed)
        z = _features(model, few.images, device)
        torch.manual_seed(seed)  # as in prepare(): the new head is the first random draw
        new_head = nn.Linear(head.in_features, target_train.num_classes)
        opt = torch.optim.Adam(new_head.parameters(), lr=recipe.lr * recipe.head_lr_mult)
        loader = few_shot_loader(  # the same batches fine_tune/fit draw, epoch by epoch
            torch.utils.data.TensorDataset(z, few.labels),
            batch_size=recipe.batch_size,
            steps=recipe.steps_per_epoch,
            seed=seed,
        )
        for _ in range(recipe.epochs):
            for zb, yb in loader:
                opt.zero_grad(set_to_none=True)
                nn.functional.cross_entropy(new_head(zb), yb).backward()
                opt.step()
        with torch.no_grad():
            accuracies.append((new_head(z_test).argmax(1) == y_test).float().mean().item())
    return accuracies


@torch.no_grad()
def train_eval_agreement(model: nn.Module, dataset: Dataset, *, batch_size: int) -> float:
    """How often the model predicts the same class in train mode as in eval mode.

    In train mode a BatchNorm layer normalises with the statistics of the current batch
    (``batch_size`` images); in eval mode with its running averages. The smaller the batch,
    the noisier the batch statistics and the more the *trained* network (train mode)
    differs from the *tested* one (eval mode). Frozen BatchNorm agrees by construction.
    Works on a copy: the model's running statistics are not touched. Uses no labels.
    """
    if batch_size < 2:
        raise ValueError("batch_size must be >= 2 (BatchNorm needs two values per channel)")
    twin = copy.deepcopy(model)
    x = dataset.images if hasattr(dataset, "images") else torch.stack([d[0] for d in dataset])
    device = next(twin.parameters()).device
    x = x.to(device)
    twin.eval()
    eval_pred = twin(x).argmax(1)
    twin.train()
    n = (len(x) // batch_size) * batch_size  # full batches only
    train_pred = torch.cat([twin(x[i : i + batch_size]).argmax(1) for i in range(0, n, batch_size)])
    return (train_pred == eval_pred[:n]).float().mean().item()


@torch.no_grad()
def feature_drift(before: nn.Module, after: nn.Module, images: torch.Tensor) -> float:
    """Relative change of the features: ``‖f_after(x) − f_before(x)‖ / ‖f_before(x)‖`` (eval mode).

    Zero when the feature extractor was truly frozen.
    """
    before.eval(), after.eval()
    z0, z1 = before.features(images), after.features(images)
    return (torch.linalg.norm(z1 - z0) / torch.linalg.norm(z0)).item()


@dataclass
class FewShotResults:
    """Rows ``{method, per_class, seed, accuracy, train_accuracy, seconds}`` and views on them.

    ``summary()`` → ``{(method, k): (mean, std, n)}`` (std with ddof=1, over seeds);
    ``curves()`` → what :func:`tlearn.plot.curves` takes; ``plot()`` → a Figure;
    prints as a text table, renders as an HTML table in Jupyter. ``started``: when
    :func:`few_shot_curve` began (``time.time()``), so a prediction can be shown to predate it.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    recipe: Recipe | None = None
    started: float | None = None

    @property
    def methods(self) -> list[str]:
        return list(dict.fromkeys(r["method"] for r in self.rows))

    @property
    def per_class(self) -> list[int]:
        return sorted({r["per_class"] for r in self.rows})

    @property
    def seeds(self) -> list[int]:
        return sorted({r["seed"] for r in self.rows})

    def accuracies(self, method: str, per_class: int) -> list[float]:
        """The accuracies of every seed for one (method, k) cell, in seed order."""
        rows = [r for r in self.rows if r["method"] == method and r["per_class"] == per_class]
        return [r["accuracy"] for r in sorted(rows, key=lambda r: r["seed"])]

    def summary(self) -> dict[tuple[str, int], tuple[float, float, int]]:
        out = {}
        for m in self.methods:
            for k in self.per_class:
                a = np.asarray(self.accuracies(m, k), dtype=float)
                if a.size:
                    std = float(a.std(ddof=1)) if a.size > 1 else 0.0
                    out[m, k] = (float(a.mean()), std, int(a.size))
        return out

    def mean(self, method: str, per_class: int) -> float:
        return self.summary()[method, per_class][0]

    def curves(self) -> dict[str, np.ndarray]:
        """``{label: seeds × len(per_class)}`` accuracies (NaN where missing)."""
        out = {}
        for m in self.methods:
            a = np.full((len(self.seeds), len(self.per_class)), np.nan)
            for r in self.rows:
                if r["method"] == m:
                    a[self.seeds.index(r["seed"]), self.per_class.index(r["per_class"])] = r[
                        "accuracy"
                    ]
            out[METHOD_LABELS.get(m, m)] = a
        return out

    def plot(
        self,
        title: str | None = None,
        *,
        baseline: float | None = None,
        baseline_label: str | None = None,
    ) -> Figure:
        """Accuracy against labels per class (log axis), mean ± std band per method;
        ``baseline`` (e.g. the source model with no target label) as a dotted line with
        ``baseline_label`` in the legend."""
        from tlearn import plot  # here, not at the top: pyplot's import is slow

        return plot.curves(
            self.per_class,
            self.curves(),
            xlabel="labelled target images per class",
            ylabel="target test accuracy",
            title=title or "Fine-tuning with few labels (mean ± std over seeds)",
            logx=True,
            baseline=baseline,
            baseline_label=baseline_label,
        )

    def _cells(self) -> tuple[list[str], list[list[str]]]:
        summary = self.summary()
        header = ["method"] + [f"{k}/class" for k in self.per_class]
        body = []
        for m in self.methods:
            row = [METHOD_LABELS.get(m, m)]
            for k in self.per_class:
                if (m, k) in summary:
                    mu, sd, _ = summary[m, k]
                    row.append(f"{100 * mu:.1f} ± {100 * sd:.1f}")
                else:
                    row.append("—")
            body.append(row)
        return header, body

    def __str__(self) -> str:
        header, body = self._cells()
        widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
        lines = [
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
            for r in [header, *body]
        ]
        lines.insert(1, "-" * len(lines[0]))
        n = len(self.seeds)
        lines.append(f"target test accuracy %, mean ± std over {n} seed{'s' * (n != 1)}")
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        header, body = self._cells()
        th = "".join(f"<th>{escape(h)}</th>" for h in header)
        trs = "".join(
            "<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in body
        )
        n = len(self.seeds)
        return (
            f"<table><caption>target test accuracy %, mean ± std over {n} seeds</caption>"
            f"<thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for json): the rows and the recipe."""
        return {
            "rows": [dict(r) for r in self.rows],
            "recipe": asdict(self.recipe) if self.recipe else None,
        }
