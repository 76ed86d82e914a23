"""The numbers the course measured, read from the lessons' own results: lesson 06's decision guide.

Lesson 06 ends with a chart whose boxes cite what lessons 01, 02, 04 and 05 measured. Typed
into the code, those numbers drift the day a lesson is re-run on another machine or with other
seeds, and a student then reads a chart that contradicts the tables above it. Here each number
is computed by the same call, with the same defaults, as the lesson that printed it:

* lesson 01: ``finetune.few_shot_curve`` (from scratch and full fine-tuning at 1, 5 and 10
  labels per class, one thread as lesson 01 runs it: its fine-tunes are seconds each);
* lesson 02: ``probes.few_shot_probe`` on the synth DigitNet's features (1 label per class)
  and ``layers.layer_sweep`` over ImageNet EfficientNet-Lite0's blocks (10 labels per class,
  the block chosen by cross-validation on the labelled images), features from the
  :class:`~tlearn.features.FeatureCache` lesson 02 filled;
* lessons 04 and 05: ``adaptation.comparison``, the cached runs of their tables.

After lessons 01–05 (or ``tlearn warm``) the runs of 04 and 05 and lesson 02's features are
cache hits; lesson 01's fine-tunes run again (about 15 s on two cores).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from tlearn import data, features, models, probes, runtime
from tlearn.studies import finetune, layers
from tlearn.studies.adaptation import ADVERSARIAL_ROWS, MMD_ROWS, comparison
from tlearn.studies.choosing import CHART_NUMBERS as KEYS
from tlearn.studies.source import source_model

__all__ = ["KEYS", "course_numbers"]

LITE_SIZE = 64  # lesson 02's input side for EfficientNet-Lite0
LITE_BLOCKS = [f"features.backbone.features.{i}" for i in range(9)]


def _percent(values: Sequence[float]) -> float:
    return round(100 * float(np.mean(values)), 1)


def _lesson01(source, target_train, target_test, seeds) -> dict[str, float]:
    """Lesson 01's curve for two of its methods; one thread, as lesson 01's ``THREADS = 1``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = finetune.few_shot_curve(
            source=source, target_train=target_train, target_test=target_test,
            methods=("scratch", "full"), per_class=(1, 5, 10), seeds=seeds, progress=False,
        ).rows  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    name = {"scratch": "scratch", "full": "finetune"}
    out = {}
    for method in ("scratch", "full"):
        for k in (1, 5, 10):
            accs = [r["accuracy"] for r in rows if r["method"] == method and r["per_class"] == k]
            out[f"{name[method]}_{k}"] = _percent(accs)
    return out


def _lesson02(source, target_train, target_test, seeds) -> dict[str, float]:
    """Lesson 02's probe at 1 label/class, and its Lite0 block chosen by CV at 10."""
    cache = features.FeatureCache(verbose=False)
    Z_train, y_train = features.extract(source, target_train, cache=cache, progress=False)
    Z_test, y_test = features.extract(source, target_test, cache=cache, progress=False)
    probe = probes.few_shot_probe(Z_train, y_train, Z_test, y_test, per_class=[1], seeds=seeds)
    lite = models.for_digits("efficientnet_lite0", size=LITE_SIZE)
    picked = []
    for seed in seeds:
        few = data.few_shot(target_train, per_class=10, seed=seed)
        rows = layers.layer_sweep(lite, few, target_test, layers=LITE_BLOCKS,
                                  unlabeled=target_train, cv=5, cache=cache, progress=False)  # fmt: skip
        picked.append(layers.best_layer(rows)["accuracy"])
    return {
        "probe_source_1": _percent(np.asarray(probe["accuracy"])[:, 0]),
        "probe_lite0_block_10": _percent(picked),
    }


def _lessons04_05(seeds) -> dict[str, float]:
    """Rows of lesson 04's and lesson 05's tables (cached runs)."""
    rows04 = {"source only": "source_only", "MMD (DAN)": "mmd", "Deep CORAL": "deep_coral",
              "target supervised": "target_supervised"}  # fmt: skip
    table = comparison(tuple(seeds), rows={r: MMD_ROWS[r] for r in rows04}, progress=False)
    out = {key: _percent([r["target_accuracy"] for r in table[row]]) for row, key in rows04.items()}
    adabn = comparison(tuple(seeds), rows={"AdaBN": ADVERSARIAL_ROWS["AdaBN"]}, progress=False)
    out["adabn"] = _percent([r["target_accuracy"] for r in adabn["AdaBN"]])
    return out


def course_numbers(seeds: Sequence[int] = (0, 1, 2)) -> dict[str, tuple[float, str]]:
    """Each number the decision guide cites: ``{key: (uci test accuracy %, lesson)}``.

    Means over ``seeds`` on the embedded synth → uci pair, computed by the lessons' own calls
    with their defaults (see the module docstring) — so the chart quotes what this machine's
    lessons printed, rounded as they print it. Keys and meanings: :data:`KEYS`.
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds must not be empty")
    runtime.seed_everything(0)
    source = source_model(seed=0, progress=False)
    target_train = data.load_domain("uci", split="train")
    target_test = data.load_domain("uci", split="test")
    measured = {
        **_lesson01(source, target_train, target_test, seeds),
        **_lesson02(source, target_train, target_test, seeds),
        **_lessons04_05(seeds),
    }
    return {key: (measured[key], lesson) for key, (_, lesson) in KEYS.items()}
