"""Lesson 06: rank starting points with transferability scores, then check the ranking.

Which network should you fine-tune on your few target labels? Fine-tuning every candidate
and keeping the best is the honest answer and the expensive one. Transferability scores
estimate the answer from one forward pass over the labelled target images:

* **LEEP** (Nguyen et al., ICML 2020, :func:`tlearn.probes.leep`) needs the candidate's
  softmax over its *own* source classes — for ImageNet EfficientNet-Lite0, its 1,000 classes;
  for a random network, its random head. A network cut at an inner block has no source
  classifier, so LEEP cannot score it.
* **LogME** (You et al., ICML 2021, :func:`tlearn.probes.logme`) needs only the candidate's
  features and the target labels, so it scores any block.

This module computes both scores on the few labelled target images (never on test labels),
then fine-tunes every candidate with the same budget (:class:`tlearn.studies.finetune.Recipe`,
``"full"``: new head, every weight trains) and measures target test accuracy. A candidate's
result for a seed is cached (``results/choosing-<key>.json`` in ``TLEARN_CACHE``, the key
hashing the whole configuration and tlearn's version)::

    from tlearn.studies import choosing
    rows = choosing.comparison(seeds=(0, 1, 2))            # trains, or loads in milliseconds
    print(choosing.format_table(rows))
    choosing.rank_correlation(score, accuracy)             # Spearman's ρ, Kendall's τ

Candidates (:data:`CANDIDATES`): a random DigitNet, the synth source DigitNet, a DigitNet
trained on synth digits with **random labels** (the deliberately mismatched source), a randomly
initialised Lite0, and the ImageNet Lite0 cut after blocks 3 and 5 and whole.

:func:`decision_guide` draws the course's decision chart from measured numbers.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

import tlearn
from tlearn import checkpoint, data, models, probes, runtime, train
from tlearn.studies.finetune import Recipe, fine_tune
from tlearn.studies.source import source_model

__all__ = [
    "CANDIDATES",
    "ChoosingConfig",
    "candidate",
    "random_label_source",
    "source_probabilities",
    "scores",
    "run",
    "comparison",
    "summarise",
    "format_table",
    "ranks",
    "rank_correlation",
    "CHART_NUMBERS",
    "decision_guide",
    "claims",
]

RESULTS_FORMAT = "tlearn-choosing-result-v1"

#: Candidate name → what it is. The Lite0 ones take digits through ``models.for_digits``.
CANDIDATES: dict[str, str] = {
    "random DigitNet": "DigitNet, random weights (seed 0): the from-scratch control",
    "synth DigitNet": "DigitNet trained on synth digits (studies.source, seed 0)",
    "random-label DigitNet": "DigitNet trained on synth digits with random labels (mismatched)",
    "Lite0, random init": "EfficientNet-Lite0, random weights (seed 0), all blocks",
    "Lite0 ImageNet, block 3": "ImageNet EfficientNet-Lite0 cut after features.3 (40 channels)",
    "Lite0 ImageNet, block 5": "ImageNet EfficientNet-Lite0 cut after features.5 (112 channels)",
    "Lite0 ImageNet, all blocks": "ImageNet EfficientNet-Lite0, all 9 blocks (1,280 features)",
}

RANDOM_LABEL_EPOCHS = 10  # long enough to fit noise well above chance (train accuracy printed)
RANDOM_LABEL_SIZE = 2000


@dataclasses.dataclass(frozen=True)
class ChoosingConfig:
    """Everything that determines one candidate's result for one seed (and its cache key)."""

    candidate: str
    seed: int = 0
    per_class: int = 10
    image_size: int = 32
    target: str = "uci"
    recipe: tuple = ()  # Recipe's fields as (name, value) pairs; () = Recipe()'s defaults

    def key(self) -> str:
        """The cache key (:func:`tlearn.runtime.cache_key`) of the config, the result format
        and the tlearn version."""
        return runtime.cache_key({"config": dataclasses.asdict(self), "format": RESULTS_FORMAT})


