r"""Lesson 09's grid: adaptation runs scored by label-free validators, graded with target labels.

Unsupervised domain adaptation gives no target label to choose a method, its loss weight or its
number of epochs with. This study trains a small grid of candidates on synth → uci and scores
each with what a practitioner *has* — labelled source validation images and unlabelled target
images — using :mod:`tlearn.adapt.selection`:

* ``"source accuracy"``: accuracy on the source validation split (the source's own BatchNorm
  statistics);
* ``"IWCV"``: :math:`1 -` the importance-weighted source validation error (Sugiyama,
  Krauledat & Müller, JMLR 2007), an estimate of the target accuracy;
* ``"DEV"``: :math:`1 -` Deep Embedded Validation's risk (You, Wang, Long & Jordan, ICML 2019),
  IWCV with its control variate;
* ``"entropy"``: *minus* the mean entropy of the target predictions (so that, like every
  column here, higher means "pick this one");
* ``"SND"``: Soft Neighborhood Density of the target predictions (Saito et al., ICCV 2021).

The density ratios of IWCV and DEV come from a domain classifier on the candidate's own
features (``adapt.selection.density_ratios``: logistic regression, held-out folds), source
validation features against target *train* features.

**The candidates.** Every run starts from lessons 03–05's cached source-only network of its
seed (``adaptation.config("none", seed=s)``, 8 epochs on 6,000 synth digits) and trains
:data:`EPOCHS` more epochs with ``fit_adapt``'s defaults for the method (per-domain BatchNorm,
Adam 10⁻³) at each loss weight of :data:`GRID`; the network is scored after *every* epoch of
the same run (checkpoints are free). The source-only network itself and AdaBN (its BatchNorm
statistics re-estimated on the target) are two more candidates: 2 + 3 methods × 2 weights × 2
epochs = 14 per seed. Every checkpoint is scored as ``fit_adapt`` would return it: BatchNorm
statistics re-estimated on the target images for the target's predictions (the method's
``reestimate_bn``), and on source images for the source validation scores.

**The grade.** The target *test* accuracy (uci test, 540 images) of every candidate is
stored, and used *only* to grade the validators (:func:`grade`): per seed, the Spearman rank
correlation between a validator's scores and the target accuracies of the 14 candidates, and
its **regret** — the accuracy of the best candidate minus the accuracy of the candidate the
validator picks. Nothing is chosen with it.

Each (method, weight, seed) run is stored as JSON under ``validators/`` in the cache
(``TLEARN_CACHE``), keyed by the whole config, the source-only run's key and the tlearn
version::

    from tlearn.studies import validators as va
    rows = va.grid(seeds=(0, 1, 2))      # trains (minutes, once) or loads in milliseconds
    grades = va.grade(rows)
    print(va.format_grades(grades))
"""

from __future__ import annotations

import copy
import dataclasses
import time
from typing import Any

import numpy as np
import torch

from tlearn import runtime
from tlearn.studies import adaptation as ex

__all__ = [
    "RunConfig",
    "config",
    "run",
    "grid",
    "grid_configs",
    "GRID",
    "EPOCHS",
    "VALIDATORS",
    "score",
    "grade",
    "format_grades",
    "format_candidates",
    "validators_figure",
    "validator_claims",
]

RESULTS_FORMAT = "tlearn-validators-v1"
#: The grid, fixed in advance: method → loss weights (each method's ``fit_adapt`` default and
#: one ten times larger or smaller). Nothing here was tuned on uci labels.
GRID: dict[str, tuple[float, ...]] = {"coral": (3.0, 30.0), "mmd": (1.0, 10.0),
                                      "dann": (1.0, 10.0)}  # fmt: skip
