"""The runs behind lessons 03, 04 and 05, computed once and cached on disk.

A domain-adaptation comparison is many trainings: seven methods × three seeds is more than
two minutes of CPU. So every run here is described by a :class:`RunConfig`, and its result
(accuracies, proxy A-distance, the training history — and the trained weights) is stored
under ``results/`` in the cache with a key that hashes the *whole* config and the tlearn
version. A notebook asks for a result; it is read from the first layer of ``TLEARN_CACHE``
that has it complete, and computed honestly (then stored in the first writable layer) when
it is missing or corrupt::

    from tlearn.studies import adaptation as ex
    res = ex.run(ex.config("coral", seed=0))          # trains, or loads in milliseconds
    res["target_accuracy"], res["history"][-1]["align_loss"]
    table = ex.comparison(seeds=(0, 1, 2))            # every method of lesson 04
    print(ex.format_table(table))

Methods a config can name:

* ``"none"``, ``"coral"``, ``"mmd"``, ``"dann"`` — :func:`tlearn.adapt.fit_adapt`;
* ``"target"`` — the upper bound: supervised training on the *labelled* target train split
  (an oracle no real adaptation problem has);
* ``"adabn"`` — the source-only network of the same seed, BatchNorm statistics re-estimated
  on the target (:func:`tlearn.adapt.adabn`);
* ``"standardised"`` — the source-only network's features, each domain standardised with
  its own mean and standard deviation, and a logistic regression: CORAL's first ingredient
  alone, so a table can show what re-colouring adds on top of it;
* ``"coral_closed_form"`` — the same, then closed-form CORAL re-colouring (Sun, Feng &
  Saenko 2016).

The proxy A-distance of a run is measured on each domain's features *with that domain's
own BatchNorm statistics* — the space training aligned (:func:`domain_features`): a
network whose statistics were re-estimated on the target (``reestimate_bn``, AdaBN) sees
the source images through a copy re-estimated on the source.

Every accuracy is on the target *test* split, measured once at the end of training: no
epoch or weight is ever chosen on it.

``target="synth_degraded"`` or ``"synth_framed"`` (:mod:`tlearn.studies.domains`, registered
as domains when this module is imported) gives a development pair, on which ``fit_adapt``'s
defaults were chosen: ``run(config("mmd", target="synth_framed", weight=3, seed=1))``.

Where a run is stored follows ``TLEARN_CACHE`` (:func:`results_dir`), and where it trains
follows ``TLEARN_DEVICE`` (:func:`tlearn.runtime.get_device`).

This module holds the configs, the cache and the runs. What a lesson shows of them lives
beside it and is reachable from here too (``ex.format_table`` …):
:mod:`tlearn.studies.adaptation_report` (tables, figures, lesson 04's MMD² estimates) and
:mod:`tlearn.studies.adaptation_claims` (each lesson's sentences, checked on its numbers).
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tlearn import adapt, bn, data, features, models, runtime, train
from tlearn.adapt.coral import coral_matrices
from tlearn.studies.adaptation_claims import (
    ADVERSARIAL_INGREDIENTS,
    adversarial_claims,
    adversarial_ingredients,
    coral_claims,
    mmd_claims,
)
from tlearn.studies.adaptation_report import (
    BANDWIDTH_MULTIPLIERS,
    bandwidth_curve,
    estimator_spread,
    format_table,
    null_distribution_figure,
    per_seed_table,
    weight_sweep_figure,
)
from tlearn.studies.domains import DEV_TARGET, DEV_TARGET_FRAMED, DEV_TARGETS

__all__ = [
    # configs, cache, runs (this module)
    "RunConfig",
    "config",
    "run",
    "trained_model",
    "comparison",
    "weight_sweep",
    "closed_form_coral",
    "domain_features",
    "source_statistics",
    "target_calibrated",
    "datasets",
    "DEV_TARGET",
    "DEV_TARGET_FRAMED",
    "DEV_TARGETS",
    "results_dir",
    "standardise",
    "COMPARISON_ROWS",
    "MMD_ROWS",
    "ADVERSARIAL_ROWS",
    "TENT_DEFAULTS",
    # tables and figures (adaptation_report)
    "format_table",
    "per_seed_table",
    "estimator_spread",
    "bandwidth_curve",
    "weight_sweep_figure",
    "null_distribution_figure",
    "BANDWIDTH_MULTIPLIERS",
    # lessons 03-05's claims (adaptation_claims)
    "coral_claims",
    "mmd_claims",
    "adversarial_claims",
    "adversarial_ingredients",
    "ADVERSARIAL_INGREDIENTS",
]

#: What the stored measurements mean. v2: the proxy A-distance sees each domain with its own
#: BatchNorm statistics; the closed-form rows report their classifier's own source accuracy;
#: ``source_accuracy_own_bn``. A v1 result whose weights are stored is re-measured, not retrained.
RESULTS_FORMAT = "tlearn-adapt-result-v2"
#: Part of the cache key: what determines the trained *weights* (bump it when training changes).
TRAINING_FORMAT = "tlearn-adapt-result-v1"
OLD_FORMATS = ("tlearn-adapt-result-v1",)
#: Training changes that concern one method only, added to that method's cache key (the others
#: keep theirs). mmd: the bandwidth's gradient is no longer detached (``adapt.mmd``).
METHOD_TRAINING = {"mmd": "bandwidth-differentiated"}
TRAINED = ("none", "coral", "mmd", "dann", "cdan", "cdan_e", "target")
DERIVED = ("adabn", "tent", "standardised", "coral_closed_form")
#: TENT's settings in a ``config("tent")``: ``epochs`` = passes over the target, ``lr`` and
#: ``batch_size`` its optimiser's (``adapt.tent``); chosen on the development pairs
#: (``benchmarks/adapt_selection.py``, round 4: 3 passes; the paper's single online pass
#: scored lower on both pairs).
TENT_DEFAULTS: dict[str, Any] = {"epochs": 3, "lr": 1e-3, "batch_size": 64}

#: Lesson 04's table: row name → method.
COMPARISON_ROWS: dict[str, str] = {
    "source only": "none",
    "AdaBN": "adabn",
    "standardised (linear)": "standardised",
    "CORAL (closed form)": "coral_closed_form",
    "Deep CORAL": "coral",
    "MMD (DAN)": "mmd",
    "DANN": "dann",
    "target supervised": "target",
}

#: Lesson 04's table (MMD and DAN against lesson 03's methods): row name → method.
MMD_ROWS: dict[str, str] = {
    "source only": "none",
    "standardised (linear)": "standardised",
    "CORAL (closed form)": "coral_closed_form",
    "Deep CORAL": "coral",
    "MMD (DAN)": "mmd",
    "target supervised": "target",
}
#: Lesson 05's table (adversarial and test-time adaptation, and the best of 03–04).
ADVERSARIAL_ROWS: dict[str, str] = {
    "source only": "none",
    "AdaBN": "adabn",
    "TENT": "tent",
    "DANN": "dann",
    "CDAN": "cdan",
    "CDAN+E": "cdan_e",
    "Deep CORAL": "coral",
    "MMD (DAN)": "mmd",
}

TARGET_EPOCHS = 20  # the upper bound trains on 1257 uci digits: more epochs, same step count
PAD_SAMPLES = 540  # images per domain for the proxy A-distance (uci's test split has 540)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run's result (and so its cache key).

    ``method``, ``weight``, ``bn``, ``reestimate_bn``, ``seed``, ``epochs``, ``lr``,
    ``optimizer`` and ``batch_size`` are ``fit_adapt``'s arguments; ``source``/``target``
    are domain names (``data.load_domain``), ``source_size``/``source_seed`` the source
    training set's size and sampling seed.
    """

    method: str
    weight: float = 0.0
    bn: str = "joint"
    reestimate_bn: bool = False
    seed: int = 0
    epochs: int = 8
    lr: float = 1e-3
    optimizer: str = "adam"
    batch_size: int = 128
    source: str = "synth"
    source_size: int = 6000
    source_seed: int = 0
    target: str = "uci"

    def key(self) -> str:
        """The cache key (:func:`tlearn.runtime.cache_key`) of the config, the training
        format and the tlearn version: a new version recomputes."""
        spec = {"config": dataclasses.asdict(self), "format": TRAINING_FORMAT}
        if self.method in METHOD_TRAINING:
            spec["method_training"] = METHOD_TRAINING[self.method]
        return runtime.cache_key(spec)


