"""``tlearn warm``: build every cache the lessons read, once, before anyone opens them.

A lesson reads three kinds of cached results: source models (:mod:`tlearn.studies.source`),
domain-adaptation runs (:mod:`tlearn.studies.adaptation`) and extracted features
(:class:`tlearn.features.FeatureCache`). The first Run All of a lesson computes what is
missing — minutes of training. ``tlearn warm`` makes exactly the calls the lessons make, with
their default parameters, so that afterwards every one of those reads is a cache hit.

A teacher warms a shared folder once (``TLEARN_CACHE=/srv/tlearn-cache tlearn warm``); the
students list it as a read-only layer after their own (``runtime.cache_dirs``), and nothing
the teacher built trains again. Binder's ``postBuild`` runs it while building the image.

Each :class:`Step` is one such call. Whether it *built* something or found it *cached* is
read off what it wrote, not taken on trust: every cache file is written by
``runtime.atomic_write``, which lists it for the step that runs (``runtime.recording_writes``).
``tlearn warm --jobs N`` builds steps in N processes at once. What the lessons compute outside any cache (fine-tuning in lesson 01, the probes and
fine-tuning of lesson 02, the steps shown before the helpers in lessons 03–05)
cannot be warmed and runs in the lesson, as it should — a few seconds each.

Example (two tiny steps; ``warm()`` with no ``steps`` builds every lesson's caches)::

    from tlearn.studies import warm
    from tlearn.studies.source import source_model
    steps = [warm.Step(("00",), "tiny source model", lambda: source_model(size=64, epochs=1))]
    rows = warm.warm(steps=steps)    # [{"step": "tiny source model", "status": "built", …}]
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import tlearn
from tlearn import checks, data, features, models, runtime
from tlearn.studies import adaptation, choosing, layers, real_images, self_training
from tlearn.studies.source import source_model

__all__ = [
    "Step",
    "LESSONS",
    "lesson_steps",
    "warm",
    "auto_jobs",
    "memory_budget",
    "disk_usage",
    "format_summary",
]

#: The lessons whose caches :func:`lesson_steps` knows, by number.
LESSONS = ("00", "01", "02", "03", "04", "05", "06", "07", "08", "09")

# The lessons' parameters cells, as they ship (tests/test_warm.py checks they still agree).
SOURCE_SEEDS = (0, 1, 2)  # lesson 00: SEEDS — one source model per seed
SOURCE_SIZE = 6000  # lesson 00: SOURCE_SIZE (01 and 02 call source_model() with its defaults)
FEATURE_SEEDS = (0, 1, 2)  # lesson 02: SEEDS (few-shot draws of the layer sweep)
SWEEP_PER_CLASS = 10  # lesson 02: SWEEP_PER_CLASS
IMAGE_SIZE = 64  # lesson 02: IMAGE_SIZE (EfficientNet-Lite0 input side)
CORAL_SEEDS = (0, 1, 2)  # lesson 03: SEEDS (its SEED is SEEDS[0])
WEIGHTS = (0, 3, 30, 300)  # lesson 03: WEIGHTS (Deep CORAL loss weights of the trade-off)
COMPARISON_SEEDS = (0, 1, 2)  # lesson 04: SEEDS
ADVERSARIAL_SEEDS = (0, 1, 2)  # lesson 05: SEEDS
RUN = {"source": "synth", "target": "uci"}  # lessons 03, 04 and 05: RUN
CHOOSING_SEEDS = (0, 1, 2)  # lesson 06: SEEDS
CHOOSING = {
    "per_class": 10,
    "image_size": 32,
    "target": "uci",
}  # lesson 06: PER_CLASS, IMAGE_SIZE, TARGET
SELF_TRAINING_SEEDS = (0, 1, 2)  # lesson 08: SEEDS (RUN as lessons 03–05)
VALIDATOR_SEEDS = (0, 1, 2)  # lesson 09: SEEDS (RUN as lessons 03–05)
REAL = {"DOMAIN": "fashion", "PER_CLASS": 10, "SEEDS": (0, 1, 2), "IMAGE_SIZE": 32}  # lesson 07


@dataclasses.dataclass(frozen=True)
class Step:
    """One cache a lesson reads: ``build()`` makes the lesson's own call (a hit when cached).

    ``lessons`` are the lessons that read it (``("00", "01")``), ``what`` says what it is.
    ``stage`` orders the steps for :func:`warm`'s workers: a step may read what a lower stage
    built (0: what reads no other step — source models, the LR range test, every adaptation
    run that trains its network from scratch; 1: what reads stage 0 — the runs that start
    from a source-only network, the features and fine-tuning of source or pretrained models;
    2: what reads stage 1 — lesson 07's regularised fine-tuning).
    """

    lessons: tuple[str, ...]
    what: str
    build: Callable[[], object]
    stage: int = 0


# --------------------------------------------------------------------------- the lessons' calls
def _source_steps(lessons: set[str]) -> list[Step]:
    steps = []
    for seed in SOURCE_SEEDS:  # lesson 00 reads each seed's; 01 and 02 read seed 0's
        readers = {"00", "01", "02", "06"} if seed == 0 else {"00"}
        wanted = tuple(sorted(lessons & readers))
        if wanted:
            steps.append(
                Step(
                    wanted,
                    f"source model, seed {seed}",
                    lambda seed=seed: source_model(seed=seed, size=SOURCE_SIZE, progress=False),
                )
            )
    return steps


def _lesson02_features() -> None:
    """Lesson 02's feature cache, filled by the lesson's own calls (cells "extractors" and
    "layer sweep"): features of four networks on the target train and test splits, and at
    every block for each few-shot draw. The keys hash each network's weights, so the
    networks are made as the lesson makes them — the same seeding, in the same order, the
    same dictionaries (``tests/test_warm.py`` compares them with the lesson's)."""
    target_train = data.load_domain("uci", split="train")
    target_test = data.load_domain("uci", split="test")
    source = source_model(progress=False)  # before the seed, as in the lesson
    tlearn.seed_everything(0)
    extractors = {
        "random DigitNet": models.DigitNet().eval(),
        "synth source DigitNet": source,
        "random EfficientNet-Lite0": models.for_digits(
            models.load_backbone("efficientnet_lite0", pretrained=False), size=IMAGE_SIZE
        ),
        "ImageNet EfficientNet-Lite0": models.for_digits("efficientnet_lite0", size=IMAGE_SIZE),
    }
    sweep_layers = {
        "random DigitNet": None,  # None: the model's blocks, features.conv1 … head
        "synth source DigitNet": None,
        "random EfficientNet-Lite0": [f"features.backbone.features.{i}" for i in range(9)],
        "ImageNet EfficientNet-Lite0": [f"features.backbone.features.{i}" for i in range(9)],
    }
    cache = features.FeatureCache()
    for net in extractors.values():
        features.extract(net, target_train, cache=cache, progress=False)
        features.extract(net, target_test, cache=cache, progress=False)
    for seed in FEATURE_SEEDS:
        few = data.few_shot(target_train, per_class=SWEEP_PER_CLASS, seed=seed)
        for name, net in extractors.items():
            layers.layer_sweep(
                net, few, target_test, layers=sweep_layers[name], unlabeled=target_train,
                cv=5, cache=cache, progress=False,
            )  # fmt: skip


def _adaptation_steps(lessons: set[str]) -> list[Step]:
    readers: dict = {}  # RunConfig -> the lessons that read its result
    if "03" in lessons:
        # per seed: source only, closed-form CORAL, Deep CORAL; then the weight sweep (SEED)
        for method in ("none", "coral_closed_form", "coral"):
            for seed in CORAL_SEEDS:
                readers.setdefault(adaptation.config(method, seed=seed, **RUN), set()).add("03")
        for w in WEIGHTS:
            cfg = adaptation.config("coral", seed=CORAL_SEEDS[0], weight=w, **RUN)
            readers.setdefault(cfg, set()).add("03")
    # comparison(SEEDS, rows=...): every row × seed (source-only first, as it does)
    comparisons = (("04", adaptation.MMD_ROWS, COMPARISON_SEEDS),
                   ("05", adaptation.ADVERSARIAL_ROWS, ADVERSARIAL_SEEDS))  # fmt: skip
    for lesson, rows, seeds in comparisons:
        if lesson in lessons:
            for method in rows.values():
                for seed in seeds:
                    cfg = adaptation.config(method, seed=seed, **RUN)
                    readers.setdefault(cfg, set()).add(lesson)

    def what(cfg) -> str:
        weight = (
            f", w = {cfg.weight:g}"
            if cfg.method in ("coral", "mmd", "dann", "cdan", "cdan_e")
            else ""
        )
        return f"adaptation run: {cfg.method}{weight}, seed {cfg.seed}"

    return [
        Step(tuple(sorted(who)), what(cfg), lambda cfg=cfg: adaptation.run(cfg, progress=False),
             _adaptation_stage(cfg))
        for cfg, who in readers.items()
    ]  # fmt: skip


def _adaptation_stage(cfg: adaptation.RunConfig) -> int:
    """A run that trains its network from scratch reads nothing (stage 0); AdaBN, TENT and
    the linear classifiers start from the source-only run (stage 1)."""
    return 0 if cfg.method in adaptation.TRAINED else 1


def _lesson07_steps() -> list[Step]:
    """Lesson 07: the LR range test, its 3 training runs × seeds, the probe's features, and
    section 6's regularised fine-tuning (plain, L2-SP, LP-FT) × seeds."""
    kw = {
        "per_class": REAL["PER_CLASS"],
        "image_size": REAL["IMAGE_SIZE"],
        "domain": REAL["DOMAIN"],
    }

    def lr() -> float:
        return real_images.suggest_lr(real_images.cached_lr_range_test(seed=0, **kw))

    def features07() -> None:
        train_set, test_set = real_images.load_data(REAL["DOMAIN"], image_size=REAL["IMAGE_SIZE"])
        net, cache = real_images.build_model("finetune", seed=0), features.FeatureCache()
        for split in (train_set, test_set):
            features.extract(net, split, layer="net.avgpool", cache=cache, progress=False)

    steps = [Step(("07",), "LR range test, fashion", lr)]
    for strategy, augment in (("finetune", True), ("finetune", False), ("scratch", True)):
        for seed in REAL["SEEDS"]:
            what = (
                f"real-image run: {strategy}{'' if augment else ' (no augmentation)'}, seed {seed}"
            )
            config = {"strategy": strategy, "seed": seed, "augment": augment, **kw}
            steps.append(Step(("07",), what, lambda config=config: real_images.run(
                real_images.RunConfig(**config, lr=lr())), 1))  # fmt: skip
    steps.append(Step(("07",), "features: EfficientNet-Lite0 on fashion", features07, 1))
    for method in real_images.REG_METHODS:  # section 6: plain (reads the run above), L2-SP, LP-FT
        for seed in REAL["SEEDS"]:
            steps.append(Step(("07",), f"regularised fine-tuning: {method}, seed {seed}",
                              lambda m=method, seed=seed: real_images.regularised_run(
                                  real_images.RegConfig(m, seed=seed, lr=lr(), **kw)), 2))  # fmt: skip
    return steps


def lesson_steps(lessons: Iterable[str] = LESSONS) -> list[Step]:
    """The steps that warm every cache ``lessons`` read (each cache once, source models
    first: the later steps read them), for the lessons' default parameters."""
    wanted = set(lessons)
    unknown = wanted - set(LESSONS)
    if unknown:
        raise ValueError(f"unknown lessons {sorted(unknown)}; expected some of {LESSONS}")
    steps = _source_steps(wanted)
    if "02" in wanted:
        steps.append(Step(("02",), "features: 4 networks, layer sweeps", _lesson02_features, 1))
    steps += _adaptation_steps(wanted) + _choosing_steps(wanted)
    steps += _lesson07_steps() if "07" in wanted else []
    steps += _lesson08_steps() if "08" in wanted else []
    steps += _lesson09_steps() if "09" in wanted else []
    merged: dict[str, Step] = {}  # a run two lessons read is one step (lessons 05 and 08)
    for step in steps:
        if step.what in merged:
            first = merged[step.what]
            who = tuple(sorted(set(first.lessons) | set(step.lessons)))
            step = dataclasses.replace(first, lessons=who)
        merged[step.what] = step
    return list(merged.values())


def _lesson08_steps() -> list[Step]:
    """Lesson 08's ``self_training.comparison``: lessons 03–05's rows it reads, for its seeds
    (source only first: every other run starts from it), then its own runs."""
    steps = []
    for method in self_training.ADAPTATION_ROWS.values():
        for seed in SELF_TRAINING_SEEDS:
            cfg = adaptation.config(method, seed=seed, **RUN)
            weight = f", w = {cfg.weight:g}" if method in ("coral", "mmd") else ""
            steps.append(Step(("08",), f"adaptation run: {method}{weight}, seed {seed}",
                              lambda cfg=cfg: adaptation.run(cfg, progress=False),
                              _adaptation_stage(cfg)))  # fmt: skip
    for row, (method, overrides) in self_training.ROWS.items():
        for seed in SELF_TRAINING_SEEDS:
            cfg = self_training.config(method, seed=seed, **RUN, **overrides)
            steps.append(
                Step(("08",), f"{row}, seed {seed}", lambda cfg=cfg: self_training.run(cfg), 1)
            )
    return steps


def _lesson09_steps() -> list[Step]:
    """Lesson 09's ``validators.grid``: the source-only networks its runs start from (lessons
    03–05's) and lesson 03's Deep CORAL network of its first seed (the lesson's step before
    the helper reads it), then one step per (method, weight, seed) run of the grid."""
    from tlearn.studies import adaptation as ex
    from tlearn.studies import validators as va

    steps = []
    for seed in VALIDATOR_SEEDS:
        cfg = ex.config("none", seed=seed, **RUN)
        steps.append(Step(("09",), f"adaptation run: none, seed {seed}",
                          lambda cfg=cfg: ex.run(cfg, progress=False)))  # fmt: skip
    coral = ex.config("coral", seed=VALIDATOR_SEEDS[0], **RUN)  # the lesson's step reads it
    steps.append(Step(("09",), f"adaptation run: coral, w = {coral.weight:g}, seed {coral.seed}",
                      lambda: ex.run(coral, progress=False)))  # fmt: skip
    for cfg in va.grid_configs(VALIDATOR_SEEDS, **RUN):
        weight = f", w = {cfg.weight:g}" if cfg.method != "none" else " and AdaBN"
        what = f"validator grid: {cfg.method}{weight}, seed {cfg.seed}"
        steps.append(Step(("09",), what, lambda cfg=cfg: va.run(cfg), 1))
    return steps


def _choosing_steps(lessons: set[str]) -> list[Step]:
    """Lesson 06's ``choosing.comparison``: every candidate × seed, one step per candidate."""
    if "06" not in lessons:
        return []
    return [
        Step(("06",), f"candidate: {name}, {len(CHOOSING_SEEDS)} seeds",
             lambda name=name: choosing.comparison(CHOOSING_SEEDS, [name], progress=False,
                                                   **CHOOSING), 1)
        for name in choosing.CANDIDATES
    ]  # fmt: skip


# --------------------------------------------------------------------------- running them
def disk_usage(folder: str | Path) -> int:
    """Bytes in the files under ``folder`` (0 when it does not exist).

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "a.bin").write_bytes(b"12345")
    >>> disk_usage(folder), disk_usage(folder / "missing")
    (5, 0)
    """
    total = 0
    for p in Path(folder).rglob("*"):
        try:
            total += p.stat().st_size if p.is_file() else 0
        except OSError:  # removed meanwhile (another process's temporary file)
            continue
    return total


def _run(step: Step) -> dict[str, object]:
    """Build one step; its row. ``built``: it wrote cache files (``runtime.atomic_write``
    records every one this process writes), ``cached``: every read was a hit."""
    t0 = time.perf_counter()
    with runtime.recording_writes() as written:
        step.build()
    return {
        "lessons": " ".join(step.lessons),
        "step": step.what,
        "status": "built" if written else "cached",
        "seconds": round(time.perf_counter() - t0, 1),
        "bytes": sum(p.stat().st_size for p in set(written) if p.exists()),
    }


#: What one worker may hold at its peak: lesson 09's grid and lessons 03–05's runs peaked at
#: 1.41 GB per worker with PyPI's CUDA build of torch (5 December), plus headroom.
WORKER_MEMORY = 1.6 * 2**30


def memory_budget(root: str | Path = "/sys/fs/cgroup", meminfo: str | Path = "/proc/meminfo"
                  ) -> int | None:  # fmt: skip
    """Bytes this process may fill: its control group's memory limit (cgroup v2
    ``memory.max``, v1 ``memory/memory.limit_in_bytes``) when one is set, else the kernel's
    ``MemAvailable``; None when neither can be read (not Linux)."""
    root = Path(root)
    for f in (root / "memory.max", root / "memory" / "memory.limit_in_bytes"):
        try:
            text = f.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:  # "max" and v1's 2^63 − page mean no limit
            return int(text)
    try:
        for line in Path(meminfo).read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def auto_jobs() -> int:
    """``tlearn warm --jobs auto``: one worker per CPU this process may use
    (``runtime.cpu_budget``), as long as each has :data:`WORKER_MEMORY`; at least 1."""
    cpus, memory = runtime.cpu_budget(), memory_budget()
    return max(1, cpus if memory is None else min(cpus, int(memory // WORKER_MEMORY)))


def _worker_start(threads: int) -> None:
    runtime.limit_threads(threads)


def _run_lesson_step(lessons: tuple[str, ...], index: int) -> dict[str, object]:
    """In a worker process: step ``index`` of ``lesson_steps(lessons)`` (steps hold lambdas,
    which cannot be sent to another process; their index can)."""
    return _run(lesson_steps(lessons)[index])


def warm(
    lessons: Iterable[str] = LESSONS,
    *,
    steps: Sequence[Step] | None = None,
    jobs: int = 1,
    progress: bool = True,
) -> list[dict[str, object]]:
    """Run ``steps`` (default: :func:`lesson_steps` of ``lessons``) with one progress bar.

    Returns one row per step, in order: ``lessons``, ``step``, ``status`` (``"built"`` when
    the step wrote files into the cache, ``"cached"`` when it wrote nothing: every read was a
    hit, in this layer or another one), ``seconds`` and ``bytes`` (of the files it wrote).

    ``jobs > 1`` builds the lessons' steps in that many worker processes, stage by stage
    (:class:`Step`), each with ``cpu_budget() // jobs`` torch threads (at least one), for
    machines with more cores than one lesson's small networks keep busy; :func:`auto_jobs`
    picks one per CPU, as many as the memory holds. Each worker holds a lesson's memory (up to
    about 1.4 GB). On this project's 2-core machine it gains little: every cache from empty
    took 17 min 50 s with ``jobs=2`` (two 1-thread workers) against 19 min 33 s with one
    2-thread process (tlearn 0.1); with DigitNet in channels-last (0.2), ``jobs=2`` took 12 min
    40 s. The cache entries are those ``jobs=1`` writes with the workers' thread count.
    Raises PermissionError (from ``runtime.cache_dir``) when no cache layer is writable.
    """
    jobs = checks.positive_int("jobs", jobs)
    if steps is not None and jobs > 1:
        raise ValueError("jobs > 1 runs the lessons' own steps only; pass steps= with jobs=1")
    lessons = tuple(lessons)
    todo = lesson_steps(lessons) if steps is None else list(steps)
    runtime.cache_dir()  # a writable layer, or PermissionError before any work
    with runtime.progress_bar(total=len(todo), desc="warming the lessons' caches", unit="step",
                              enabled=progress) as bar:  # fmt: skip
        if jobs == 1:
            rows = []
            for step in todo:
                bar.set_postfix_str(step.what, refresh=False)
                rows.append(_run(step))
                bar.update()
            return rows
        return _warm_in_workers(lessons, todo, jobs, bar)


def _warm_in_workers(lessons: tuple[str, ...], todo: list[Step], jobs: int, bar) -> list[dict]:
    """:func:`warm` with ``jobs`` processes: every step of a stage at once, then the next."""
    threads = max(1, runtime.cpu_budget() // jobs)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle threads sleep, not spin
    rows: dict[int, dict[str, object]] = {}
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch state
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_worker_start,
                             initargs=(threads,)) as pool:  # fmt: skip
        for stage in sorted({step.stage for step in todo}):
            running = {pool.submit(_run_lesson_step, lessons, i): i
                       for i, step in enumerate(todo) if step.stage == stage}  # fmt: skip
            for done in as_completed(running):
                rows[running[done]] = done.result()  # a step's error stops the warm here
                bar.set_postfix_str(todo[running[done]].what, refresh=False)
                bar.update()
    return [rows[i] for i in range(len(todo))]


def _size(n: int) -> str:
    """``n`` bytes, readable: ``_size(2_500_000)`` → ``'2.4 MiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def format_summary(rows: Sequence[dict[str, object]], folder: str | Path | None = None) -> str:
    """A text table of :func:`warm`'s rows, and the disk the cache folder takes.

    >>> print(format_summary([{"lessons": "00", "step": "source model, seed 0",
    ...                        "status": "built", "seconds": 21.0, "bytes": 1_700_000}]))
    lessons  step                  status  seconds  written
    -------  --------------------  ------  -------  -------
    00       source model, seed 0  built      21.0  1.6 MiB
    1 built, 0 already cached
    """
    cols = ("lessons", "step", "status", "seconds", "written")
    cells = [
        [str(r["lessons"]), str(r["step"]), str(r["status"]), f"{r['seconds']:.1f}",
         _size(int(r["bytes"])) if r["bytes"] else "-"]
        for r in rows
    ]  # fmt: skip
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    right = {"seconds", "written"}

    def line(values):
        return "  ".join(
            v.rjust(w) if c in right else v.ljust(w)
            for c, v, w in zip(cols, values, widths, strict=True)
        ).rstrip()

    built = sum(r["status"] == "built" for r in rows)
    out = [line(cols), line(["-" * w for w in widths]), *map(line, cells)]
    out.append(f"{built} built, {len(rows) - built} already cached")
    if folder is not None:
        out.append(f"the cache folder {folder} takes {_size(disk_usage(folder))}")
    return "\n".join(out)