# --------------------------------------------------------------------------- the candidates
def random_label_source(seed: int = 0, progress: bool = False) -> nn.Module:
    """A DigitNet trained on synth digits whose labels were replaced by random ones.

    The images are real digits; the labels carry no information, so the network can only
    memorise (Zhang et al., "Understanding deep learning requires rethinking generalization",
    ICLR 2017). ``RANDOM_LABEL_SIZE`` images, ``RANDOM_LABEL_EPOCHS`` epochs of Adam at 1e-3.
    Cached under ``models/`` like the source model; eval mode, CPU.
    """
    config = {"what": "random-label DigitNet", "size": RANDOM_LABEL_SIZE, "seed": seed,
              "epochs": RANDOM_LABEL_EPOCHS, "lr": 1e-3, "tlearn": tlearn.__version__}  # fmt: skip
    name = f"models/digitnet-random-labels-{runtime.cache_key(config)}.pt"

    def read(path):
        net = models.DigitNet()
        if checkpoint.load_checkpoint(path, net).get("config") != config:
            raise checkpoint.CheckpointError(f"{path} was saved for a different configuration")
        return net.eval()

    cached = runtime.load_cached(name, read)
    if cached is not None:
        return cached
    source = data.load_domain("synth", split="train", size=RANDOM_LABEL_SIZE, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    random_labels = torch.randint(0, 10, (len(source),), generator=generator)
    noisy = data.DigitDataset(source.images, random_labels)
    runtime.seed_everything(seed)
    net = models.DigitNet()
    history = train.fit(net, noisy, epochs=RANDOM_LABEL_EPOCHS, lr=1e-3, batch_size=128,
                        drop_last=False,  # the recorded protocol: every image, every epoch
                        device="cpu", seed=seed, progress=progress)  # fmt: skip
    checkpoint.save_checkpoint(
        runtime.cache_dir() / name, net, config=config, history=history.records
    )
    return net.eval()


def _lite0_cut(block: int | None, pretrained: bool, image_size: int) -> nn.Module:
    """Lite0 for digits (``.features`` → pooled vector, ``.head``), cut after ``block``."""
    torch.manual_seed(0)  # the random-init Lite0 and every new head: reproducible
    net = models.for_digits("efficientnet_lite0", size=image_size, pretrained=pretrained)
    if block is not None:
        body = net.features.backbone
        body.features = body.features[: block + 1]
        channels = [m for m in body.features[block].modules() if isinstance(m, nn.BatchNorm2d)]
        net.feature_dim = channels[-1].num_features
        net.head = nn.Linear(net.feature_dim, net.num_classes)
    return net.eval()


def candidate(name: str, image_size: int = 32) -> nn.Module:
    """The network a candidate fine-tunes: ``.features`` (images → vector) and ``.head``."""
    if name == "random DigitNet":
        torch.manual_seed(0)
        return models.DigitNet().eval()
    if name == "synth DigitNet":
        return source_model(progress=False)
    if name == "random-label DigitNet":
        return random_label_source()
    if name == "Lite0, random init":
        return _lite0_cut(None, pretrained=False, image_size=image_size)
    if name.startswith("Lite0 ImageNet"):
        block = None if name.endswith("all blocks") else int(name.rsplit(" ", 1)[1])
        return _lite0_cut(block, pretrained=True, image_size=image_size)
    raise ValueError(f"unknown candidate {name!r}; expected one of {list(CANDIDATES)}")


@torch.no_grad()
def source_probabilities(name: str, images: torch.Tensor, image_size: int = 32):
    """The candidate's softmax over its *own source classes* (n × Z), or None when it has none.

    DigitNets: their 10-way head (random for the random net; the random-label net's head
    predicts its random labels). Lite0 whole: its 1,000 ImageNet classes (random head for
    the random-init one). Lite0 cut at an inner block: no source classifier — None.
    """
    if name.startswith("Lite0 ImageNet, block"):
        return None
    if name.startswith("Lite0"):
        torch.manual_seed(0)
        body = models.load_backbone("efficientnet_lite0", pretrained=name.startswith("Lite0 Im"))
        net = nn.Sequential(models.ImageNetInput(image_size), body).eval()
    else:
        net = candidate(name, image_size)
    return torch.softmax(net(images).double(), dim=1).numpy()


def scores(name: str, few, image_size: int = 32, net: nn.Module | None = None) -> dict[str, float]:
    """LEEP and LogME of candidate ``name`` on the labelled few-shot set ``few`` (NaN LEEP
    when the candidate has no source classifier). Reads ``few``'s labels only. ``net``: the
    candidate already built (default: ``candidate(name, image_size)``)."""
    net = candidate(name, image_size) if net is None else net
    with torch.no_grad():
        z = net.eval().features(few.images).double().numpy()
    theta = source_probabilities(name, few.images, image_size)
    y = few.labels.numpy()
    return {
        "leep": float("nan") if theta is None else probes.leep(theta, y),
        "logme": probes.logme(z, y),
    }


# --------------------------------------------------------------------------- the runs
def _compute(cfg: ChoosingConfig) -> dict[str, Any]:
    """Score candidate ``cfg.candidate`` on the few labels, fine-tune it, test it (:func:`run`)."""
    runtime.seed_everything(cfg.seed)
    target_train = data.load_domain(cfg.target, split="train")
    target_test = data.load_domain(cfg.target, split="test")
    few = data.few_shot(target_train, cfg.per_class, seed=cfg.seed)
    started = time.perf_counter()
    start = candidate(cfg.candidate, cfg.image_size)
    candidate_scores = scores(cfg.candidate, few, cfg.image_size, net=start)
    score_seconds = time.perf_counter() - started
    started = time.perf_counter()
    net, history = fine_tune(
        "full", few, source=start, recipe=Recipe(**dict(cfg.recipe)), seed=cfg.seed, device="cpu"
    )
    return {
        "candidate": cfg.candidate,
        "seed": cfg.seed,
        **candidate_scores,
        "accuracy": train.evaluate(net, target_test, device="cpu")["accuracy"],
        "train_accuracy": history.last["train_accuracy"],
        "score_seconds": score_seconds,
        "fine_tune_seconds": time.perf_counter() - started,
        "config": dataclasses.asdict(cfg),
    }


def run(cfg: ChoosingConfig) -> dict[str, Any]:
    """One candidate, one seed: scores on the few labels, then fine-tuning; cached."""
    if cfg.candidate not in CANDIDATES:
        raise ValueError(f"unknown candidate {cfg.candidate!r}; expected one of {list(CANDIDATES)}")
    as_json = json.loads(json.dumps(dataclasses.asdict(cfg)))  # the recipe's tuples as lists
    return runtime.cached_json(
        f"results/choosing-{cfg.key()}.json",
        lambda: _compute(cfg),
        valid=lambda result: result.get("config") == as_json,
    )


def comparison(
    seeds: Sequence[int] = (0, 1, 2),
    candidates: Sequence[str] = tuple(CANDIDATES),
    *,
    progress: bool = True,
    **overrides: Any,
) -> list[dict[str, Any]]:
    """Every candidate × seed (:func:`run`); ``overrides`` sets :class:`ChoosingConfig` fields."""
    jobs = [(c, s) for c in candidates for s in seeds]
    rows = []
    for c, s in runtime.progress_bar(jobs, enabled=progress, desc="candidates", unit="run"):
        rows.append(run(ChoosingConfig(candidate=c, seed=s, **overrides)))
    return rows


def summarise(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per candidate: per-seed lists and means of ``leep``, ``logme``, ``accuracy``."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        d = out.setdefault(r["candidate"], {"leep": [], "logme": [], "accuracy": []})
        for k in ("leep", "logme", "accuracy"):
            d[k].append(float(r[k]))
    for d in out.values():
        for k in ("leep", "logme", "accuracy"):
            d[f"{k}_mean"] = float(np.mean(d[k]))
        d["accuracy_std"] = float(np.std(d["accuracy"], ddof=1)) if len(d["accuracy"]) > 1 else 0.0
    return out


def format_table(summary: Mapping[str, Mapping[str, Any]]) -> str:
    """Candidates sorted by LogME: LEEP, LogME (means), test accuracy mean ± std, per seed."""
    lines = [f"{'candidate':28s} {'LEEP':>7s} {'LogME':>7s}   {'fine-tuned accuracy':21s} per seed"]
    for name, d in sorted(summary.items(), key=lambda kv: -kv[1]["logme_mean"]):
        leep = "    —  " if np.isnan(d["leep_mean"]) else f"{d['leep_mean']:7.3f}"
        per_seed = " ".join(f"{100 * a:.1f}" for a in d["accuracy"])
        lines.append(
            f"{name:28s} {leep} {d['logme_mean']:7.3f}   "
            f"{100 * d['accuracy_mean']:5.1f} ± {100 * d['accuracy_std']:4.1f} %{'':7s} {per_seed}"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- rank correlation
def ranks(x: Sequence[float]) -> np.ndarray:
    """Ranks 1…n of ``x`` (smallest = 1), ties sharing their average rank.

    >>> ranks([10, 30, 20, 20]).tolist()
    [1.0, 4.0, 2.5, 2.5]
    """
    x = np.asarray(x, dtype=float)
    order = np.argsort(x, kind="stable")
    r = np.empty(len(x))
    r[order] = np.arange(1, len(x) + 1)
    for v in np.unique(x):  # average the ranks of ties
        tied = x == v
        r[tied] = r[tied].mean()
    return r


def rank_correlation(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Spearman's ρ (Pearson correlation of the ranks) and Kendall's τ-b of two sequences.

    ρ = τ = 1 when ``b`` orders the items exactly as ``a`` does, −1 when exactly reversed.

    >>> rank_correlation([1, 2, 3, 4], [10, 20, 40, 30])
    {'spearman': 0.8, 'kendall': 0.6666666666666666}
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError(f"need two 1-D sequences of equal length >= 2, got {a.shape}, {b.shape}")
    if np.isnan(a).any() or np.isnan(b).any():
        raise ValueError("rank_correlation got NaN: drop the items a score does not define")
    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    spearman = float((ra * rb).sum() / np.sqrt((ra**2).sum() * (rb**2).sum()))
    i, j = np.triu_indices(len(a), k=1)
    sa, sb = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
    kendall = float((sa * sb).sum() / np.sqrt((sa != 0).sum() * (sb != 0).sum()))
    return {"spearman": spearman, "kendall": kendall}


# --------------------------------------------------------------------------- the decision guide
#: The numbers the decision chart cites: key → (what it is, the lesson that prints it); each is a
#: uci test accuracy %, mean over seeds, that :func:`tlearn.studies.course.course_numbers` computes.
CHART_NUMBERS: dict[str, tuple[str, str]] = {
    "scratch_1": ("from scratch, 1 label/class", "01"),
    "finetune_1": ("full fine-tune of the synth DigitNet, 1 label/class", "01"),
    "scratch_5": ("from scratch, 5 labels/class", "01"),
    "finetune_5": ("full fine-tune, 5 labels/class", "01"),
    "scratch_10": ("from scratch, 10 labels/class", "01"),
    "finetune_10": ("full fine-tune, 10 labels/class", "01"),
    "probe_source_1": ("linear probe on the synth DigitNet's features, 1 label/class", "02"),
    "probe_lite0_block_10": ("Lite0 block chosen by CV, linear probe, 10 labels/class", "02"),
    "source_only": ("source only (lesson 04's table)", "04"),
    "mmd": ("MMD (DAN)", "04"),
    "deep_coral": ("Deep CORAL", "04"),
    "target_supervised": ("trained on labelled target images: the upper bound", "04"),
    "adabn": ("AdaBN (lesson 05's table)", "05"),
}


def decision_guide(numbers: Mapping[str, tuple[float, str]], *, title=None):
    """The decision chart: labels per class × domain distance × compute → a strategy.

    A flow chart whose every box cites a number the course measured: ``numbers`` maps each
    key of :data:`CHART_NUMBERS` to ``(accuracy %, lesson)`` —
    :func:`tlearn.studies.course.course_numbers` reads them from the lessons' results — and
    may add this lesson's negative-transfer result as
    ``"negative": (acc_mismatched, acc_scratch, "06")``. Returns the Figure.
    """
    import matplotlib.pyplot as plt  # here, not at the top: pyplot's import is slow
    from matplotlib.patches import FancyBboxPatch

    n = dict(numbers)
    missing = sorted(set(CHART_NUMBERS) - set(n))
    if missing:
        raise KeyError(f"decision_guide needs the course's numbers {missing}: pass "
                       "tlearn.studies.course.course_numbers(seeds) (plus 'negative')")  # fmt: skip

    def num(key):
        v, lesson = n[key][0], n[key][-1]
        return f"{v:.1f}% (L{lesson})"

    fig, ax = plt.subplots(figsize=(12, 7.2))
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.axis("off")
    q = {"fc": "#fff4d6", "ec": "#b08900"}
    a = {"fc": "#e3f1e3", "ec": "#2e7d32"}

    def box(x, y, text, style, w=30, h=11):
        ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.6",
                                    fc=style["fc"], ec=style["ec"], lw=1.2))  # fmt: skip
        ax.text(x, y, text, ha="center", va="center", fontsize=8.2, wrap=True)

    def arrow(x0, y0, x1, y1, label=""):
        ax.annotate("", (x1, y1), (x0, y0), arrowprops={"arrowstyle": "->", "color": "0.3"})
        if label:
            ax.text((x0 + x1) / 2, (y0 + y1) / 2, label, fontsize=8, color="0.2",
                    ha="center", va="center", backgroundcolor="white")  # fmt: skip

    box(
        50,
        92,
        "Target labels?\nMeasure the shift first: proxy A-distance,\n"
        "MMD permutation test on source features",
        q,
        w=40,
    )
    box(
        17,
        66,
        "No labels: ADAPT\n"
        f"MMD (DAN) {num('mmd')},\nDeep CORAL {num('deep_coral')}\n"
        f"vs source only {num('source_only')};\nAdaBN alone {num('adabn')}",
        a,
        w=28,
        h=15,
    )
    box(
        62,
        66,
        "Few labels. Candidates: score them\n(LogME on features, LEEP on source\n"
        "classes) on the labelled images, then\nfine-tune the top few",
        q,
        w=34,
        h=15,
    )
    box(
        16,
        34,
        "Labels AND a large shift:\nCOMBINE — adapt without labels,\n"
        f"then fine-tune on the few labels\n(upper bound {num('target_supervised')})",
        a,
        w=27,
        h=15,
    )
    box(
        50,
        34,
        "~1 label/class, close source:\nFINE-TUNE it "
        f"{num('finetune_1')}\nvs scratch {num('scratch_1')};\nat 5/class level: "
        f"{num('finetune_5')}\nvs {num('scratch_5')}",
        a,
        w=26,
        h=15,
    )
    box(
        84,
        34,
        "Little compute, or one frozen\nnet for many tasks:\nFEATURE EXTRACTION "
        f"(probe,\nlayer by CV): source 1/class\n{num('probe_source_1')}; Lite0 middle "
        f"block\n10/class {num('probe_lite0_block_10')}",
        a,
        w=27,
        h=19,
    )
    neg = ""
    if "negative" in n:
        bad, scratch, lesson = n["negative"]
        neg = f"\nmismatched source {bad:.1f}% < scratch {scratch:.1f}% (L{lesson})"
    box(
        50,
        7,
        "≥ 10 labels/class on an easy target: scratch catches up\n"
        f"{num('scratch_10')} vs fine-tune {num('finetune_10')}; never a mismatched source"
        f"{neg}",
        a,
        w=50,
        h=10,
    )
    arrow(42, 86, 22, 75, "none")
    arrow(56, 86, 60, 75, "a few per class")
    arrow(17, 57, 17, 43, "labels arrive later")
    arrow(56, 57, 51, 43, "fast, ~1/class")
    arrow(68, 57, 80, 45, "compute-bound")
    arrow(50, 25, 50, 13, "more labels")
    ax.set_title(title or "Choosing a strategy — synth → uci numbers from this course "
                 "(uci test accuracy, mean over 3 seeds; Lnn = lesson)", fontsize=10)  # fmt: skip
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- claims
def claims(
    summary: Mapping[str, Mapping[str, Any]],
    *,
    scratch: str = "random DigitNet",
    mismatched: str = "random-label DigitNet",
    frozen: str = "Lite0 ImageNet, block 5",
    min_rho: float = 0.5,
    tie: float = 0.02,
) -> dict[str, bool]:
    """The lesson's claims as booleans, computed from :func:`summarise`'s output.

    * ``mismatched_no_better``: fine-tuning the mismatched source gives no advantage over the
      same architecture from random weights (mean accuracy not above it by ``tie`` or more);
    * ``logme_ranks_well``: LogME's Spearman ρ with the fine-tuned accuracy, over every
      candidate, is at least ``min_rho``;
    * ``logme_picks_the_best``: LogME's top candidate fine-tunes within ``tie`` of the best;
    * ``logme_misleads``: LogME prefers ``frozen`` (features that a linear model reads well
      as they are) to ``scratch``, which fine-tunes better;
    * ``leep_prefers_mismatched``: LEEP scores the mismatched source above the random net.
    """
    names = list(summary)
    acc = np.array([summary[c]["accuracy_mean"] for c in names])
    logme = np.array([summary[c]["logme_mean"] for c in names])
    rho = rank_correlation(logme, acc)["spearman"]
    no_better = summary[mismatched]["accuracy_mean"] - summary[scratch]["accuracy_mean"] < tie
    return {
        "mismatched_no_better": bool(no_better),
        "logme_ranks_well": rho >= min_rho,
        "logme_picks_the_best": bool(acc.max() - acc[int(np.argmax(logme))] < tie),
        "logme_misleads": bool(
            summary[frozen]["logme_mean"] > summary[scratch]["logme_mean"]
            and summary[frozen]["accuracy_mean"] < summary[scratch]["accuracy_mean"]
        ),
        "leep_prefers_mismatched": summary[mismatched]["leep_mean"] > summary[scratch]["leep_mean"],
    }
