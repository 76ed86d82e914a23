"""The same ``fit_adapt`` call under two checkouts of tlearn: a regression check, seed by seed.

A refactor that "reads the same" can still change results; this runs one method on the same
tensors with each checkout's code (``PYTHONPATH`` → that checkout) and prints both columns. It
was written when DANN's lesson gain fell from +28.4 to +1.0 points after the training loops were
unified (issue 10): is it a regression, or DANN's seed sensitivity?

The data are built once, with the *new* checkout, and saved as tensors, so both versions train
on identical images: synth (6000 train images, seed 0) as source, and as targets the two
development pairs (``tlearn.studies.domains``: where defaults are chosen) and uci (reported for
the diagnosis only: nothing is chosen on it). Each run: ``DigitNet`` built after
``torch.manual_seed(seed)``, ``fit_adapt(net, source, target_train, method, seed=seed)`` with
the library defaults, then accuracy on the target test split; one thread per run, two runs at a
time::

    git worktree add /tmp/tlearn-old acc4055
    python benchmarks/compare_versions.py --old /tmp/tlearn-old --method dann --seeds 0 1 2 3 4

Results of that call: ``benchmarks/results/compare_versions_dann.txt``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PAIRS = ("synth_framed", "synth_degraded", "uci")

ONE_RUN = """
import json, sys, torch
torch.set_num_threads(1)
from tlearn import data, models, train
from tlearn.adapt import fit_adapt
path, pair, seed, method = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
d = torch.load(path)
src = data.DigitDataset(*d["src"])
xt, yt, xte, yte = d[pair]
tgt, tgt_test = data.DigitDataset(xt, yt), data.DigitDataset(xte, yte)
torch.manual_seed(seed)
net = models.DigitNet()
fit_adapt(net, src, tgt, method, seed=seed, progress=False, device="cpu")
print(json.dumps(100 * train.evaluate(net, tgt_test, device="cpu")["accuracy"]))
"""


def make_data(path: Path) -> None:
    """Source and targets as tensors, built with this checkout's loaders."""
    import torch

    import tlearn.studies.domains  # noqa: F401  (registers the development targets)
    from tlearn import data

    src = data.load_domain("synth", "train", size=6000, seed=0)
    saved = {"src": (src.images, src.labels)}
    for pair in PAIRS:
        tr, te = data.load_domain(pair, "train"), data.load_domain(pair, "test")
        saved[pair] = (tr.images, tr.labels, te.images, te.labels)
    torch.save(saved, path)


def run(checkout: Path, data_path: Path, pair: str, seed: int, method: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(checkout), "TLEARN_PROGRESS": "0"}
    cmd = [sys.executable, "-c", ONE_RUN, str(data_path), pair, str(seed), method]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, required=True, help="the older checkout")
    parser.add_argument("--new", type=Path, default=ROOT, help="the newer checkout (this one)")
    parser.add_argument("--method", default="dann")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--pairs", nargs="+", default=list(PAIRS), choices=PAIRS)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_path = Path(tmp) / "data.pt"
        make_data(data_path)
        jobs = [(v, p, s) for v in ("old", "new") for p in args.pairs for s in args.seeds]
        checkouts = {"old": args.old, "new": args.new}
        with ThreadPoolExecutor(args.workers) as pool:
            accs = list(
                pool.map(lambda j: run(checkouts[j[0]], data_path, j[1], j[2], args.method), jobs)
            )
    results = dict(zip(jobs, accs, strict=True))
    print(f"{args.method}: target test accuracy %, seeds {args.seeds}")
    for pair in args.pairs:
        means = {}
        for v in ("old", "new"):
            a = means[v] = np.array([results[(v, pair, s)] for s in args.seeds])
            print(f"{pair:15s} {v}: " + " ".join(f"{x:5.1f}" for x in a)
                  + f"   mean {a.mean():5.1f}" + (f" ± {a.std(ddof=1):4.1f}" if len(a) > 1 else ""))  # fmt: skip
        if len(args.seeds) > 1:  # Welch's t of the difference in means
            d = means["new"].mean() - means["old"].mean()
            se = np.sqrt(sum(a.var(ddof=1) / len(a) for a in means.values()))
            print(f"{'':15s} new − old: {d:+.1f} points (Welch t = {d / se:+.2f})")
    print(json.dumps({f"{v}/{p}/{s}": a for (v, p, s), a in results.items()}))


if __name__ == "__main__":
    main()
