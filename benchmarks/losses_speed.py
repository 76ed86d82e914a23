"""Speed and agreement of tlearn's MMD and Deep CORAL losses next to their PyPI peers.

Forward + backward of each loss on one batch pair (default n = 512 per domain, d = 256,
5 Gaussian kernels), timed round-robin (every repeat runs every implementation once, so
load from other processes hits all of them alike); the median over repeats is reported,
with the peers' time divided by ours ("× slower than tlearn").

Before any timing, the kernel families are aligned so that the *values* can be compared,
and the script checks them (exit code 1 on a mismatch):

* pytorch-adapt 0.0.83 ``MMDLoss(kernel_scales=s, mmd_type="quadratic", bandwidth=b)``:
  k = **mean** over kernels of exp(−d² · s_u / b) — the scale *divides* the width
  (γ_u = b / s_u) — and "quadratic" is the **unbiased** U-statistic (diagonals removed).
  Its default bandwidth is the median of the *source-source* squared distances.
  So tlearn ``mmd(..., estimator="unbiased") / 5`` must equal it with b = γ₀, s = 1/α.
  ``mmd_type="linear"`` (its default) is the linear-time estimate, but it still builds all
  three n×n distance matrices. ``CORALLoss`` is ‖C_S − C_T‖²_F / 4d² as in the paper.
* skada ``dan_loss(features_s, features_t, sigmas)``: biased V-statistic, **sum** over
  kernels, but the kernel is exp(−‖x − y‖ / σ) — the Euclidean distance, not its square: a
  Laplacian-type kernel despite the name "_gaussian_kernel" — so its value cannot match a
  Gaussian MMD. Its default σ are 2^(−8…8) in √2 steps times the median *distance* of the
  source, and that median is not detached (gradients flow through the bandwidth). We
  check its value against an independent float64 evaluation of its own formula instead.
  ``deepcoral_loss`` equals the paper's loss.

tlearn's own rows: ``mmd`` (with the tricks of ``tlearn/adapt/_fast.py``, which the tests
prove equal to the plain definition in value and gradient) and ``plain_mmd`` (the textbook
definition through autograd), so the gain of the tricks shows beside the peers'. Deep CORAL
is plain autograd (no trick); its row shows it costs what the peers' does.

Run (the peers live in their own venv: pytorch-adapt imports only with setuptools<81)::

    python3 -m venv .venv-bench
    .venv-bench/bin/pip install torch torchvision 'setuptools<81' pytorch-adapt==0.0.83 skada skorch
    .venv-bench/bin/pip install -e . --no-deps    # plus numpy, scikit-learn, tqdm if missing
    .venv-bench/bin/python benchmarks/losses_speed.py [--n 512 --d 256 --repeats 30 --threads 1]

Without a peer installed, the script says so and still times tlearn. CPU timings on a
shared machine are noisy: compare the ratios within one run, not absolute numbers.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from tlearn.adapt import coral_loss, mmd
from tlearn.adapt.kernels import DEFAULT_MULTIPLIERS
from tlearn.adapt.mmd import plain_mmd

ALPHAS = DEFAULT_MULTIPLIERS  # γ_u = α_u · γ₀, u = 1…5


@dataclass
class Entry:
    name: str
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    ours: bool = False
    expected: Callable[[dict[str, float]], float] | None = None  # value it must agree with
    note: str = ""
    rtol: float = 1e-4  # float32 round-off allowed when comparing values
    times: list[float] = field(default_factory=list)
    value: float = float("nan")


def load_peers() -> tuple[object | None, object | None]:
    """Import pytorch-adapt's layers and skada's deep losses, or say why not."""
    pa = sk = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import pytorch_adapt.layers as pa
        except Exception as exc:  # ImportError, or pkg_resources missing with setuptools>=81
            print(f"[peer missing] pytorch-adapt: {type(exc).__name__}: {exc}")
        try:
            import skada.deep.losses as sk
        except Exception as exc:  # needs skorch and POT
            print(f"[peer missing] skada.deep: {type(exc).__name__}: {exc}")
    return pa, sk


def skada_reference(x: torch.Tensor, y: torch.Tensor, sigmas: list[float]) -> float:
    """skada's dan_loss formula, evaluated independently in float64 NumPy."""
    a, b = x.detach().double().numpy(), y.detach().double().numpy()

    def kmean(p, q):
        dist = np.sqrt(np.maximum(((p[:, None, :] - q[None, :, :]) ** 2).sum(-1), 0))
        return sum(np.exp(-dist / s) for s in sigmas).mean()

    return float(kmean(a, a) + kmean(b, b) - 2 * kmean(a, b))


