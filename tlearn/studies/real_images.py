"""Lesson 07: the strategies on real photos — cached runs, the LR range test, augmentation.

The question: with ``per_class`` labelled photos per class (the embedded ``"fashion"``
domain: Fashion-MNIST, Xiao et al. 2017), how do an ImageNet network's *frozen* features
(a linear probe), *fine-tuning* it, and *training the same network from scratch* compare?

==============  ================================================================
``"finetune"``  EfficientNet-Lite0 with ImageNet weights, new 10-class head, every
                weight trains (``train.fit``), with or without data augmentation
``"scratch"``   the same network with random weights, trained identically
==============  ================================================================

(The linear probe needs no training run: the lesson extracts features once, with
``features.FeatureCache``, and fits ``probes.linear_probe`` in milliseconds.)

Protocol: the few-shot set is ``data.few_shot(train, per_class, seed)``; the learning rate
comes from an LR range test on those training images (:func:`lr_range_test`); the test
split is evaluated once per run, at the end, and never chooses anything. A run's result
(accuracy, per-image test losses and predictions, the training history) is cached under
``TLEARN_CACHE`` keyed by its :class:`RunConfig`; fine-tuned weights are kept too, so the
lesson can predict on new photos without training again.

    from tlearn.studies import real_images as ri
    cfg = ri.RunConfig("finetune", seed=0, lr=1e-3)
    result = ri.run(cfg)                        # trains once (≈ a minute on 2 cores), then cached
    net = ri.trained_model(cfg)                 # the fine-tuned network
"""

from __future__ import annotations

import copy
import functools
import io
import json
import math
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tlearn import data, models, runtime, train
from tlearn.bn import estimate_bn_statistics
from tlearn.data.base import batches
from tlearn.train import classification_loss

__all__ = [
    "STRATEGIES",
    "RunConfig",
    "augmentation",
    "build_model",
    "lr_range_test",
    "lowest_loss_lr",
    "suggest_lr",
    "cached_lr_range_test",
    "run",
    "trained_model",
    "load_data",
    "REG_METHODS",
    "RegConfig",
    "regularised_run",
    "regularisation_comparison",
    "weight_drift",
    "linear_cka",
    "feature_drift",
]

STRATEGIES = ("finetune", "scratch")
# Fashion-MNIST photos are 28×28: 32 px keeps every detail they have and costs a quarter of 64 px
IMAGE_SIZE = 32
LR_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)  # suggest_lr snaps to these half-decades


@dataclass(frozen=True)
class RunConfig:
    """One training run. Everything that changes the result is here (it names the cache entry).

    ``epochs × ceil(10·per_class / batch_size)`` optimizer steps (8 × 4 = 32 by default) of
    Adam at ``lr``; ``augment``: :func:`augmentation` on every training batch.
    ``reestimate_bn``: after training, BatchNorm's running statistics are re-estimated on the
    few-shot training photos (``bn.estimate_bn_statistics``): after 32 steps the running
    averages still lag behind the weights, and a network evaluated with them can fall to
    chance (lesson 01's recipe does the same).
    """

    strategy: str
    seed: int = 0
    per_class: int = 10
    image_size: int = IMAGE_SIZE
    epochs: int = 8
    batch_size: int = 25
    lr: float = 1e-3
    augment: bool = True
    domain: str = "fashion"
    reestimate_bn: bool = True

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        for name in ("per_class", "epochs", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"RunConfig.{name} must be an int >= 1, got {v!r}")
        if not self.lr > 0:
            raise ValueError(f"RunConfig.lr must be > 0, got {self.lr}")

    def key(self) -> str:
        return runtime.cache_key(asdict(self), versioned=False)


# --------------------------------------------------------------------------- the ingredients
def augmentation(image_size: int = IMAGE_SIZE):
    """Label-preserving changes of one C×H×W photo in [0, 1] (torchvision.transforms.v2).

    A product photo stays the same product when it is mirrored left–right, shifted or
    zoomed a little, or lit a little differently. Not upside down: the test photos are all
    upright, so a vertically flipped shoe is an image the network never has to classify.
    """
    from torchvision.transforms import v2  # here, not at the top: torchvision's import is slow

    return v2.Compose(
        [
            v2.RandomResizedCrop(image_size, scale=(0.7, 1.0), ratio=(0.85, 1.15), antialias=True),
            v2.RandomHorizontalFlip(p=0.5),
            v2.ColorJitter(brightness=0.3, contrast=0.3),
        ]
    )