#: Epochs of adaptation after the source-only network; every epoch is a checkpoint.
EPOCHS = 2
#: The label-free validators, in the order of the tables: name → what it reads.
VALIDATORS: dict[str, str] = {
    "source accuracy": "labelled source validation images",
    "IWCV": "source validation errors × density ratios",
    "DEV": "IWCV + its control variate",
    "entropy": "unlabelled target images (minus the mean prediction entropy)",
    "SND": "unlabelled target images (soft neighbourhood density)",
}
#: Source train images on which a checkpoint's BatchNorm statistics are re-estimated for its
#: source view (the first 2,000 of the 6,000, to keep the scoring cheap).
SOURCE_BN_IMAGES = 2000
METHOD_NAMES = {"none": "source only", "adabn": "AdaBN", "coral": "Deep CORAL",
                "mmd": "MMD (DAN)", "dann": "DANN"}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run (and so its cache key).

    ``method``: ``"none"`` (the source-only network and AdaBN, no training) or a ``fit_adapt``
    method (``"coral"``, ``"mmd"``, ``"dann"``); ``weight`` its loss weight; ``epochs``,
    ``lr`` and ``batch_size`` the adaptation's; ``seed`` names the source-only network
    (``adaptation.config("none", seed=seed, source=…, target=…)``) and seeds the training and
    the density ratios' folds.
    """

    method: str
    weight: float = 0.0
    seed: int = 0
    source: str = "synth"
    target: str = "uci"
    epochs: int = EPOCHS
    lr: float = 1e-3
    batch_size: int = 128

    def key(self) -> str:
        """The cache key of the config, the source-only run's key and the format (and tlearn's
        version: :func:`tlearn.runtime.cache_key`)."""
        return runtime.cache_key({"config": dataclasses.asdict(self), "format": RESULTS_FORMAT,
                                  "source_run": self.source_config().key()})  # fmt: skip

    def source_config(self) -> ex.RunConfig:
        """The source-only run every candidate starts from (lessons 03–05's)."""
        return ex.config("none", seed=self.seed, source=self.source, target=self.target)


def config(method: str, *, weight: float = 0.0, seed: int = 0, **overrides: Any) -> RunConfig:
    """A :class:`RunConfig`; ``method`` is ``"none"`` or one of :data:`GRID`'s methods."""
    if method != "none" and method not in GRID:
        raise ValueError(f"unknown method {method!r}; expected 'none' or one of {tuple(GRID)}")
    if method == "none" and weight:
        raise ValueError("the source-only candidates train nothing: weight must be 0")
    return RunConfig(method=method, weight=float(weight), seed=seed, **overrides)


# --------------------------------------------------------------------------- scoring
def _features_and_probs(net: torch.nn.Module, images: torch.Tensor, device) -> tuple:
    """``net.features`` and softmax outputs of ``images`` (eval mode, batches of 500), on the CPU."""
    zs, ps = [], []
    net = net.eval().to(device)
    with torch.no_grad():
        for x in images.split(500):
            z = net.features(x.to(device))
            zs.append(z.float().cpu())
            ps.append(net.head(z).float().softmax(1).cpu())
    return torch.cat(zs).double().numpy(), torch.cat(ps).double().numpy()


def score(source_view, target_view, source_val, target_train, target_test, *,
          seed: int = 0) -> dict[str, float]:  # fmt: skip
    """Every validator of one candidate, and its target test accuracy (to grade them).

    ``source_view``: the network with the BatchNorm statistics it uses on source images;
    ``target_view``: with those it uses on target images (the same network for a model that
    keeps one set). Source validation errors are 0/1; IWCV and DEV become estimated
    accuracies, :math:`1 - \\hat R`. Also returns the density ratios' largest value and
    their effective sample size :math:`(\\sum w)^2 / \\sum w^2` as a share of the source
    validation set (1: uniform weights), and the domain classifier's accuracy on held-out
    folds, read off the ratios (a source example is "called target" when :math:`w > n_s/n_t`).
    """
    from tlearn.adapt import selection

    device = runtime.get_device()
    zs, ps = _features_and_probs(source_view, source_val.images, device)
    zt, pt = _features_and_probs(target_view, target_train.images, device)
    _, p_test = _features_and_probs(target_view, target_test.images, device)
    errors = (ps.argmax(1) != source_val.labels.numpy()).astype(float)
    w = selection.density_ratios(zs, zt, seed=seed)
    return {
        "source accuracy": float(1 - errors.mean()),
        "IWCV": 1 - selection.iwcv_risk(errors, w),
        "DEV": 1 - selection.dev_risk(errors, w),
        "entropy": -selection.prediction_entropy(pt),
        "SND": selection.snd(pt),
        "target_accuracy": float((p_test.argmax(1) == target_test.labels.numpy()).mean()),
        "ratio_max": float(w.max()),
        "effective_share": float(w.sum() ** 2 / (w**2).sum() / len(w)),
        "source_called_source": float((w < len(zs) / len(zt)).mean()),
    }


def _views(net: torch.nn.Module, source_images, target_images, device) -> tuple:
    """(source view, target view): copies with BatchNorm re-estimated on each domain's images."""
    from tlearn.bn import estimate_bn_statistics

    src = estimate_bn_statistics(copy.deepcopy(net), source_images, device=device)
    tgt = estimate_bn_statistics(copy.deepcopy(net), target_images, device=device)
    return src, tgt


class _Checkpoints:
    """A ``train.fit`` callback that keeps the weights after every epoch (CPU copies)."""

    def __init__(self) -> None:
        self.states: list[dict[str, torch.Tensor]] = []

    def on_epoch_end(self, state) -> None:
        self.states.append(
            {k: v.detach().cpu().clone() for k, v in state.model.state_dict().items()}
        )


def _compute(cfg: RunConfig) -> dict[str, Any]:
    from tlearn.adapt import fit_adapt

    source_cfg = cfg.source_config()
    src, src_val, tgt, tgt_test = ex.datasets(source_cfg)
    device = runtime.get_device()
    start = ex.trained_model(source_cfg, progress=False)
    src_bn = src.images[:SOURCE_BN_IMAGES]
    t0 = time.perf_counter()
    data = (src_val, tgt, tgt_test)
    checkpoints: list[dict[str, Any]] = []
    history: list[dict] = []
    if cfg.method == "none":  # the source-only network as it is, and AdaBN
        _, adabn = _views(start, src_bn, tgt.images, device)
        checkpoints.append(
            {"name": "source only", "epoch": 0, **score(start, start, *data, seed=cfg.seed)}
        )
        checkpoints.append({"name": "AdaBN", "epoch": 0, **score(start, adabn, *data,
                                                                  seed=cfg.seed)})  # fmt: skip
    else:
        net = copy.deepcopy(start)
        saver = _Checkpoints()
        hist = fit_adapt(net, src, tgt, cfg.method, weight=cfg.weight, epochs=cfg.epochs,
                         lr=cfg.lr, batch_size=cfg.batch_size, seed=cfg.seed, device=device,
                         callbacks=[saver], progress=False)  # fmt: skip
        history = hist.records
        for epoch, state in enumerate(saver.states, start=1):
            net.load_state_dict(state)
            views = _views(net, src_bn, tgt.images, device)
            checkpoints.append({"name": METHOD_NAMES[cfg.method], "epoch": epoch,
                                **score(*views, *data, seed=cfg.seed)})  # fmt: skip
    return {
        "format": RESULTS_FORMAT,
        "config": dataclasses.asdict(cfg),
        "checkpoints": checkpoints,
        "history": history,
        "seconds": time.perf_counter() - t0,
    }


def run(cfg: RunConfig, *, cache: bool = True) -> dict[str, Any]:
    """The result of ``cfg``, read from the cache or computed (then cached).

    Returns ``checkpoints``: one dict per candidate (``name``, ``epoch``, every validator of
    :data:`VALIDATORS`, ``target_accuracy`` and the density ratios' summary, see
    :func:`score`), ``history`` (``fit_adapt``'s records) and ``seconds``.
    """
    if not isinstance(cfg, RunConfig):
        raise TypeError(f"cfg must be a RunConfig (use validators.config), got {cfg!r}")
    relpath = f"validators/{cfg.method}-w{cfg.weight:g}-s{cfg.seed}-{cfg.key()}.json"
    config = dataclasses.asdict(cfg)
    return runtime.cached_json(
        relpath,
        lambda: _compute(cfg),
        valid=lambda res: res.get("format") == RESULTS_FORMAT and res.get("config") == config,
        recompute=not cache,
    )


def grid_configs(seeds=(0, 1, 2), *, source: str = "synth", target: str = "uci",
                 grid: dict[str, tuple[float, ...]] | None = None) -> list[RunConfig]:  # fmt: skip
    """The runs of :func:`grid`, seed by seed (source only first)."""
    grid = GRID if grid is None else grid
    out = []
    for s in seeds:
        out.append(config("none", seed=s, source=source, target=target))
        out += [config(m, weight=w, seed=s, source=source, target=target)
                for m, weights in grid.items() for w in weights]  # fmt: skip
    return out


def grid(seeds=(0, 1, 2), *, source: str = "synth", target: str = "uci",
         progress: bool = True) -> list[dict[str, Any]]:  # fmt: skip
    """Every candidate of every seed, one row each: ``seed``, ``method``, ``weight``,
    ``epoch``, ``name``, the validators and ``target_accuracy``."""
    cfgs = grid_configs(seeds, source=source, target=target)
    rows = []
    with runtime.progress_bar(total=len(cfgs), desc="validator grid runs", unit="run",
                              enabled=progress) as bar:  # fmt: skip
        for cfg in cfgs:
            for c in run(cfg)["checkpoints"]:
                rows.append({"seed": cfg.seed, "method": cfg.method, "weight": cfg.weight, **c})
            bar.update()
    return rows


# --------------------------------------------------------------------------- grading
def _by_seed(rows: list[dict]) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    for r in rows:
        out.setdefault(r["seed"], []).append(r)
    return out


def grade(rows: list[dict], validators=tuple(VALIDATORS)) -> dict[str, dict[str, Any]]:
    """Each validator graded with the target test accuracies, seed by seed.

    Per seed over that seed's candidates: ``spearman`` — the rank correlation between the
    validator's scores and the target accuracies (scipy's ``spearmanr``; ties share a rank),
    ``regret`` — the best candidate's accuracy minus the accuracy of the one the validator
    scores highest (ties: the first in the grid's order), and ``picked`` — that candidate.
    Two references are added: ``"random pick"`` (its regret is the best accuracy minus the
    mean, the expected regret of a pick at random; no correlation) and ``"labels (oracle)"``
    (regret 0 by definition). Returns ``{validator: {"spearman": [...], "regret": [...],
    "picked": [...], "seeds": [...]}}``.
    """
    from scipy.stats import spearmanr

    out: dict[str, dict[str, Any]] = {v: {"spearman": [], "regret": [], "picked": [], "seeds": []}
                                      for v in (*validators, "random pick")}  # fmt: skip
    for seed, cands in sorted(_by_seed(rows).items()):
        acc = np.array([c["target_accuracy"] for c in cands])
        for v in validators:
            s = np.array([c[v] for c in cands])
            pick = int(np.argmax(s))
            rho = spearmanr(s, acc).statistic if np.ptp(s) > 0 else float("nan")
            out[v]["spearman"].append(float(rho))
            out[v]["regret"].append(float(acc.max() - acc[pick]))
            out[v]["picked"].append(_label(cands[pick]))
            out[v]["seeds"].append(seed)
        out["random pick"]["spearman"].append(float("nan"))
        out["random pick"]["regret"].append(float(acc.max() - acc.mean()))
        out["random pick"]["picked"].append("—")
        out["random pick"]["seeds"].append(seed)
    return out


def _label(c: dict) -> str:
    if c["epoch"] == 0:
        return c["name"]
    return f"{c['name']} w={c['weight']:g} ep {c['epoch']}"


def format_grades(grades: dict[str, dict[str, Any]]) -> str:
    """Rank correlation and regret per validator: per seed, and their mean."""
    seeds = next(iter(grades.values()))["seeds"]
    head = "".join(f"{f's{s}':>7}" for s in seeds)
    lines = [f"{'validator':<16}{'Spearman ρ':>10}{head}  {'regret':>7}{head}",
             "-" * (16 + 10 + 9 + 14 * len(seeds))]  # fmt: skip
    for v, g in grades.items():
        rho, reg = np.array(g["spearman"]), 100 * np.array(g["regret"])
        r = "" if np.isnan(rho).all() else f"{np.nanmean(rho):+10.2f}"
        cells = "".join("" if np.isnan(x) else f"{x:+7.2f}" for x in rho)
        cells = cells or " " * (7 * len(seeds))
        lines.append(
            f"{v:<16}{r:>10}{cells}  {reg.mean():7.1f}" + "".join(f"{x:7.1f}" for x in reg)
        )
    lines.append(
        "(ρ: rank correlation with uci test accuracy over each seed's candidates, then "
        "the mean; regret: points of uci test accuracy lost by the validator's pick)"
    )
    return "\n".join(lines)  # fmt: skip


def format_candidates(rows: list[dict], seed: int) -> str:
    """One seed's candidates: every validator's score and the target test accuracy (%)."""
    cols = tuple(VALIDATORS)
    lines = [f"{'candidate':<26}" + "".join(f"{c:>17}" for c in cols) + f"{'uci test %':>12}",
             "-" * (26 + 17 * len(cols) + 12)]  # fmt: skip
    for c in [r for r in rows if r["seed"] == seed]:
        vals = "".join(
            f"{100 * c[v]:17.1f}" if v in ("source accuracy", "IWCV", "DEV") else f"{c[v]:17.3f}"
            for v in cols
        )
        lines.append(f"{_label(c):<26}{vals}{100 * c['target_accuracy']:12.1f}")
    lines.append("(source accuracy, IWCV, DEV: %, estimated accuracies; entropy: minus nats; "
                 "SND: nats; higher is 'pick this' for every column)")  # fmt: skip
    return "\n".join(lines)


def validators_figure(rows: list[dict], validators=tuple(VALIDATORS), *, title: str = ""):
    """One panel per validator: its score (x) against the target test accuracy (y) of every
    candidate, one marker per seed, one colour per method. Returns the Figure."""
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r["name"] for r in rows))
    seeds = sorted({r["seed"] for r in rows})
    markers = "os^Dv<>"
    fig, axes = plt.subplots(1, len(validators), figsize=(3.1 * len(validators), 3.3),
                             layout="constrained", sharey=True)  # fmt: skip
    for ax, v in zip(np.atleast_1d(axes), validators, strict=True):
        for r in rows:
            ax.scatter(r[v], 100 * r["target_accuracy"], s=22, alpha=0.8,
                       color=plt.cm.tab10(names.index(r["name"])),
                       marker=markers[seeds.index(r["seed"]) % len(markers)])  # fmt: skip
        ax.set_xlabel(v + (" %" if v in ("source accuracy", "IWCV", "DEV") else ""))
        if v in ("source accuracy", "IWCV", "DEV"):
            ax.xaxis.set_major_formatter(lambda x, _: f"{100 * x:.1f}")
    np.atleast_1d(axes)[0].set_ylabel("uci test accuracy % (grading only)")
    handles = [plt.Line2D([], [], ls="", marker="o", color=plt.cm.tab10(i), label=n)
               for i, n in enumerate(names)]  # fmt: skip
    handles += [plt.Line2D([], [], ls="", marker=markers[i % len(markers)], color="0.4",
                           label=f"seed {s}") for i, s in enumerate(seeds)]  # fmt: skip
    fig.legend(handles=handles, loc="outside right center", fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


# --------------------------------------------------------------------------- claims
def _paired(grades: dict, a: str, b: str) -> dict[str, float]:
    """``b``'s regret minus ``a``'s, paired by seed: above 0 when ``a`` loses less."""
    from tlearn.studies.claims import paired_difference

    return paired_difference(grades[b]["regret"], grades[a]["regret"])


def validator_claims(
    rows: list[dict], grades: dict[str, dict[str, Any]]
) -> dict[str, tuple[bool, str]]:
    """Lesson 09's message, ``{sentence: (holds, evidence)}``, on :func:`grid`'s rows and
    :func:`grade`'s output.

    The sentences are about the mechanism (the domain classifier, IWCV's and DEV's estimates)
    and about entropy, the one validator whose pick was good on every seed; entropy against a
    random pick is also printed paired by seed (:func:`tlearn.studies.claims.paired_difference`)
    but asserted seed by seed, as its interval from three seeds is wide. What separates SND,
    source accuracy, IWCV and DEV from each other is not asserted: three seeds do not. Every
    check fails when its sentence is false (``tests/test_studies_validators.py`` feeds it
    falsified numbers).
    """
    from tlearn.studies.claims import describe

    src = [r for r in rows if r["name"] == "source only"]
    called = np.array([r["source_called_source"] for r in src])
    share = np.array([r["effective_share"] for r in src])
    gap = np.array([min(r["IWCV"], r["DEV"]) - r["target_accuracy"] for r in rows])
    rho = np.array(grades["entropy"]["spearman"])
    regret, chance = (np.array(grades[k]["regret"]) for k in ("entropy", "random pick"))
    return {
        "on the source-only network's features the domain classifier calls 95 %+ of the "
        "held-out source validation images source, on every seed": (
            bool((called >= 0.95).all()),
            f"{', '.join(f'{c:.1%}' for c in called)} (the weights' effective sample: "
            f"{', '.join(f'{x:.1%}' for x in share)} of the images)"),
        "IWCV and DEV overestimate the target accuracy of every candidate of every seed, by "
        "10+ points": (bool(gap.min() >= 0.10), f"smallest overestimate {100 * gap.min():+.1f} "
                       f"points over {len(rows)} candidates"),
        "the entropy of the target predictions ranks the candidates in the target accuracy's "
        "direction on every seed (Spearman ρ > 0)": (
            bool((rho > 0).all()), ", ".join(f"{x:+.2f}" for x in rho)),
        "picking by the entropy of the target predictions loses less than a random pick, on "
        "every seed": (
            bool((regret < chance).all()),
            f"regret {', '.join(f'{100 * x:.1f}' for x in regret)} vs "
            f"{', '.join(f'{100 * x:.1f}' for x in chance)} points; paired "
            f"{describe(_paired(grades, 'entropy', 'random pick'))}"),
    }  # fmt: skip