def time_round_robin(entries: list[Entry], x, y, repeats: int, warmup: int = 3) -> None:
    for rep in range(warmup + repeats):
        for e in entries:
            x.grad = y.grad = None
            start = time.perf_counter()
            loss = e.fn(x, y)
            loss.backward()
            elapsed = time.perf_counter() - start
            if rep >= warmup:
                e.times.append(elapsed)
            e.value = loss.item()


def report(title: str, entries: list[Entry], values: dict[str, float]) -> bool:
    ours = next(e for e in entries if e.ours)
    ref_ms = 1e3 * statistics.median(ours.times)
    print(f"\n== {title}")
    print(
        f"{'implementation':48s} {'value':>12s} {'median ms':>10s} {'IQR ms':>8s} {'÷ tlearn':>8s}"
    )
    ok = True
    for e in entries:
        q = np.percentile(1e3 * np.array(e.times), [25, 75])
        ms = 1e3 * statistics.median(e.times)
        print(f"{e.name:48s} {e.value:12.6g} {ms:10.2f} {q[1] - q[0]:8.2f} {ms / ref_ms:8.2f}")
        if e.expected is not None:
            want = e.expected(values)
            agree = abs(e.value - want) <= e.rtol * abs(want) + 1e-9
            ok &= agree
            status = "agrees" if agree else "MISMATCH"
            print(f"{'':6s}↳ {status}: expected {want:.6g} ({e.note})")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=512, help="samples per domain")
    parser.add_argument("--d", type=int, default=256, help="feature dimension")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (≤ 2 here)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    x = torch.randn(args.n, args.d).requires_grad_()
    y = (1.3 * torch.randn(args.n, args.d) + 0.2).requires_grad_()
    pooled = torch.cat([x, y]).detach().double()
    gamma0 = float(torch.cdist(pooled, pooled).pow(2).mean())  # tlearn's data-driven γ₀
    print(
        f"torch {torch.__version__}, {args.threads} thread(s); n = {args.n} per domain, "
        f"d = {args.d}; γ₀ = {gamma0:.4g}; kernels γ_u = {list(ALPHAS)} × γ₀; "
        f"median of {args.repeats} repeats"
    )
    pa, sk = load_peers()
    ok = True

    # ---------------------------------------------------------------- quadratic-time MMD
    values: dict[str, float] = {}
    mmd_entries = [
        Entry("tlearn mmd (biased V-stat, Σ of 5)", lambda a, b: mmd(a, b), ours=True),
        Entry("tlearn mmd (unbiased U-stat, Σ of 5)", lambda a, b: mmd(a, b, estimator="unbiased")),
        Entry(
            "tlearn plain_mmd (biased, no tricks)",
            lambda a, b: plain_mmd(a, b),
            expected=lambda v: v["tlearn mmd (biased V-stat, Σ of 5)"],
            note="the textbook definition: same value as mmd",
        ),
    ]
    if pa is not None:
        scales = torch.tensor([1.0 / a for a in ALPHAS])
        pa_mmd = pa.MMDLoss(kernel_scales=scales, mmd_type="quadratic", bandwidth=gamma0)
        mmd_entries.append(
            Entry(
                "pytorch-adapt MMDLoss(quadratic) (U-stat, mean)",
                lambda a, b: pa_mmd(a, b),
                expected=lambda v: v["tlearn mmd (unbiased U-stat, Σ of 5)"] / len(ALPHAS),
                note="tlearn unbiased / 5: mean vs sum over kernels",
            )
        )
    if sk is not None:
        sigmas = [a * gamma0**0.5 for a in ALPHAS]  # widths on the *distance* scale
        ref = skada_reference(x, y, sigmas)
        mmd_entries.append(
            Entry(
                "skada dan_loss (V-stat, Σ of 5 exp(-‖x-y‖/σ))",
                lambda a, b: sk.dan_loss(a, b, sigmas=sigmas),
                expected=lambda v: ref,
                note="its own formula in float64; not a Gaussian kernel",
                rtol=1e-3,  # its float32 cdist (via a matrix product, then sqrt) is the looser
            )
        )
    time_round_robin(mmd_entries, x, y, args.repeats)
    values.update({e.name: e.value for e in mmd_entries})
    ok &= report("MMD, quadratic time (5 kernels), forward + backward", mmd_entries, values)
    peers = [e for e in mmd_entries if not e.name.startswith("tlearn")]
    ours_ms = 1e3 * statistics.median(mmd_entries[0].times)
    if peers:
        fastest = min(peers, key=lambda e: statistics.median(e.times))
        ratio = statistics.median(fastest.times) * 1e3 / ours_ms
        print(f"   fastest peer: {fastest.name} — tlearn is {ratio:.2f}× faster (target ≥ 1.5×)")
    plain = next(e for e in mmd_entries if e.name.startswith("tlearn plain_mmd"))
    trick = statistics.median(plain.times) * 1e3 / ours_ms
    print(f"   the _fast.py tricks: mmd is {trick:.2f}× faster than plain_mmd")

    # ---------------------------------------------------------------- linear-time MMD
    lin_entries = [
        Entry(
            "tlearn mmd (linear-time, Σ of 5)",
            lambda a, b: mmd(a, b, estimator="linear-time"),
            ours=True,
        )
    ]
    if pa is not None:
        pa_lin = pa.MMDLoss(kernel_scales=scales, mmd_type="linear", bandwidth=gamma0)
        lin_entries.append(
            Entry(
                "pytorch-adapt MMDLoss(linear) (mean)",
                lambda a, b: pa_lin(a, b),
                expected=lambda v: v["tlearn mmd (linear-time, Σ of 5)"] / len(ALPHAS),
                note="tlearn linear-time / 5",
            )
        )
    time_round_robin(lin_entries, x, y, args.repeats)
    values.update({e.name: e.value for e in lin_entries})
    ok &= report("MMD, linear-time estimate (DAN), forward + backward", lin_entries, values)

    # ---------------------------------------------------------------- Deep CORAL
    coral_entries = [Entry("tlearn coral_loss", coral_loss, ours=True)]
    same = dict(expected=lambda v: v["tlearn coral_loss"], note="same definition")
    if pa is not None:
        pa_coral = pa.CORALLoss()
        coral_entries.append(Entry("pytorch-adapt CORALLoss", lambda a, b: pa_coral(a, b), **same))
    if sk is not None:
        coral_entries.append(Entry("skada deepcoral_loss", sk.deepcoral_loss, **same))
    time_round_robin(coral_entries, x, y, args.repeats)
    values.update({e.name: e.value for e in coral_entries})
    ok &= report("Deep CORAL, forward + backward", coral_entries, values)
    peers = coral_entries[1:]
    if peers:
        fastest = min(peers, key=lambda e: statistics.median(e.times))
        ratio = statistics.median(fastest.times) / statistics.median(coral_entries[0].times)
        print(f"   fastest peer: {fastest.name} — tlearn is {ratio:.2f}× faster (plain autograd)")

    print("\nvalues agree" if ok else "\nVALUE MISMATCH (see above)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