def augmented_objective(augment):
    """``train.fit``'s objective: cross-entropy on an augmented copy of each training batch
    (each image drawn its own random crop, flip and jitter)."""

    def objective(model, x, y, progress):
        x = torch.stack([augment(img) for img in x])
        return classification_loss(model, x, y, progress)

    objective.name = "fit+augment"
    return objective


def build_model(strategy: str = "finetune", *, num_classes: int = 10, seed: int = 0) -> nn.Module:
    """EfficientNet-Lite0 (ImageNet weights for ``"finetune"``, random for ``"scratch"``) with a
    new ``num_classes`` head, behind the normalisation it expects::

        normalize   (x − 0.5) / 0.5, per RGB channel   (models.normalization)
        net         the backbone; net.avgpool → the 1280 features, net.classifier.1 → logits
    """
    from torchvision.transforms import v2  # here, not at the top: torchvision's import is slow

    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    torch.manual_seed(seed)
    backbone = models.load_backbone("efficientnet_lite0", pretrained=strategy == "finetune")
    models.replace_head(backbone, num_classes)
    mean, std = models.normalization(backbone)
    return nn.Sequential(OrderedDict(normalize=v2.Normalize(mean, std), net=backbone))


def load_data(domain: str = "fashion", *, image_size: int = IMAGE_SIZE, **kwargs):
    """``(train, test)`` of ``domain`` as 3-channel ``image_size`` photos (``data.load_domain``)."""
    train = data.load_domain(domain, "train", channels=3, image_size=image_size, **kwargs)
    test = data.load_domain(domain, "test", channels=3, image_size=image_size, **kwargs)
    return train, test


