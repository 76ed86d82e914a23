"""Reproduce published unsupervised domain-adaptation results, with the protocol stated.

    python -m tlearn.reproduce mnist-usps --method dann --seeds 0 1 2
    python -m tlearn.reproduce office31 --method cdan --root ~/data/office31

Each protocol follows the paper whose number it prints beside ours:

* ``mnist-usps`` / ``usps-mnist`` — ADDA (Tzeng et al., CVPR 2017, Table 1): 2000 MNIST and
  1800 USPS training images drawn at random (per seed), a LeNet (conv 20@5×5 → pool → conv
  50@5×5 → pool → fc 500 → fc 10) on 32×32 grey digits, evaluated on the full target test set.
* ``svhn-mnist`` — DANN (Ganin et al., JMLR 2016, Table 2): all of SVHN's training set
  (labelled) and MNIST's (unlabelled), the same LeNet on grey 32×32 digits (the paper's SVHN
  network is larger: our numbers measure the method on a smaller network), MNIST test set.
* ``office31`` — the six shifts of Office-31 (Saenko et al. 2010) with every image of both
  domains, ResNet-50 on ImageNet weights with a new 31-way head, images resized to 256 and
  cropped to 224 (random crops and flips while training), the target evaluated on all of its
  images. Published: the ResNet-50 averages of the Transfer-Learning-Library (thuml) README.

**No choice reads target labels.** The schedule (epochs, learning rate, batch size, method
weights: ``adapt.defaults(method)``) is fixed in advance; the target's labels are read once, to
score the final network. Published tables often pick the best epoch on the labelled target
(their scripts do), so our numbers may be lower, and honest. Mean ± std over the seeds, each
seed's accuracy beside it, and a warning line for each seed whose run **collapsed** (one class
takes ≥ 90 % of the target test predictions) or diverged (a non-finite loss): a mean over a
failed seed and working ones describes neither (:mod:`tlearn.adapt.diagnostics`).

``--fake`` swaps the data for tiny offline stand-ins (synthetic digits; generated photo
folders and a small CNN for office31) to check the command end to end in seconds.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tlearn import adapt, cli, data, models, runtime, train
from tlearn.adapt.diagnostics import CollapseWarning, diagnose

__all__ = ["PROTOCOLS", "METHODS", "Protocol", "Outcome", "LeNet", "run", "report", "main"]

#: Our method names → ``fit_adapt``'s (``source``: the source-only baseline).
METHODS = {"source": "none", "coral": "coral", "mmd": "mmd", "dann": "dann", "cdan": "cdan"}
OFFICE31_SHIFTS = ("A→W", "D→W", "W→D", "A→D", "D→A", "W→A")
_OFFICE = {"A": "amazon", "D": "dslr", "W": "webcam"}


@dataclass(frozen=True)
class Protocol:
    title: str
    source: tuple[str, int | None]  # domain name, training images (None: all)
    target: tuple[str, int | None]
    epochs: int
    batch_size: int
    paper: str
    published: dict[str, str] = field(default_factory=dict)


PROTOCOLS = {
    "mnist-usps": Protocol(
        "MNIST→USPS", ("mnist", 2000), ("usps", 1800), epochs=30, batch_size=64,
        paper="ADDA, Tzeng et al. CVPR 2017, Table 1 (LeNet; 2000 MNIST / 1800 USPS)",
        published={"source": "75.2 ± 1.6", "dann": "77.1 ± 1.8 (gradient reversal)"},
    ),
    "usps-mnist": Protocol(
        "USPS→MNIST", ("usps", 1800), ("mnist", 2000), epochs=30, batch_size=64,
        paper="ADDA, Tzeng et al. CVPR 2017, Table 1 (LeNet; 1800 USPS / 2000 MNIST)",
        published={"source": "57.1", "dann": "73.0 (gradient reversal)"},
    ),
    "svhn-mnist": Protocol(
        "SVHN→MNIST", ("svhn", None), ("mnist", None), epochs=10, batch_size=128,
        paper="DANN, Ganin et al. JMLR 2016, Table 2 (all of SVHN train → MNIST train)",
        published={"source": "54.90", "dann": "73.85"},
    ),
    "office31": Protocol(
        "Office-31, six shifts", ("office31", None), ("office31", None), epochs=20, batch_size=32,
        paper="ResNet-50: Transfer-Learning-Library (thuml) README, average of the six shifts",
        published={"source": "79.5 (avg)", "mmd": "83.7 (avg, DAN)", "dann": "86.1 (avg)",
                   "cdan": "87.7 (avg)"},
    ),
}  # fmt: skip


class LeNet(nn.Sequential):
    """The LeNet of the ADDA experiments, for 32×32 digits: ``features`` (→ 500-d) and ``head``.

    >>> import torch
    >>> LeNet()(torch.zeros(2, 1, 32, 32)).shape
    torch.Size([2, 10])
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        features = nn.Sequential(
            nn.Conv2d(in_channels, 20, 5), nn.MaxPool2d(2), nn.ReLU(),
            nn.Conv2d(20, 50, 5), nn.Dropout2d(0.5), nn.MaxPool2d(2), nn.ReLU(),
            nn.Flatten(), nn.Linear(50 * 5 * 5, 500), nn.ReLU(), nn.Dropout(0.5),
        )  # fmt: skip
        super().__init__(OrderedDict(features=features, head=nn.Linear(500, num_classes)))