def config(method: str, *, seed: int = 0, **overrides: Any) -> RunConfig:
    """A :class:`RunConfig` with ``fit_adapt``'s defaults for ``method`` filled in.

    ``overrides`` sets any other field (``weight=10``, ``epochs=4``, ``source_size=3000``…).
    """
    known = TRAINED + DERIVED
    if method not in known:
        raise ValueError(f"unknown method {method!r}; expected one of {known}")
    fields = {}
    if method in adapt.METHODS or method in DERIVED:
        # every default is a config field, so a changed default changes the cache key
        fields = adapt.defaults(method if method in adapt.METHODS else "none")
    if method == "target":
        fields["epochs"] = TARGET_EPOCHS
    if method == "tent":
        fields.update(TENT_DEFAULTS)
    fields.update(overrides)
    if "weight" in fields:
        fields["weight"] = float(fields["weight"])
    return RunConfig(method=method, seed=seed, **fields)


# --------------------------------------------------------------------------- cache
#
# A run is two cache entries: results/<key>.json (the numbers) and, for a method that trains
# a network, results/<key>.pt (its weights) beside it. Reads search every layer of
# TLEARN_CACHE in order (runtime.load_cached); writes go to the first writable layer
# (results_dir()). Nothing here ever deletes a file: a broken entry is skipped with a warning
# and replaced by the recomputed one in results_dir().


