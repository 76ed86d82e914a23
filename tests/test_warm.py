"""The lessons' caches over layers (a teacher's read-only cache first, the student's own after
it) and ``tlearn warm``, which fills them ahead of time."""

from __future__ import annotations

import ast
import inspect
import json
import os
import stat
import textwrap
from pathlib import Path

import pytest
import torch

from tlearn import adapt, cli, data, features, models, train
from tlearn.studies import adaptation as ex
from tlearn.studies import self_training as st
from tlearn.studies import validators as va
from tlearn.studies import warm
from tlearn.studies.source import source_model, source_model_path

LESSONS = Path(__file__).resolve().parents[1] / "lessons"


def _toy_domain(shift: float, sizes: dict[str, int]):
    """Random images, classes 0-9 in turn, brightened by ``shift``: a pair trains in a blink."""

    def load(split, *, size=None, seed=0, **_):
        g = torch.Generator().manual_seed(seed + (split == "test"))
        n = size or sizes[split]
        images = torch.rand(n, 1, 32, 32, generator=g) * 0.5 + shift
        return images, torch.arange(n) % 10, tuple(str(d) for d in range(10))

    return load


data.register_domain("warm_toy_source", _toy_domain(0.0, {"train": 48, "test": 30}))
data.register_domain("warm_toy_target", _toy_domain(0.3, {"train": 40, "test": 30}))
TOY = {"source": "warm_toy_source", "target": "warm_toy_target", "source_size": 48,
       "epochs": 1, "batch_size": 16}  # fmt: skip
TINY_SOURCE = {"seed": 0, "size": 64, "epochs": 1, "progress": False}