# --------------------------------------------------------------------------- LR range test
def lr_range_test(
    model: nn.Module,
    data,
    *,
    start: float = 1e-5,
    end: float = 1.0,
    steps: int = 30,
    batch_size: int = 25,
    seed: int = 0,
    objective=None,
    device=None,
) -> dict[str, list[float]]:
    """Smith's LR range test (*Cyclical Learning Rates*, WACV 2017; fastai's ``lr_find``).

    Train a *copy* of ``model`` for ``steps`` Adam steps while the learning rate grows
    geometrically from ``start`` to ``end``, ``lr_i = start · (end/start)^(i/(steps−1))``,
    and record each batch's loss. The loss falls where the rate is useful and blows up where
    it is too large; stops early once the loss exceeds 4× its minimum. ``model`` itself is
    not changed. Returns ``{"lr": [...], "loss": [...]}``.

    >>> from tlearn.data import DigitDataset
    >>> _ = torch.manual_seed(0)
    >>> ds = DigitDataset(torch.randn(64, 1, 4, 4), torch.arange(64) % 2)
    >>> out = lr_range_test(nn.Sequential(nn.Flatten(), nn.Linear(16, 2)), ds, steps=5,
    ...                     batch_size=16, device="cpu")
    >>> len(out["lr"]), len(out["loss"]), f"{out['lr'][0]:.0e} … {out['lr'][-1]:.0e}"
    (5, 5, '1e-05 … 1e+00')
    """
    if not (0 < start < end) or steps < 2:
        raise ValueError(f"need 0 < start < end and steps >= 2, got {start}, {end}, {steps}")
    objective = objective or classification_loss
    device = runtime.get_device(device)
    net = copy.deepcopy(model).to(device).train()
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=start)
    gen = torch.Generator().manual_seed(seed)
    lrs, losses = [], []

    def stream():
        while True:
            yield from batches(data, batch_size, shuffle=True, generator=gen)

    for i, (x, y) in zip(range(steps), stream(), strict=False):
        lr = start * (end / start) ** (i / (steps - 1))
        for group in opt.param_groups:
            group["lr"] = lr
        loss, _, _ = objective(net, x.to(device), y.to(device), i / (steps - 1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        lrs.append(lr)
        losses.append(loss.item())
        if not math.isfinite(losses[-1]) or losses[-1] > 4 * min(losses):
            break
    return {"lr": lrs, "loss": losses}


def lowest_loss_lr(result: dict[str, list[float]]) -> float:
    """The learning rate where the LR range test's loss, smoothed over 3 steps, is lowest."""
    loss = np.asarray(result["loss"], dtype=float)
    lr = np.asarray(result["lr"], dtype=float)
    if len(loss) < 3 or len(loss) != len(lr):
        raise ValueError("an LR range test result needs >= 3 steps of 'lr' and 'loss'")
    smooth = np.convolve(loss, np.ones(3) / 3, mode="same")
    smooth[0], smooth[-1] = loss[:2].mean(), loss[-2:].mean()
    return float(lr[int(np.argmin(smooth))])


def suggest_lr(result: dict[str, list[float]], *, grid=LR_GRID) -> float:
    """A learning rate from an LR range test: :func:`lowest_loss_lr` divided by 10 — still on
    the falling part of the curve, well before it blows up (Smith 2017; fastai's "minimum /
    10" rule) — snapped to the nearest value of ``grid`` in log scale, so small changes of
    the curve do not change the runs.

    >>> suggest_lr({"lr": [1e-4, 1e-3, 1e-2, 1e-1, 1.0], "loss": [2.3, 2.2, 1.5, 1.4, 9.0]})
    0.001
    """
    best = lowest_loss_lr(result) / 10
    grid = np.asarray(grid, dtype=float)
    return float(grid[np.argmin(np.abs(np.log(grid) - np.log(best)))])


def cached_lr_range_test(
    strategy: str = "finetune", *, per_class: int = 10, image_size: int = IMAGE_SIZE, seed: int = 0,
    steps: int = 30, augment: bool = True, domain: str = "fashion",
) -> dict[str, list[float]]:  # fmt: skip
    """:func:`lr_range_test` of :func:`build_model` on the few-shot training set, cached."""
    spec = dict(strategy=strategy, per_class=per_class, image_size=image_size, seed=seed,
                steps=steps, augment=augment, domain=domain)  # fmt: skip
    key = runtime.cache_key(spec, versioned=False)
    relpath = f"real_images/lr_range-{key}.json"
    found = runtime.load_cached(relpath, lambda p: json.loads(p.read_text()))
    if found is not None:
        return found
    train, _ = load_data(domain, image_size=image_size)
    few = data.few_shot(train, per_class=per_class, seed=seed)
    objective = augmented_objective(augmentation(image_size)) if augment else None
    result = lr_range_test(build_model(strategy, seed=seed), few, steps=steps, seed=seed,
                           objective=objective)  # fmt: skip
    runtime.save_cached(relpath, lambda f: f.write(json.dumps(result).encode()))
    return result


# --------------------------------------------------------------------------- cached runs
def _read(path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=False)


def run(config: RunConfig, *, progress: bool = False) -> dict[str, Any]:
    """Train ``config`` once (then read it from the cache); return its result::

    {"config": {...}, "accuracy": float, "loss": float,
     "test_losses": float32 array (per test image), "test_predictions": int array,
     "history": [per-epoch records], "seconds": float}
    """
    relpath = f"real_images/{config.strategy}-{config.key()}.pt"
    found = runtime.load_cached(relpath, _read)
    if found is not None:
        return found["result"]
    t0 = time.perf_counter()
    train_set, test_set = load_data(config.domain, image_size=config.image_size)
    few = data.few_shot(train_set, per_class=config.per_class, seed=config.seed)
    net = build_model(config.strategy, seed=config.seed, num_classes=len(train_set.classes))
    objective = augmented_objective(augmentation(config.image_size)) if config.augment else None
    hist = train.fit(
        net, few, epochs=config.epochs, lr=config.lr, batch_size=config.batch_size,
        seed=config.seed, progress=progress,
        **({"objective": objective} if objective is not None else {}),
    )  # fmt: skip
    if config.reestimate_bn:
        estimate_bn_statistics(net, few)
    logits = train.predict(net, test_set, return_logits=True)
    losses = F.cross_entropy(logits, test_set.labels, reduction="none")
    result = {
        "config": asdict(config),
        "accuracy": float((logits.argmax(1) == test_set.labels).float().mean()),
        "loss": float(losses.mean()),
        "test_losses": losses.numpy().astype(np.float32),
        "test_predictions": logits.argmax(1).numpy(),
        "history": hist.records,
        "seconds": time.perf_counter() - t0,
    }
    entry = {"result": result}
    if config.strategy == "finetune":  # the lesson predicts with a fine-tuned network
        entry["state_dict"] = net.state_dict()

    def write(f):
        buf = io.BytesIO()
        torch.save(entry, buf)
        f.write(buf.getvalue())

    runtime.save_cached(relpath, write)
    return result


def trained_model(config: RunConfig) -> nn.Module:
    """The network :func:`run` trained for ``config`` (a ``"finetune"`` run), in eval mode."""
    if config.strategy != "finetune":
        raise ValueError("only fine-tuned networks are kept; use a 'finetune' RunConfig")
    relpath = f"real_images/{config.strategy}-{config.key()}.pt"
    entry = runtime.load_cached(relpath, _read)
    if entry is None:
        run(config)
        entry = runtime.load_cached(relpath, _read)
    net = build_model(config.strategy, seed=config.seed)
    net.load_state_dict(entry["state_dict"])
    return net.eval()


# --------------------------------------------------------------------------- the lesson's claims
#: Look-alike groups of Fashion-MNIST classes: upper-body garments, and shoes.
LOOK_ALIKE = (
    frozenset({"T-shirt/top", "Pullover", "Coat", "Shirt"}),
    frozenset({"Sandal", "Sneaker", "Ankle boot"}),
)


def look_alike_fraction(pairs: list[tuple[str, str]]) -> float:
    """The fraction of ``(true, predicted)`` class-name pairs that fall in one group of
    :data:`LOOK_ALIKE` (a coat taken for a pullover, a sandal for a sneaker …).

    >>> look_alike_fraction([("Coat", "Pullover"), ("Bag", "Trouser")])
    0.5
    """
    if not pairs:
        raise ValueError("look_alike_fraction needs at least one (true, predicted) pair")
    same = sum(any(t in g and p in g for g in LOOK_ALIKE) for t, p in pairs)
    return same / len(pairs)


def claims(
    acc: dict[str, Any],
    lr_test: dict[str, list[float]],
    worst_pairs: list[tuple[str, str]],
    regularised: dict[str, dict[str, Any]] | None = None,
) -> dict[str, tuple[bool, str]]:
    """Lesson 07's message, each sentence checked on this run's numbers.

    ``acc``: per-seed test accuracies under the keys ``"finetune"`` (with augmentation),
    ``"finetune_no_aug"``, ``"scratch"`` (with augmentation) and ``"probe"`` (linear probe on
    the frozen last features; printed by the lesson, compared there, not asserted); ``lr_test``: :func:`lr_range_test`'s result; ``worst_pairs``:
    the ``(true, predicted)`` names of the top-loss test photos; ``regularised`` (optional):
    :func:`regularisation_comparison`'s result, whose body drifts are checked (its accuracies
    are printed by the lesson with their paired intervals, not asserted). Returns
    ``{sentence: (holds, evidence)}`` for ``tlearn.studies.claims.check``.
    """
    a = {k: np.asarray(v, dtype=float) for k, v in acc.items()}
    ft, no_aug, scratch = a["finetune"], a["finetune_no_aug"], a["scratch"]
    loss = np.asarray(lr_test["loss"], dtype=float)
    look_alike = look_alike_fraction(worst_pairs)

    def pct(v) -> str:
        return ", ".join(f"{100 * x:+.1f}" for x in np.atleast_1d(v))

    out = {
        "ImageNet weights beat the same network trained from scratch on every seed, "
        "by at least 15 points on average": (
            bool((ft > scratch).all() and (ft - scratch).mean() >= 0.15),
            pct(ft - scratch),
        ),
        "at this budget (32 steps) augmentation lowered fine-tuning's accuracy on average": (
            bool((no_aug - ft).mean() > 0),
            pct((no_aug - ft).mean()),
        ),
        "in the LR range test the loss first fell (by at least 0.5) and then blew up "
        "(above twice its minimum)": (
            bool(loss.min() <= loss[0] - 0.5 and loss[-1] > 2 * loss.min()),
            f"{loss[0]:.2f} → min {loss.min():.2f} → {loss[-1]:.2f}",
        ),
        "at least 30 % of the top-loss photos are mistaken for a look-alike class (garment for "
        "garment, shoe for shoe; 20 % if the wrong class were drawn at random)": (
            look_alike >= 0.3,
            f"{look_alike:.0%}",
        ),
    }
    return out | (_drift_claims(regularised) if regularised is not None else {})


def _drift_claims(regularised: dict[str, dict[str, Any]]) -> dict[str, tuple[bool, str]]:
    """The sentences about how far each method moved the pretrained body (weight drift)."""
    drift = {m: np.asarray(r["weight_drift"], dtype=float) for m, r in regularised.items()}
    ratio = {m: drift[m] / drift["plain"] for m in ("l2_sp", "lp_ft")}

    def ratios(v) -> str:
        return ", ".join(f"{x:.2f}" for x in v)

    return {
        "L2-SP moved the pretrained body at least 20 % less than plain fine-tuning on every "
        "seed (‖w − w⁰‖ / ‖w⁰‖, same 32 steps)": (
            bool((ratio["l2_sp"] <= 0.8).all()),
            f"L2-SP / plain per seed: {ratios(ratio['l2_sp'])}",
        ),
        "LP-FT moved the pretrained body less than plain fine-tuning on every seed": (
            bool((ratio["lp_ft"] < 1).all()),
            f"LP-FT / plain per seed: {ratios(ratio['lp_ft'])}",
        ),
    }


# --------------------------------------------------------------------------- regularised fine-tuning
#: The regularised fine-tuning comparison's rows: plain fine-tuning (the lesson's
#: ``RunConfig("finetune", augment=False)`` run), L2-SP and LP-FT, all without augmentation.
REG_METHODS = ("plain", "l2_sp", "lp_ft")
HEAD = "net.classifier"  # the new head of build_model's network; every other parameter is "body"


@dataclass(frozen=True)
class RegConfig:
    """One regularised fine-tuning run, on the same budget as the lesson's plain run.

    ``method``: ``"plain"`` (:func:`run` of ``RunConfig("finetune", augment=False)``),
    ``"l2_sp"`` (the plain run's objective + :func:`tlearn.freeze.l2_sp_penalty` with
    ``alpha`` on the pretrained body and ``beta`` on the new head; Li, Grandvalet & Davoine,
    ICML 2018) or ``"lp_ft"`` (:func:`tlearn.train.fine_tune`: the head alone for
    ``head_epochs``, then everything for ``epochs − head_epochs``; Kumar et al., ICLR 2022,
    with one learning rate everywhere, so staging is its only difference from plain).
    Every method takes ``epochs × ceil(10·per_class / batch_size)`` steps of Adam at ``lr``
    (32 by default) and re-estimates BatchNorm's statistics on the labelled photos afterwards.
    ``drift_images``: how many unlabelled training photos (outside the labelled set) measure
    the features' drift.
    """

    method: str
    seed: int = 0
    per_class: int = 10
    image_size: int = IMAGE_SIZE
    epochs: int = 8
    batch_size: int = 25
    lr: float = 1e-3
    alpha: float = 0.1
    beta: float = 0.01
    head_epochs: int = 2
    domain: str = "fashion"
    drift_images: int = 500

    def __post_init__(self) -> None:
        if self.method not in REG_METHODS:
            raise ValueError(f"method must be one of {REG_METHODS}, got {self.method!r}")
        if not 0 < self.head_epochs < self.epochs:
            raise ValueError(
                f"need 0 < head_epochs < epochs, got {self.head_epochs}, {self.epochs}"
            )
        if not (self.alpha >= 0 and self.beta >= 0):
            raise ValueError(f"alpha and beta must be >= 0, got {self.alpha}, {self.beta}")

    def plain(self) -> RunConfig:
        """The lesson's plain fine-tuning run with this budget (no augmentation)."""
        return RunConfig("finetune", seed=self.seed, per_class=self.per_class,
                         image_size=self.image_size, epochs=self.epochs,
                         batch_size=self.batch_size, lr=self.lr, augment=False,
                         domain=self.domain)  # fmt: skip

    def key(self) -> str:
        return runtime.cache_key(asdict(self), versioned=False)


def weight_drift(model: nn.Module, start: dict[str, torch.Tensor]) -> float:
    r"""How far the body moved: :math:`\lVert w - w^0 \rVert / \lVert w^0 \rVert` over the
    parameters of ``model`` present in ``start`` (the pretrained body), as one vector.

    >>> net = nn.Linear(2, 1)
    >>> start = {k: v.clone() for k, v in net.named_parameters()}
    >>> weight_drift(net, start)
    0.0
    """
    moved, size = 0.0, 0.0
    for name, w in model.named_parameters():
        if name in start:
            moved += float((w.detach() - start[name]).pow(2).sum())
            size += float(start[name].pow(2).sum())
    return math.sqrt(moved / size)


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    r"""Linear CKA of two feature matrices of the same images (Kornblith, Norouzi, Lee &
    Hinton, *Similarity of Neural Network Representations Revisited*, ICML 2019):
    :math:`\lVert Y^\top X \rVert_F^2 / (\lVert X^\top X \rVert_F \lVert Y^\top Y \rVert_F)`
    with the columns of X and Y centred. 1: the same representation up to a rotation and a
    scale; lower: the features changed.

    >>> x = torch.randn(50, 4, generator=torch.Generator().manual_seed(0))
    >>> round(linear_cka(x, 3 * x), 6), linear_cka(x, torch.randn(50, 4)) < 0.5
    (1.0, True)
    """
    x = (x - x.mean(0)).double()
    y = (y - y.mean(0)).double()
    cross = (y.T @ x).pow(2).sum()
    return float(cross / ((x.T @ x).norm() * (y.T @ y).norm()))


def feature_drift(before: torch.Tensor, after: torch.Tensor) -> dict[str, float]:
    """How the penultimate features of the same images changed: the mean cosine distance
    ``1 − cos(f⁰(x), f(x))`` over the images, and ``1 − linear CKA`` (:func:`linear_cka`)."""
    cosine = F.cosine_similarity(before.double(), after.double(), dim=1)
    return {"cosine": float((1 - cosine).mean()), "cka": 1 - linear_cka(before, after)}


def penultimate(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """``model``'s pooled features (``net.avgpool``, 1,280 per image) in eval mode."""
    from tlearn import features

    return features.extract(model.eval(), images, layer="net.avgpool", progress=False)[0]


def _drift_images(train_set, config: RegConfig) -> torch.Tensor:
    """``config.drift_images`` training photos outside the labelled set, a fixed draw."""
    from tlearn.data.base import few_shot_indices

    labelled = few_shot_indices(train_set.labels.numpy(), config.per_class, config.seed,
                                range(train_set.num_classes))  # fmt: skip
    rest = np.setdiff1d(np.arange(len(train_set)), labelled)
    picked = np.random.default_rng(0).permutation(rest)[: config.drift_images]
    return train_set.images[np.sort(picked)]


def _reference_features(config: RegConfig) -> torch.Tensor:
    """The drift's reference: the pretrained network's penultimate features on
    :func:`_drift_images`, with BatchNorm's statistics re-estimated on the labelled photos, as
    every method's network has them (so the drift is the weights' own). The same for every
    method of a seed: computed once per process."""
    fields = ("domain", "image_size", "per_class", "seed", "drift_images")
    return _reference_features_of(*(getattr(config, f) for f in fields))


@functools.lru_cache(maxsize=4)
def _reference_features_of(domain, image_size, per_class, seed, drift_images) -> torch.Tensor:
    from tlearn import data
    from tlearn.bn import estimate_bn_statistics

    train_set, _ = load_data(domain, image_size=image_size)
    net = build_model("finetune", seed=seed, num_classes=len(train_set.classes))
    estimate_bn_statistics(net, data.few_shot(train_set, per_class=per_class, seed=seed))
    config = RegConfig("plain", seed=seed, per_class=per_class, drift_images=drift_images)
    return penultimate(net, _drift_images(train_set, config))


def _l2_sp_objective(start: dict[str, torch.Tensor], alpha: float, beta: float):
    """``train.fit``'s objective: cross-entropy + ``freeze.l2_sp_penalty(model, start, α, β)``."""
    from tlearn.freeze import l2_sp_penalty
    from tlearn.train import classification_loss

    def objective(model, x, y, progress):
        loss, logits, _ = classification_loss(model, x, y, progress)
        penalty = l2_sp_penalty(model, start, alpha, beta)
        return loss + penalty, logits, {"class_loss": loss.item(), "l2_sp": penalty.item()}

    objective.name = "fit+l2_sp"
    return objective


def _train_regularised(net: nn.Module, few, config: RegConfig) -> None:
    """Fine-tune ``net`` (``build_model``'s) in place with ``config.method`` (not plain)."""
    from tlearn import train
    from tlearn.bn import estimate_bn_statistics
    from tlearn.data import DigitDataset

    if config.method == "l2_sp":
        start = {n: w.detach().clone() for n, w in net.named_parameters()
                 if not n.startswith(HEAD + ".")}  # fmt: skip
        objective = _l2_sp_objective(start, config.alpha, config.beta)
        train.fit(net, few, epochs=config.epochs, lr=config.lr, batch_size=config.batch_size,
                  seed=config.seed, progress=False, objective=objective)  # fmt: skip
        estimate_bn_statistics(net, few)
        return
    # LP-FT: fine_tune knows the backbone (net.net), so it gets the photos normalised already
    normalised = DigitDataset(net.normalize(few.images), few.labels, classes=few.classes)
    train.fine_tune(net.net, normalised, epochs=config.epochs - config.head_epochs,
                    head_epochs=config.head_epochs, lr=config.lr, head_lr_mult=1.0,
                    discriminative=False, batch_size=config.batch_size, seed=config.seed,
                    progress=False)  # fmt: skip


def regularised_run(config: RegConfig) -> dict[str, Any]:
    """Train ``config`` once (then read it from the cache); return its result::

    {"config": {...}, "accuracy": float, "test_predictions": int array,
     "weight_drift": float, "cosine": float, "cka": float, "seconds": float}

    ``weight_drift``: :func:`weight_drift` of the body; ``cosine`` and ``cka``:
    :func:`feature_drift` of the penultimate features on ``drift_images`` unlabelled training
    photos, the pretrained network against the fine-tuned one, both with BatchNorm's
    statistics re-estimated on the labelled photos (with ImageNet's statistics instead, the
    statistics alone would change the features more than any training does). The plain
    method reads :func:`run`'s cached network and adds only the drift.
    """
    import time

    from tlearn import data, train

    relpath = f"real_images/regularised-{config.method}-{config.key()}.json"
    found = runtime.load_cached(relpath, lambda p: json.loads(p.read_text()))
    if found is not None:
        return found
    t0 = time.perf_counter()
    train_set, test_set = load_data(config.domain, image_size=config.image_size)
    pretrained = build_model("finetune", seed=config.seed, num_classes=len(train_set.classes))
    start = {n: w.detach().clone() for n, w in pretrained.named_parameters()
             if not n.startswith(HEAD + ".")}  # fmt: skip
    if config.method == "plain":  # trained and tested by run(): read both from the cache
        net, predictions = trained_model(config.plain()), run(config.plain())["test_predictions"]
    else:
        net = pretrained
        _train_regularised(net, data.few_shot(train_set, config.per_class, config.seed), config)
        predictions = train.predict(net.eval(), test_set).numpy()
    after = penultimate(net, _drift_images(train_set, config))
    result = {
        "config": asdict(config),
        "accuracy": float((predictions == test_set.labels.numpy()).mean()),
        "test_predictions": np.asarray(predictions).tolist(),
        "weight_drift": weight_drift(net, start),
        **feature_drift(_reference_features(config), after),
        "seconds": time.perf_counter() - t0,
    }
    runtime.save_cached(relpath, lambda f: f.write(json.dumps(result).encode()))
    return result


def regularisation_comparison(seeds, *, methods=REG_METHODS, **config) -> dict[str, dict]:
    """:func:`regularised_run` of every method × seed (``config``: :class:`RegConfig`'s other
    fields). Returns ``{method: {"accuracy", "weight_drift", "cosine", "cka": arrays over
    seeds}}``, the seeds in the order given (paired)."""
    out = {}
    for method in methods:
        runs = [regularised_run(RegConfig(method, seed=s, **config)) for s in seeds]
        out[method] = {k: np.array([r[k] for r in runs])
                       for k in ("accuracy", "weight_drift", "cosine", "cka")}  # fmt: skip
    return out