def results_dir() -> Path:
    """Where runs are written: ``runtime.cache_dir() / "results"`` (created on first use).

    Reads search ``results/`` in every cache layer, this folder among them.
    """
    path = runtime.cache_dir() / "results"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _read_result(cfg: RunConfig, into: torch.nn.Module | None = None) -> dict | None:
    """The cached result of ``cfg`` from the first cache layer whose copy is complete, or
    None. ``into`` (a trained method's network) also gets that copy's weights loaded.

    A result stored in an older format (:data:`OLD_FORMATS`) is returned too: :func:`run`
    re-measures it from its weights. A copy that is corrupt, for another config, or lacks its
    weights file is skipped with a warning (``runtime.load_cached``), so the run is computed
    again.
    """

    def read(path: Path) -> dict:
        result = json.loads(path.read_text())
        complete = (
            isinstance(result, dict)
            and result.get("format") in (RESULTS_FORMAT, *OLD_FORMATS)
            and result.get("config") == dataclasses.asdict(cfg)
            and isinstance(result.get("target_accuracy"), float)
        )
        if not complete:
            raise ValueError("it holds another config's result, or an incomplete one")
        weights = path.with_suffix(".pt")
        if cfg.method in TRAINED and not weights.is_file():
            raise FileNotFoundError(f"its weights {weights.name} are missing")
        if into is not None:
            into.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        return result

    return runtime.load_cached(f"results/{cfg.key()}.json", read)


# --------------------------------------------------------------------------- data
@lru_cache(maxsize=8)
def _domain(name: str, split: str, size: int | None, seed: int):
    """``data.load_domain``, remembered: a lesson asks for the same splits many times."""
    return data.load_domain(name, split, size=size, seed=seed)


def datasets(cfg: RunConfig):
    """``(source train, source val, target train, target test)`` of ``cfg`` (loaded once)."""
    return (
        _domain(cfg.source, "train", cfg.source_size, cfg.source_seed),
        _domain(cfg.source, "test", None, cfg.source_seed),
        _domain(cfg.target, "train", None, 0),
        _domain(cfg.target, "test", None, 0),
    )


def target_calibrated(cfg: RunConfig) -> bool:
    """Does the network of ``cfg`` hold BatchNorm statistics estimated on the *target*?
    (AdaBN, TENT, and every ``fit_adapt`` run with ``reestimate_bn``.)"""
    return cfg.method in ("adabn", "tent") or (cfg.method in TRAINED and cfg.method != "target"
                                     and cfg.reestimate_bn)  # fmt: skip


def source_statistics(model: torch.nn.Module, cfg: RunConfig) -> torch.nn.Module:
    """A copy of ``model`` whose BatchNorm statistics are re-estimated on the source train
    images of ``cfg`` (weights untouched): how the network normalised the source in training."""
    source_train = datasets(cfg)[0]
    return bn.estimate_bn_statistics(
        copy.deepcopy(model), source_train, device=runtime.get_device()
    )