def _snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under ``folder`` with its (mode, size, mtime in ns): what "unchanged" means."""
    return {
        str(p.relative_to(folder)): (p.stat().st_mode, p.stat().st_size, p.stat().st_mtime_ns)
        for p in [folder, *folder.rglob("*")]
    }


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _set_writable(folder: Path, writable: bool) -> None:
    """``chmod -R a-w`` (or back to u+w): tlearn treats a folder without write bits as
    read-only, even for root, so this works whoever runs the tests."""
    for p in [folder, *folder.rglob("*")]:
        mode = stat.S_IMODE(p.stat().st_mode)
        p.chmod(mode | stat.S_IWUSR if writable else mode & ~0o222)


@pytest.fixture
def teacher(tmp_path, monkeypatch):
    """``fill()`` runs code with ``TLEARN_CACHE=teacher``, then the teacher's folder becomes
    read-only and ``TLEARN_CACHE=teacher:student``. Yields ``(fill, teacher, student)``."""
    shared, own = tmp_path / "teacher", tmp_path / "student"

    def fill(build) -> None:
        monkeypatch.setenv("TLEARN_CACHE", str(shared))
        build()
        _set_writable(shared, False)
        monkeypatch.setenv("TLEARN_CACHE", os.pathsep.join([str(shared), str(own)]))

    yield fill, shared, own
    if shared.exists():
        _set_writable(shared, True)  # let pytest clean up


def _no_training(monkeypatch) -> None:
    """Make every training call fail: what follows must only read caches."""

    def fail(*args, **kwargs):
        raise AssertionError("trained although the cache holds the result")

    monkeypatch.setattr(train, "fit", fail)
    monkeypatch.setattr(adapt, "fit_adapt", fail)


def _equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# --- each cache user reads a read-only layer and writes the next one --------------------------


def test_source_model_reads_a_read_only_layer_and_writes_the_next(teacher, monkeypatch):
    fill, shared, own = teacher
    built = {}
    fill(lambda: built.setdefault("net", source_model(**TINY_SOURCE)))
    before = _snapshot(shared)
    assert source_model_path(seed=0, size=64, epochs=1).is_relative_to(shared)
    with monkeypatch.context() as m:
        _no_training(m)
        assert _equal(source_model(**TINY_SOURCE), built["net"])  # read, not trained
    source_model(**{**TINY_SOURCE, "seed": 1})  # not in the shared layer: trained, saved here
    assert _files(own) == [str(source_model_path(seed=1, size=64, epochs=1).relative_to(own))]
    assert _snapshot(shared) == before


def test_corrupt_source_model_in_a_read_only_layer_is_skipped_not_deleted(teacher, monkeypatch):
    fill, shared, own = teacher

    def build_then_corrupt():
        source_model(**TINY_SOURCE)
        source_model_path(seed=0, size=64, epochs=1).write_bytes(b"cut sho")

    fill(build_then_corrupt)
    before = _snapshot(shared)
    broken = source_model_path(seed=0, size=64, epochs=1)
    with pytest.warns(RuntimeWarning, match=f"unreadable cache entry {broken}"):
        source_model(**TINY_SOURCE)  # trained again, into the student's layer
    assert broken.read_bytes() == b"cut sho" and _snapshot(shared) == before
    assert _files(own) == [str(broken.relative_to(shared))]
    with monkeypatch.context() as m, pytest.warns(RuntimeWarning, match="unreadable"):
        _no_training(m)
        source_model(**TINY_SOURCE)  # the teacher's copy still warns; the student's is read


def test_adaptation_runs_read_a_read_only_layer_and_write_the_next(teacher, monkeypatch):
    fill, shared, own = teacher
    cfg = ex.config("coral", seed=0, **TOY)
    built = {}

    def build():  # Deep CORAL, and the source-only run AdaBN starts from
        built["res"] = ex.run(cfg, progress=False)
        built["net"] = ex.trained_model(cfg, progress=False)
        ex.run(ex.config("none", seed=0, **TOY), progress=False)

    fill(build)
    before = _snapshot(shared)
    with monkeypatch.context() as m:
        _no_training(m)
        assert ex.run(cfg, progress=False) == built["res"]
        assert _equal(ex.trained_model(cfg, progress=False), built["net"])
        ex.run(ex.config("adabn", seed=0, **TOY), progress=False)  # starts from a read net
    ex.run(ex.config("coral", seed=1, **TOY), progress=False)  # new: written by the student
    assert ex.results_dir() == own / "results"
    assert len(_files(own / "results")) == 3  # adabn's .json, the new run's .json and .pt
    assert _snapshot(shared) == before


def test_corrupt_adaptation_weights_in_a_read_only_layer_are_skipped_not_deleted(teacher):
    fill, shared, own = teacher
    cfg = ex.config("none", seed=0, **TOY)

    def build_then_corrupt():
        ex.run(cfg, progress=False)
        (ex.results_dir() / f"{cfg.key()}.pt").write_bytes(b"not weights")

    fill(build_then_corrupt)
    before = _snapshot(shared)
    with pytest.warns(RuntimeWarning, match="unreadable cache entry"):
        net = ex.trained_model(cfg, progress=False)  # retrained into the student's layer
    assert isinstance(net, models.DigitNet) and not net.training
    assert _snapshot(shared) == before  # the broken file is still there, untouched
    assert _files(own) == [f"results/{cfg.key()}.json", f"results/{cfg.key()}.pt"]


def test_feature_cache_reads_a_read_only_layer_and_writes_the_next(teacher):
    fill, shared, own = teacher
    torch.manual_seed(0)
    net = models.DigitNet().eval()
    x = torch.rand(8, 1, 32, 32)
    fill(lambda: features.extract(net, x, cache=features.FeatureCache(), progress=False))
    before = _snapshot(shared)
    cache = features.FeatureCache()
    assert cache.root == own / "features" and cache.folders[0] == shared / "features"
    features.extract(net, x, cache=cache, progress=False)
    assert (cache.hits, cache.misses, len(cache)) == (1, 0, 1)
    features.extract(net, x, layer="features.conv1", cache=cache, progress=False)  # new: here
    assert (cache.misses, len(cache), len(_files(own))) == (1, 2, 1)
    assert cache.clear() == 1 and len(cache) == 1  # only the student's entry is deleted
    (key,) = [Path(p).stem for p in _files(shared)]
    assert cache.load(key) is not None
    assert _snapshot(shared) == before


def test_corrupt_features_in_a_read_only_layer_are_skipped_not_deleted(teacher):
    fill, shared, own = teacher
    torch.manual_seed(0)
    net = models.DigitNet().eval()
    x = torch.rand(8, 1, 32, 32)

    def build_then_corrupt():
        Z, _ = features.extract(net, x, cache=features.FeatureCache(), progress=False)
        (entry,) = (shared / "features").glob("*.pt")
        entry.write_bytes(entry.read_bytes()[:100])
        return Z

    fill(build_then_corrupt)
    before = _snapshot(shared)
    cache = features.FeatureCache()
    with pytest.warns(RuntimeWarning, match="unreadable cache entry"):
        Z, _ = features.extract(net, x, cache=cache, progress=False)
    assert (cache.hits, cache.misses) == (0, 1)  # recomputed…
    assert torch.equal(Z, features.extract(net, x, progress=False)[0])
    assert [Path(p).name for p in _files(own)] == [Path(p).name for p in _files(shared)]  # …here
    assert _snapshot(shared) == before


def test_explicit_root_is_one_folder(tmp_path):
    cache = features.FeatureCache(tmp_path / "mine")
    assert cache.folders == [tmp_path / "mine"] and cache.root == tmp_path / "mine"


# --- tlearn warm ------------------------------------------------------------------------------


def _tiny_steps() -> list[warm.Step]:
    return [
        warm.Step(("00",), "tiny source model", lambda: source_model(**TINY_SOURCE)),
        warm.Step(("03",), "tiny coral run", lambda: ex.run(ex.config("coral", **TOY), progress=False)),
        warm.Step(("04",), "tiny adabn run", lambda: ex.run(ex.config("adabn", **TOY), progress=False)),
    ]  # fmt: skip


def test_warm_builds_then_finds_everything_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("TLEARN_CACHE", str(tmp_path))
    first = warm.warm(steps=_tiny_steps(), progress=False)
    assert [r["status"] for r in first] == ["built"] * 3
    assert all(r["bytes"] > 0 for r in first)
    assert warm.disk_usage(tmp_path) == sum(r["bytes"] for r in first)
    with monkeypatch.context() as m:
        _no_training(m)
        again = warm.warm(steps=_tiny_steps(), progress=False)
    assert [(r["status"], r["bytes"]) for r in again] == [("cached", 0)] * 3
    summary = warm.format_summary(again, tmp_path)
    assert "0 built, 3 already cached" in summary and "tiny coral run" in summary
    assert str(tmp_path) in summary.splitlines()[-1]


def test_warm_over_a_warmed_read_only_layer_computes_and_writes_nothing(teacher, monkeypatch):
    fill, shared, own = teacher
    fill(lambda: warm.warm(steps=_tiny_steps(), progress=False))
    before = _snapshot(shared)
    with monkeypatch.context() as m:
        _no_training(m)
        rows = warm.warm(steps=_tiny_steps(), progress=False)
    assert {r["status"] for r in rows} == {"cached"}
    assert _files(own) == [] and _snapshot(shared) == before


def test_steps_run_after_the_stages_they_read():
    """``warm(jobs=2)`` runs a stage's steps at once: each must read only lower stages.
    Stage 0 reads nothing: source models, the LR range test and the runs that train a network
    from scratch; stage 1 starts from them (AdaBN, TENT, the linear classifiers, SHOT,
    self-training and the validator grid start from a source-only run; features, candidates
    and real-image runs read source models or the LR); stage 2 reads stage 1."""
    stage = {s.what: s.stage for s in warm.lesson_steps()}
    from_scratch = [w for w in stage if w.startswith(("source model", "adaptation run: none",
                    "adaptation run: coral,", "adaptation run: mmd", "adaptation run: dann",
                    "adaptation run: cdan", "adaptation run: target"))]  # fmt: skip
    from_source_only = [w for w in stage if w.startswith(("adaptation run: adabn",
                        "adaptation run: tent", "adaptation run: standardised",
                        "adaptation run: coral_closed_form", "validator grid", "SHOT",
                        "self-training"))]  # fmt: skip
    assert len(from_scratch) == 3 + 3 * 7 + 3 and {stage[w] for w in from_scratch} == {0}
    assert stage["LR range test, fashion"] == 0
    assert len(from_source_only) > 30 and {stage[w] for w in from_source_only} == {1}
    assert {s.stage for s in warm.lesson_steps() if s.what.startswith("real-image run")} == {1}
    assert {s.stage for s in warm.lesson_steps() if s.what.startswith("regularised")} == {2}
    assert set(stage.values()) == {0, 1, 2}
    # every step whose name is not listed above is known, and reads a lower stage than its own
    listed = set(from_scratch) | set(from_source_only) | {"LR range test, fashion"}
    others = {w for w in stage if w not in listed and not w.startswith(("real-image run",
              "regularised"))}  # fmt: skip
    assert {stage[w] for w in others} == {1}, others


def test_warm_in_workers_refuses_what_it_cannot_send(tmp_path, monkeypatch):
    monkeypatch.setenv("TLEARN_CACHE", str(tmp_path))
    with pytest.raises(ValueError, match="jobs > 1 runs the lessons' own steps"):
        warm.warm(steps=_tiny_steps(), jobs=2, progress=False)
    with pytest.raises(ValueError, match="jobs"):
        warm.warm(["00"], jobs=0, progress=False)


@pytest.mark.slow
def test_warm_in_two_workers_builds_what_one_process_builds(tmp_path, monkeypatch):
    """Lesson 00's three source models in two 1-thread worker processes: every row built, in
    step order; a second warm finds them cached; each equals the model this process trains
    at 1 thread."""
    monkeypatch.setenv("TLEARN_CACHE", str(tmp_path / "workers"))
    rows = warm.warm(["00"], jobs=2, progress=False)
    assert [r["step"] for r in rows] == [s.what for s in warm.lesson_steps(["00"])]
    assert {r["status"] for r in rows} == {"built"} and all(r["bytes"] > 0 for r in rows)
    assert {r["status"] for r in warm.warm(["00"], progress=False)} == {"cached"}
    from_workers = source_model(seed=2, size=warm.SOURCE_SIZE, progress=False)
    monkeypatch.setenv("TLEARN_CACHE", str(tmp_path / "here"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        here = source_model(seed=2, size=warm.SOURCE_SIZE, progress=False)
    finally:
        torch.set_num_threads(threads)
    assert _equal(from_workers, here)


def test_lesson_steps_cover_each_cache_once():
    steps = warm.lesson_steps()
    names = [s.what for s in steps]
    assert len(names) == len(set(names))
    assert [s.what for s in warm.lesson_steps(["01"])] == ["source model, seed 0"]
    runs = [s for s in warm.lesson_steps(["04"]) if s.what.startswith("adaptation run")]
    assert len(runs) == len(ex.MMD_ROWS) * len(warm.COMPARISON_SEEDS)
    runs = [s for s in warm.lesson_steps(["05"]) if s.what.startswith("adaptation run")]
    assert len(runs) == len(ex.ADVERSARIAL_ROWS) * len(warm.ADVERSARIAL_SEEDS)
    shared = next(s for s in steps if s.what == "adaptation run: coral, w = 30, seed 0")
    # lesson 03's sweep, lessons 04, 05 and 08's tables, lesson 09's step before the helper
    assert shared.lessons == ("03", "04", "05", "08", "09")
    own = [s for s in warm.lesson_steps(["08"]) if not s.what.startswith("adaptation run")]
    assert len(own) == len(st.ROWS) * len(warm.SELF_TRAINING_SEEDS)
    own = [s for s in warm.lesson_steps(["09"]) if s.what.startswith("validator grid")]
    assert len(own) == len(va.grid_configs(warm.VALIDATOR_SEEDS))
    with pytest.raises(ValueError, match="unknown lessons"):
        warm.lesson_steps(["10"])
    with pytest.raises(SystemExit):
        cli.main(["warm", "--lessons", "10"])


def test_memory_budget_reads_the_cgroup_limit_else_memavailable(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemAvailable:    3000000 kB\n")
    v2, v1, none = tmp_path / "v2", tmp_path / "v1", tmp_path / "none"
    v2.mkdir(), (v1 / "memory").mkdir(parents=True), none.mkdir()
    (v2 / "memory.max").write_text("2147483648\n")
    (v1 / "memory" / "memory.limit_in_bytes").write_text("3221225472\n")
    assert warm.memory_budget(v2, meminfo) == 2 * 2**30
    assert warm.memory_budget(v1, meminfo) == 3 * 2**30
    assert warm.memory_budget(none, meminfo) == 3_000_000 * 1024
    (v2 / "memory.max").write_text("max\n")  # no limit: what the kernel has available
    (v1 / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    assert warm.memory_budget(v2, meminfo) == warm.memory_budget(v1, meminfo) == 3_072_000_000
    assert warm.memory_budget(none, tmp_path / "missing") is None


@pytest.mark.parametrize(
    ("cpus", "memory", "jobs"),
    [(2, 24 * 2**30, 2), (16, 4 * 2**30, 2), (2, 2 * 2**30, 1), (1, 24 * 2**30, 1),
     (4, 1 * 2**30, 1), (3, None, 3)],
)  # fmt: skip
def test_auto_jobs_is_one_worker_per_cpu_as_memory_allows(monkeypatch, cpus, memory, jobs):
    monkeypatch.setattr(warm.runtime, "cpu_budget", lambda: cpus)
    monkeypatch.setattr(warm, "memory_budget", lambda: memory)
    assert warm.auto_jobs() == jobs


def test_cli_warm_takes_jobs_auto_or_a_positive_int(monkeypatch, capsys):
    called = []
    monkeypatch.setattr(cli, "warm", lambda lessons, *, jobs, progress: called.append(jobs))
    monkeypatch.setattr(warm, "auto_jobs", lambda: 7)
    assert cli.main(["warm", "--jobs", "auto", "--no-progress"]) == 0
    assert cli.main(["warm", "--jobs", "3"]) == 0
    assert called == [7, 3]
    for bad in ("0", "-1", "two"):
        with pytest.raises(SystemExit):
            cli.main(["warm", "--jobs", bad])
    assert "--jobs must be 'auto' or an int >= 1, got 'two'" in capsys.readouterr().err


def _parameters(lesson: str) -> dict:
    """The values a lesson's ``parameters``-tagged cell sets (plain assignments)."""
    (path,) = LESSONS.glob(f"{lesson}_*.ipynb")
    cells = json.loads(path.read_text())["cells"]
    (cell,) = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    values: dict = {}
    exec("".join(cell["source"]), {}, values)  # noqa: S102 - our own notebook's assignments
    return values