# --------------------------------------------------------------------------- data
def _digits(name: str, split: str, size: int | None, seed: int, args) -> data.DigitDataset:
    if args.fake:  # offline stand-ins: rendered digits → the same digits blended with photos
        stand_in = {"mnist": "synth", "svhn": "synth", "usps": "synth_m"}[name]
        n = min(size or 200, 200) if split == "train" else 100
        return data.load_domain(stand_in, split, size=n, seed=seed, channels=1)
    kw = (
        {"root": args.root, "download": args.download} if args.root else {"download": args.download}
    )
    return data.load_domain(name, split, size=size if split == "train" else None, seed=seed, **kw)


def _fake_office(root: Path) -> Path:
    """Three tiny domains of three classes: each domain its own tint, each class its own shape."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    for d, tint in (
        ("amazon", (255, 255, 255)),
        ("dslr", (120, 200, 90)),
        ("webcam", (90, 90, 200)),
    ):
        for k, cls in enumerate(("bike", "mug", "pen")):
            (root / d / cls).mkdir(parents=True, exist_ok=True)
            for i in range(8):
                img = Image.new("RGB", (40, 40), tuple(int(v) for v in rng.integers(0, 60, 3)))
                box = [6 + k * 4, 6, 30, 34 - k * 8] if k < 2 else [18, 4, 22, 36]
                ImageDraw.Draw(img).rectangle(box, fill=tint)
                img.save(root / d / cls / f"{i}.png")
    return root


# --------------------------------------------------------------------------- one run
@dataclass(frozen=True)
class Outcome:
    """One seed's run: target test accuracy (%, NaN if training diverged) and, when the run
    collapsed or diverged, why (:func:`tlearn.adapt.diagnostics.diagnose`), else None."""

    seed: int
    accuracy: float
    problem: str | None = None


def _train_and_score(net: nn.Module, test, seed: int, device, **fit) -> Outcome:
    """``fit_adapt(net, **fit)``, then the test accuracy and the collapse check on its predictions.

    The check reads the predictions only; fit_adapt's own warning (on the training target)
    is left out, so each problem is reported once, in the table.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CollapseWarning)
            adapt.fit_adapt(net, seed=seed, device=device, **fit)
    except FloatingPointError as e:  # fit stops at the first non-finite loss
        return Outcome(seed, math.nan, f"diverged: {e}")
    accuracy = 100 * train.evaluate(net, test, device=device)["accuracy"]
    logits = train.predict(net, test, device=device, return_logits=True)
    problem = diagnose(logits) if torch.isfinite(logits).all() else "diverged: non-finite outputs"
    return Outcome(seed, accuracy, problem)


def _run_digits(protocol: Protocol, method: str, seed: int, args) -> Outcome:
    (src_name, n_src), (tgt_name, n_tgt) = protocol.source, protocol.target
    source = _digits(src_name, "train", n_src, seed, args)
    target = _digits(tgt_name, "train", n_tgt, seed, args)
    test = _digits(tgt_name, "test", None, seed, args)
    runtime.seed_everything(seed)
    return _train_and_score(
        LeNet(), test, seed, args.device, source=source, target=target, method=METHODS[method],
        epochs=args.epochs or protocol.epochs, batch_size=protocol.batch_size,
        progress=args.progress,
    )  # fmt: skip


def _run_office(shift: str, method: str, seed: int, args, root: Path) -> Outcome:
    s, t = (_OFFICE[c] for c in shift.split("→"))
    size = 32 if args.fake else 224
    norm = None if args.fake else models.normalization("resnet50")
    kw = dict(root=root, image_size=size, normalize=norm)
    if args.fake:
        kw["num_workers"] = 0  # a few tiny images: worker processes would cost more than they save
    source = data.load_domain("office31", "train", domain=s, **kw)
    target = data.load_domain("office31", "train", domain=t, **kw)
    test = data.load_domain("office31", "test", domain=t, **kw)
    runtime.seed_everything(seed)
    if args.fake:
        net, layer = LeNet(len(source.classes), in_channels=3), "features"
    else:
        net = models.replace_head(models.load_backbone("resnet50", pretrained=True), 31)
        layer = "avgpool"
    return _train_and_score(
        net, test, seed, args.device, source=source, target=target, method=METHODS[method],
        epochs=args.epochs or PROTOCOLS["office31"].epochs,
        batch_size=PROTOCOLS["office31"].batch_size, optimizer="sgd", lr=3e-3, layer=layer,
        progress=args.progress,
    )  # fmt: skip