def domain_features(
    model: torch.nn.Module,
    cfg: RunConfig,
    n: int = PAD_SAMPLES,
    *,
    own_statistics: bool = True,
    source_view: torch.nn.Module | None = None,
):
    """``model.features`` of ``n`` source-val and ``n`` target-test images: (Zs, ys, Zt, yt).

    Each domain passes through BatchNorm with **its own** statistics (``own_statistics``):
    when the network holds target statistics (:func:`target_calibrated`), the source
    features come from a copy re-estimated on the source (:func:`source_statistics`) — the
    space a per-domain training aligned. ``own_statistics=False`` puts both domains through
    ``model`` as it is (so source images see target statistics). ``source_view``: that
    re-estimated copy, when the caller has made it already.
    """
    _, source_val, _, target_test = datasets(cfg)
    n_source, n_target = min(n, len(source_val)), min(n, len(target_test))
    source_model = model
    if own_statistics and target_calibrated(cfg):
        source_model = source_statistics(model, cfg) if source_view is None else source_view
    device = runtime.get_device()
    zs, ys = features.extract(
        source_model, source_val.subset(range(n_source)), "features", device=device, progress=False
    )
    zt, yt = features.extract(
        model, target_test.subset(range(n_target)), "features", device=device, progress=False
    )
    return zs, ys, zt, yt


# --------------------------------------------------------------------------- runs
def standardise(a: np.ndarray, ref: np.ndarray | None = None) -> np.ndarray:
    """``(a − mean) / std`` with the statistics of ``ref`` (default: ``a`` itself)."""
    ref = a if ref is None else ref
    return (a - ref.mean(0)) / (ref.std(0) + 1e-6)


def _source_only_model(cfg: RunConfig, progress: bool) -> torch.nn.Module:
    """The source-only network a derived method (AdaBN, closed-form CORAL) starts from:
    ``cfg`` with ``method="none"`` and source-only's own defaults, so it is the very run
    ``config("none", ...)`` names (and caches)."""
    keys = ("weight", "bn", "reestimate_bn")
    if cfg.method == "tent":  # TENT's epochs, lr and batch size are its own (passes, steps)
        keys += ("epochs", "lr", "optimizer", "batch_size")
    batch = RunConfig.__dataclass_fields__["batch_size"].default
    source_only = {**adapt.defaults("none"), "batch_size": batch}
    base = dataclasses.replace(cfg, method="none", **{k: source_only[k] for k in keys})
    return trained_model(base, progress=progress)


def closed_form_coral(
    model: torch.nn.Module, source, target, target_test, source_val=None, *, reg: float = 1.0,
    max_source: int = 2000,
) -> dict[str, float]:  # fmt: skip
    """Closed-form CORAL on ``model.features`` with a logistic-regression classifier.

    The recipe of Sun, Feng & Saenko (AAAI 2016) on frozen deep features: standardise each
    domain with its own mean and standard deviation, re-colour the source with
    ``adapt.coral(Xs, Xt, reg)``, train on it, test on the (standardised) raw target.

    Returns target-test accuracies of three linear classifiers (no target labels used):
    ``"no_adaptation"`` (both domains standardised with the *source* statistics),
    ``"standardised"`` (each domain with its own: aligns means and variances) and
    ``"coral"`` (per-domain standardisation + covariance re-colouring). With ``source_val``
    also each classifier's own source accuracy, ``"source_<name>"``: source-validation
    features put through the same transformation as the source training features.
    """
    from sklearn.linear_model import LogisticRegression  # here: scikit-learn's import is slow

    device = runtime.get_device()

    def extract(dataset):
        z, y = features.extract(model, dataset, "features", device=device, progress=False)
        return z.double().numpy(), y.numpy()

    xs, ys = extract(source.subset(range(min(max_source, len(source)))))
    xt, _ = extract(target)
    x_test, y_test = extract(target_test)
    x_val, y_val = extract(source_val) if source_val is not None else (None, None)
    whiten, recolour = coral_matrices(standardise(xs), standardise(xt), reg)  # X_S* = X_S W R
    out: dict[str, float] = {}
    for name, train_x, test_x, transform in (
        ("no_adaptation", standardise(xs), standardise(x_test, xs), lambda a: a),
        ("standardised", standardise(xs), standardise(x_test, xt), lambda a: a),
        ("coral", standardise(xs) @ whiten @ recolour, standardise(x_test, xt),
         lambda a: a @ whiten @ recolour),
    ):  # fmt: skip
        classifier = LogisticRegression(max_iter=2000, C=1.0).fit(train_x, ys)
        out[name] = float(classifier.score(test_x, y_test))
        if source_val is not None:
            out[f"source_{name}"] = float(
                classifier.score(transform(standardise(x_val, xs)), y_val)
            )
    return out


