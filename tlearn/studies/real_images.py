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
    acc: dict[str, Any], lr_test: dict[str, list[float]], worst_pairs: list[tuple[str, str]]
) -> dict[str, tuple[bool, str]]:
    """Lesson 07's message, each sentence checked on this run's numbers.

    ``acc``: per-seed test accuracies under the keys ``"finetune"`` (with augmentation),
    ``"finetune_no_aug"``, ``"scratch"`` (with augmentation) and ``"probe"`` (linear probe on
    the frozen last features; printed by the lesson, compared there, not asserted); ``lr_test``: :func:`lr_range_test`'s result; ``worst_pairs``:
    the ``(true, predicted)`` names of the top-loss test photos. Returns
    ``{sentence: (holds, evidence)}`` for ``tlearn.studies.claims.check``.
    """
    a = {k: np.asarray(v, dtype=float) for k, v in acc.items()}
    ft, no_aug, scratch = a["finetune"], a["finetune_no_aug"], a["scratch"]
    loss = np.asarray(lr_test["loss"], dtype=float)
    look_alike = look_alike_fraction(worst_pairs)

    def pct(v) -> str:
        return ", ".join(f"{100 * x:+.1f}" for x in np.atleast_1d(v))

    return {
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