def run(name: str, method: str, args) -> dict[str, list[Outcome]]:
    """One :class:`Outcome` per shift and seed: ``{"MNIST→USPS": [seed 0, seed 1, …]}``."""
    protocol = PROTOCOLS[name]
    if name != "office31":
        return {protocol.title: [_run_digits(protocol, method, s, args) for s in args.seeds]}
    with tempfile.TemporaryDirectory() as tmp:
        root = (
            _fake_office(Path(tmp))
            if args.fake
            else Path(args.root or runtime.data_dir() / "office31")
        )
        return {
            shift: [_run_office(shift, method, s, args, root) for s in args.seeds]
            for shift in OFFICE31_SHIFTS
        }


def report(name: str, method: str, results: dict[str, list[Outcome]]) -> str:
    """The table: our mean ± std and each seed's accuracy per shift beside the published
    number, protocol stated; then a warning line per collapsed or diverged seed."""
    protocol = PROTOCOLS[name]
    published = protocol.published.get(method, "— (not published in this protocol)")
    fmt = lambda v: f"{statistics.mean(v):5.1f} ± {statistics.stdev(v) if len(v) > 1 else 0:.1f}"  # noqa: E731
    seeds = [o.seed for o in next(iter(results.values()))]
    lines = [
        f"{protocol.title}, method {method!r} — protocol: {protocol.paper}.",
        "Fixed schedule, no target labels used for any choice; accuracy (%) on the target, "
        f"mean ± std over {len(seeds)} seed(s) ({', '.join(map(str, seeds))}); "
        "* marks a collapsed or diverged seed.",
        f"{'shift':<12} {'ours':>14}   {'per seed':<24} published",
    ]
    for shift, outcomes in results.items():
        per_seed = ", ".join(f"{o.accuracy:.1f}{'*' if o.problem else ''}" for o in outcomes)
        accuracies = [o.accuracy for o in outcomes]
        lines.append(
            f"{shift:<12} {fmt(accuracies):>14}   {per_seed:<24} "
            f"{published if len(results) == 1 else ''}".rstrip()
        )
    if len(results) > 1:
        means = [statistics.mean(o.accuracy for o in v) for v in results.values()]
        lines.append(f"{'average':<12} {statistics.mean(means):14.1f}   {'':<24} {published}")
    for shift, outcomes in results.items():
        for o in outcomes:
            if o.problem:
                lines.append(
                    f"WARNING: seed {o.seed} ({shift}) {o.problem}; the mean above includes it."
                )
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    protocols = "\n".join(
        f"  {name:<11} {p.title}: {p.paper}; published {p.published}"
        for name, p in PROTOCOLS.items()
    )
    parser = argparse.ArgumentParser(
        prog="python -m tlearn.reproduce",
        description=__doc__ + "\nprotocols:\n" + protocols,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="No choice reads target labels: the schedule is fixed in advance (adapt.defaults).",
    )
    parser.add_argument("protocol", choices=list(PROTOCOLS))
    parser.add_argument(
        "--method",
        choices=list(METHODS),
        default="source",
        help="source: source only (the baseline); coral: Deep CORAL (Sun & Saenko 2016); mmd: "
        "DAN's multi-kernel MMD (Long et al. 2015); dann: gradient reversal (Ganin et al. 2016); "
        "cdan: conditional adversarial (Long et al. 2018). Default: source",
    )
    parser.add_argument("--root", help="folder of the datasets (default TLEARN_DATA)")
    parser.add_argument("--download", action="store_true", help="download missing datasets")
    parser.add_argument("--seeds", type=cli.int_argument("--seeds"), nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--epochs",
        type=cli.int_argument("--epochs", minimum=1),
        help="override the protocol's epochs (a quick look)",
    )
    parser.add_argument(
        "--device",
        type=cli.device_argument,
        default=None,
        help="cpu, cuda … (default: tlearn.get_device)",
    )
    parser.add_argument(
        "--fake", action="store_true", help="tiny offline stand-in data (a smoke test)"
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    return parser


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    """Run and print the table; return the accuracies (%) per shift, one per seed."""
    args = _parser().parse_args(argv)
    results = run(args.protocol, args.method, args)
    print(report(args.protocol, args.method, results), flush=True)
    if args.fake:
        print("(--fake: tiny stand-in data; these numbers check the command, they are no result)")
    return {shift: [o.accuracy for o in outcomes] for shift, outcomes in results.items()}


if __name__ == "__main__":
    main()
