"""Why MMD (DAN) collapsed under ``python -m tlearn.reproduce mnist-usps --method mmd``.

The reproduce protocol's network — the ADDA LeNet, **no BatchNorm** — trained with
``fit_adapt(method="mmd")`` on a development pair instead of MNIST → USPS (no USPS label is
read): 2000 rendered digits (``"synth"``, one channel) → 1800 of their UCI-like degraded
copies (``"synth_degraded"`` or ``"synth_framed"``, ``tlearn.studies.domains``), 30 epochs,
batch 64, Adam 1e-3, weight 1 — the protocol's schedule. For each seed it prints the target
test accuracy, the majority share of its predictions (``tlearn.adapt.diagnostics``) and, per
epoch, the class loss, the MMD², the mean feature norm of each domain and γ₀ (the kernels'
data-driven bandwidth), once with γ₀ detached (DAN's and TLlib's convention; tlearn's
default before the fix) and once differentiated (the default now)::

    python benchmarks/mmd_collapse.py --target synth_degraded --seeds 0 1 2 3
    python benchmarks/mmd_collapse.py --target synth_framed --seeds 0 1 --only detached

About 1–2 minutes of one CPU thread per run. Recorded: ``results/mmd_collapse.txt``.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

import tlearn.studies.domains  # noqa: F401  (registers the development targets)
from tlearn import adapt, data, runtime, train
from tlearn.adapt import _fast
from tlearn.adapt.diagnostics import majority_share
from tlearn.reproduce import LeNet

MODES = {"detached": True, "differentiated": False}


class LoggedMMD(adapt.MMDLoss):
    """``MMDLoss`` that also logs the feature norms and γ₀ of each batch (averaged per epoch)."""

    def forward(self, zs: torch.Tensor, zt: torch.Tensor) -> torch.Tensor:
        z = torch.cat([zs, zt]).detach()
        self.logs = {
            "norm_source": zs.detach().norm(dim=1).mean().item(),
            "norm_target": zt.detach().norm(dim=1).mean().item(),
            "gamma0": _fast.mean_sq_distance(z, z[:0]).item(),
        }
        return super().forward(zs, zt)


def run(target: str, seed: int, detach: bool, epochs: int) -> tuple[float, float, train.History]:
    source = data.load_domain("synth", "train", size=2000, seed=seed, channels=1)
    unlabelled = data.load_domain(target, "train", size=1800, seed=seed, channels=1)
    test = data.load_domain(target, "test", size=1000, seed=seed, channels=1)
    runtime.seed_everything(seed)
    net: nn.Module = LeNet()
    hist = adapt.fit_adapt(
        net, source, unlabelled, LoggedMMD(detach_bandwidth=detach), weight=1.0,
        epochs=epochs, batch_size=64, seed=seed, progress=False,
    )  # fmt: skip
    predictions = train.predict(net, test)
    accuracy = (predictions == test.labels).float().mean().item()
    return accuracy, majority_share(predictions)[1], hist


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--target", default="synth_degraded", choices=["synth_degraded", "synth_framed"]
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--only", choices=list(MODES))
    args = parser.parse_args()
    for mode, detach in MODES.items():
        if args.only and mode != args.only:
            continue
        for seed in args.seeds:
            t0 = time.perf_counter()
            accuracy, share, hist = run(args.target, seed, detach, args.epochs)
            print(
                f"{args.target} γ₀ {mode:<14} seed {seed}: target accuracy {accuracy:6.1%}, "
                f"majority share {share:.2f} ({time.perf_counter() - t0:.0f} s)", flush=True,
            )  # fmt: skip
            for r in hist.records:
                print(
                    f"    epoch {r['epoch']:2d}: class loss {r['class_loss']:.3f}  "
                    f"MMD² {r['align_loss']:.4f}  |z| source {r['norm_source']:6.2f} "
                    f"target {r['norm_target']:6.2f}  γ₀ {r['gamma0']:9.3g}", flush=True,
                )  # fmt: skip


if __name__ == "__main__":
    main()