def _compute(cfg: RunConfig, progress: bool) -> tuple[dict, torch.nn.Module | None]:
    """Train (or derive) the network of ``cfg`` and measure it: ``(result, network)``, the
    network only for a method that trains one of its own."""
    device = runtime.get_device()
    source_train, source_val, target_train, target_test = datasets(cfg)
    start = time.perf_counter()
    history: list[dict] = []
    extra: dict[str, Any] = {}
    if cfg.method in DERIVED:
        net = copy.deepcopy(_source_only_model(cfg, progress))
        if cfg.method == "adabn":
            adapt.adabn(net, target_train, device=device, progress=False)
        elif cfg.method == "tent":  # target images only; BatchNorm γ, β move
            runtime.seed_everything(cfg.seed)
            adapt.tent(net, target_train, steps=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size,
                       optimizer=cfg.optimizer, device=device, progress=False)  # fmt: skip
        else:
            extra = closed_form_coral(net, source_train, target_train, target_test, source_val)
    else:
        runtime.seed_everything(cfg.seed)
        net = models.DigitNet(
            num_classes=source_train.num_classes, in_channels=source_train.images.shape[1]
        )
        if cfg.method == "target":  # the oracle: target labels, supervised
            history = train.fit(
                net, target_train, epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size,
                drop_last=False,  # the recorded protocol: every image, every epoch
                seed=cfg.seed, device=device, progress=progress,
            ).records  # fmt: skip
        else:
            history = adapt.fit_adapt(
                net, source_train, target_train, cfg.method, weight=cfg.weight,
                epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size, bn=cfg.bn,
                reestimate_bn=cfg.reestimate_bn, optimizer=cfg.optimizer, seed=cfg.seed,
                val=source_val, device=device, progress=progress,
            ).records  # fmt: skip
    result = {
        "format": RESULTS_FORMAT,
        "config": dataclasses.asdict(cfg),
        **_measure(net, cfg),
        "history": history,
        "seconds": time.perf_counter() - start,
        **extra,
    }
    if cfg.method in ("standardised", "coral_closed_form"):  # the linear classifier's own
        own = "coral" if cfg.method == "coral_closed_form" else "standardised"
        result["target_accuracy"] = extra[own]
        result["source_accuracy"] = result["source_accuracy_own_bn"] = extra[f"source_{own}"]
    return result, (net if cfg.method in TRAINED else None)


def _measure(net: torch.nn.Module, cfg: RunConfig) -> dict[str, float]:
    """Target-test and source-val accuracy of ``net`` as it is, source-val accuracy with
    the source's own BatchNorm statistics, and the proxy A-distance (each domain with its
    own statistics; for the linear rows, on the features their classifier sees)."""
    device = runtime.get_device()
    _, source_val, _, target_test = datasets(cfg)
    on_source = source_statistics(net, cfg) if target_calibrated(cfg) else net
    zs, _, zt, _ = domain_features(net, cfg, source_view=on_source)
    if cfg.method in ("standardised", "coral_closed_form"):  # the linear classifier's space
        zs, zt = standardise(zs.double().numpy()), standardise(zt.double().numpy())
        if cfg.method == "coral_closed_form":
            zs = adapt.coral(zs, zt, reg=1.0)
    source_accuracy = train.evaluate(net, source_val, device=device)["accuracy"]
    return {
        "target_accuracy": train.evaluate(net, target_test, device=device)["accuracy"],
        "source_accuracy": source_accuracy,
        "source_accuracy_own_bn": (
            train.evaluate(on_source, source_val, device=device)["accuracy"]
            if on_source is not net
            else source_accuracy
        ),
        "proxy_a_distance": adapt.proxy_a_distance(zs, zt, seed=cfg.seed),
    }