def _cached_calls(lesson: str) -> list[str]:
    """The lesson's lines that read a cache: source models, adaptation runs, feature caches."""
    (path,) = LESSONS.glob(f"{lesson}_*.ipynb")
    cells = json.loads(path.read_text())["cells"]
    reads = ("source_model(", "ex.config(", "ex.run(", "ex.comparison(", "ex.weight_sweep(",
             "ex.trained_model(", "FeatureCache(", "choosing.comparison(", "st.comparison(", "va.grid(")  # fmt: skip
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    return [line.strip() for line in code.splitlines() if any(r in line for r in reads)]


@pytest.mark.skipif(not LESSONS.is_dir(), reason="needs the repository's lessons/ folder")
def test_warm_makes_the_calls_the_lessons_make():
    """If a lesson changes a parameter or reads a new cache, warm must learn it: this fails."""
    p = {lesson: _parameters(lesson) for lesson in warm.LESSONS}
    assert tuple(p["00"]["SEEDS"]) == warm.SOURCE_SEEDS
    assert p["00"]["SOURCE_SIZE"] == warm.SOURCE_SIZE
    assert tuple(p["02"]["SEEDS"]) == warm.FEATURE_SEEDS
    assert (p["02"]["SWEEP_PER_CLASS"], p["02"]["IMAGE_SIZE"]) == (
        warm.SWEEP_PER_CLASS,
        warm.IMAGE_SIZE,
    )
    assert (tuple(p["03"]["SEEDS"]), tuple(p["03"]["WEIGHTS"])) == (warm.CORAL_SEEDS, warm.WEIGHTS)
    assert tuple(p["04"]["SEEDS"]) == warm.COMPARISON_SEEDS
    assert tuple(p["05"]["SEEDS"]) == warm.ADVERSARIAL_SEEDS
    assert p["03"]["RUN"] == p["04"]["RUN"] == p["05"]["RUN"] == warm.RUN
    assert p["00"]["TARGET"] == p["02"]["TARGET"] == warm.RUN["target"]
    assert tuple(p["08"]["SEEDS"]) == warm.SELF_TRAINING_SEEDS and p["08"]["RUN"] == warm.RUN
    assert tuple(p["09"]["SEEDS"]) == warm.VALIDATOR_SEEDS and p["09"]["RUN"] == warm.RUN
    assert {k: p["07"][k] for k in warm.REAL} == {**warm.REAL, "SEEDS": list(warm.REAL["SEEDS"])}
    assert _cached_calls("00") == [
        "net = source_model(seed=seed, size=SOURCE_SIZE, progress=False)",
    ]
    assert _cached_calls("01") == ["source = source_model(seed=0, progress=False)"]
    assert _cached_calls("02") == [
        "source = source_model(progress=False)  # DigitNet trained on synthetic digits (lesson 00)",
        "cache = features.FeatureCache(verbose=True)",
        "fresh = features.FeatureCache(tmp)",  # a temporary cache: the lesson times a miss
    ]
    assert _cached_calls("03") == [
        'base = ex.config("none", seed=SEED, **RUN)  # source only: the baseline every method must beat',
        "source_only = ex.trained_model(base)  # trained once, then read from the cache",
        'src_runs = [ex.run(ex.config("none", seed=s, **RUN)) for s in SEEDS]',
        'linear = [ex.run(ex.config("coral_closed_form", seed=s, **RUN)) for s in SEEDS]',
        'deep_runs = [ex.run(ex.config("coral", seed=s, **RUN)) for s in SEEDS]',
        'deep_cfg = ex.config("coral", seed=SEED, **RUN)',
        "deep_net = ex.trained_model(deep_cfg)",
        "sweep = ex.weight_sweep(WEIGHTS, seed=SEED, progress=False, **RUN)",
    ]  # fmt: skip
    assert _cached_calls("04") == [
        "base = ex.config(\"none\", seed=SEEDS[0], **RUN)",
        "source_only = ex.trained_model(base)  # the source-only network of lesson 03 (cached)",
        "table = ex.comparison(SEEDS, rows=ex.MMD_ROWS, **RUN)  # trained once, then cached",
        "target_cfg = ex.config(\"target\", seed=SEEDS[0], **RUN)",  # in MMD_ROWS' table too
        "target_net = ex.trained_model(target_cfg)",
    ]  # fmt: skip
    assert _cached_calls("05") == [
        "base = ex.config(\"none\", seed=SEEDS[0], **RUN)",
        "source_only = ex.trained_model(base)  # the source-only network of lessons 03–04 (cached)",
        "table = ex.comparison(SEEDS, rows=ex.ADVERSARIAL_ROWS, **RUN)  # trained once, then cached",
        "tent_cfg = ex.config(\"tent\", seed=SEEDS[0], **RUN)",  # its settings only: run in the lesson
    ]  # fmt: skip
    assert _cached_calls("08") == [
        "base = ex.config(\"none\", seed=SEEDS[0], **RUN)",
        "source_only = ex.trained_model(base)  # the source-only network of lessons 03–05 (cached)",
        "table = st.comparison(SEEDS, **RUN)  # every row of the lesson, every seed (trained once, cached)",
    ]  # fmt: skip
    assert _cached_calls("09") == [
        "base = ex.config(\"none\", seed=SEEDS[0], **RUN)",
        "source_only = ex.trained_model(base)  # the source-only network of lessons 03–05 (cached)",
        "coral_net = ex.trained_model(ex.config(\"coral\", seed=SEEDS[0], **RUN))  # lesson 03's Deep CORAL",
        "rows = va.grid(SEEDS, **RUN)  # every candidate of every seed (trained once, then cached)",
    ]  # fmt: skip
    p06 = p["06"]
    assert tuple(p06["SEEDS"]) == warm.CHOOSING_SEEDS
    assert warm.CHOOSING == {
        "per_class": p06["PER_CLASS"], "image_size": p06["IMAGE_SIZE"], "target": p06["TARGET"],
    }  # fmt: skip
    assert _cached_calls("06") == [
        "source = source_model(progress=False)",
        "rows = choosing.comparison(SEEDS, per_class=PER_CLASS, image_size=IMAGE_SIZE, target=TARGET,",
    ]


def _dict_literals(tree: ast.AST, names: tuple[str, ...]) -> dict[str, str]:
    """``name = {...}`` assignments in ``tree``: name → the dict's source, normalised by ast."""
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id in names:
                    found[target.id] = ast.dump(node.value)
    return found


@pytest.mark.skipif(not LESSONS.is_dir(), reason="needs the repository's lessons/ folder")
def test_warm_builds_lesson_02s_networks_as_the_lesson_does():
    """Feature-cache keys hash the networks' weights: warm must build the same networks, with
    the same seeding, in the same order, and sweep the same layers, or the lesson misses."""
    (path,) = LESSONS.glob("02_*.ipynb")
    cells = json.loads(path.read_text())["cells"]
    lesson = ast.parse("\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code"))
    source = inspect.getsource(warm._lesson02_features)
    ours = ast.parse(textwrap.dedent(source))
    wanted = ("extractors", "sweep_layers")
    assert _dict_literals(ours, wanted) == _dict_literals(lesson, wanted)
    assert set(_dict_literals(lesson, wanted)) == set(wanted)