def run(cfg: RunConfig, *, progress: bool = True, cache: bool = True) -> dict[str, Any]:
    """The result of ``cfg``: read from the cache, or computed (and cached).

    Returns a dict with ``target_accuracy`` and ``source_accuracy`` (fractions, on the
    target test and source validation splits), ``proxy_a_distance`` (features of 540
    source-val vs 540 target-test images), ``history`` (per-epoch records of the training)
    and ``seconds`` (compute time when it was computed). ``cache=False`` recomputes.
    """
    if not isinstance(cfg, RunConfig):
        raise TypeError(
            f"cfg must be a RunConfig (use adaptation.config(...)), got {type(cfg).__name__}"
        )
    if cache:
        net = models.DigitNet() if cfg.method in TRAINED else None
        result = _read_result(cfg, into=net)
        if result is not None and result["format"] == RESULTS_FORMAT:
            return result
        if result is not None and net is not None:  # an older format: re-measure, don't retrain
            result = {**result, **_measure(net.eval(), cfg), "format": RESULTS_FORMAT}
            _save(cfg, result, net)
            return result
    result, net = _compute(cfg, progress)
    _save(cfg, result, net)
    return result


def _save(cfg: RunConfig, result: dict, net: torch.nn.Module | None) -> None:
    """Store a result (and a trained network's weights) in the writable cache layer."""
    key = cfg.key()
    if net is not None:
        buffer = io.BytesIO()
        torch.save({k: v.cpu() for k, v in net.state_dict().items()}, buffer)
        runtime.save_cached(f"results/{key}.pt", lambda f: f.write(buffer.getvalue()))
    runtime.save_cached(
        f"results/{key}.json", lambda f: f.write(json.dumps(result, indent=1).encode())
    )


def trained_model(cfg: RunConfig, *, progress: bool = True) -> torch.nn.Module:
    """The network trained by ``cfg`` (eval mode, CPU), loaded from the cache or trained."""
    if cfg.method not in TRAINED:
        raise ValueError(f"{cfg.method!r} trains no network of its own; use one of {TRAINED}")
    net = models.DigitNet()
    if _read_result(cfg, into=net) is None:  # not in any layer (or broken there): train it
        run(cfg, progress=progress, cache=False)
        weights = torch.load(
            results_dir() / f"{cfg.key()}.pt", map_location="cpu", weights_only=True
        )
        net.load_state_dict(weights)
    return net.eval()


# --------------------------------------------------------------------------- grids
def _run_many(cfgs: dict, progress: bool) -> dict:
    """``{key: run(cfg)}`` with one progress bar over the runs (a step per finished run).

    The runs themselves train silently: a per-batch bar for each of 15 trainings would send
    thousands of messages from one notebook cell (see ``runtime.PROGRESS_INTERVAL``).
    """
    out = {}
    with runtime.progress_bar(total=len(cfgs), desc="runs (computed once, then cached)",
                              unit="run", enabled=progress) as bar:  # fmt: skip
        for key, cfg in cfgs.items():
            bar.set_postfix_str(f"{cfg.method}, seed {cfg.seed}", refresh=False)
            out[key] = run(cfg, progress=False)
            bar.update()
    return out


def comparison(
    seeds: tuple[int, ...] = (0, 1, 2),
    *,
    rows: dict[str, str] | None = None,
    progress: bool = True,
    **overrides: Any,
) -> dict[str, list[dict]]:
    """A table of runs: ``{row name: [result per seed]}`` for ``rows`` (row name → method;
    default :data:`COMPARISON_ROWS`; lesson 04 uses :data:`MMD_ROWS`, lesson 05
    :data:`ADVERSARIAL_ROWS`)."""
    rows = COMPARISON_ROWS if rows is None else rows
    cfgs = {(row, s): config(m, seed=s, **overrides) for row, m in rows.items() for s in seeds}
    results = _run_many(cfgs, progress)
    return {row: [results[row, s] for s in seeds] for row in rows}


def weight_sweep(
    weights: tuple[float, ...] = (0, 1, 3, 10, 30, 100), seed: int = 0, *, method: str = "coral",
    progress: bool = True, **overrides: Any,
) -> dict[float, dict]:  # fmt: skip
    """Results of ``method`` for each loss weight w in L = CE + w·ℓ_align (one seed):
    ``{weight: result}``."""
    cfgs = {float(w): config(method, seed=seed, weight=w, **overrides) for w in weights}
    return _run_many(cfgs, progress)
