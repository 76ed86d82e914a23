"""Why DigitNet is channels-last: its training step in both memory layouts, side by side.

``tlearn warm`` (Binder's postBuild) spends most of its time in DigitNet training steps:
lessons 03–05's 36 adaptation runs and lesson 09's grid. This script times one such step
(a batch of 256 — 128 source and 128 target images, as ``fit_adapt`` sees them — forward,
cross-entropy, backward and Adam) with the network and images in PyTorch's default NCHW
layout and in channels-last (NHWC), at 1 and at 2 torch threads (``--threads``). Settings
alternate round by round so that a busy moment hits each, and the script prints medians and
the NCHW / channels-last ratio.

The two layouts compute the same functions with different kernels, so the numbers differ in
the last bits: it also trains both from the same weights on the same batches and prints the
largest difference in the logits after ``--steps`` steps. The change of layout (tlearn 0.2)
therefore changed the lessons' stored numbers as a change of machine does. ``DigitNet()`` is
channels-last; ``DigitNet(channels_last=False)`` is the NCHW network timed here::

    python benchmarks/memory_format.py                 # 1 and 2 threads, 20 steps, 3 rounds
    python benchmarks/memory_format.py --threads 2 --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from tlearn import models

LAYOUTS = {"NCHW": False, "channels-last": True}  # DigitNet's channels_last argument


def _setup(channels_last: bool, batch: int):
    torch.manual_seed(0)
    net = models.DigitNet(channels_last=channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.rand(batch, 1, 32, 32)
    y = torch.randint(0, 10, (batch,))
    return net, opt, x, y


def _step(net, opt, x, y) -> None:
    loss = F.cross_entropy(net(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()


def time_steps(channels_last: bool, threads: int, steps: int, batch: int) -> float:
    """Median seconds of one training step with ``threads`` torch threads."""
    torch.set_num_threads(threads)
    net, opt, x, y = _setup(channels_last, batch)
    times = []
    for i in range(steps + 3):
        t0 = time.perf_counter()
        _step(net, opt, x, y)
        if i >= 3:  # warm-up
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def logit_gap(steps: int, batch: int) -> float:
    """Largest |logit difference| between the two layouts after ``steps`` identical steps."""
    logits = []
    for layout in LAYOUTS.values():
        net, opt, x, y = _setup(layout, batch)
        for _ in range(steps):
            _step(net, opt, x, y)
        with torch.no_grad():
            logits.append(net.eval()(x).float())
    return float((logits[0] - logits[1]).abs().max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    times = {(name, n): [] for n in args.threads for name in LAYOUTS}
    for _ in range(args.rounds):  # alternate, so a busy moment hits every setting
        for (name, n), runs in times.items():
            runs.append(time_steps(LAYOUTS[name], n, args.steps, args.batch))
    print(f"torch {torch.__version__}; DigitNet step, batch {args.batch}; medians of "
          f"{args.rounds} rounds × {args.steps} steps")  # fmt: skip
    for n in args.threads:
        nchw = statistics.median(times[("NCHW", n)])
        last = statistics.median(times[("channels-last", n)])
        print(f"{n} thread{'s' if n > 1 else ''}: NCHW {1e3 * nchw:.1f} ms, channels-last "
              f"{1e3 * last:.1f} ms — ratio {nchw / last:.2f}×")  # fmt: skip
    torch.set_num_threads(max(args.threads))
    print(f"largest logit difference after {args.steps} identical steps: "
          f"{logit_gap(args.steps, args.batch):.2e}")  # fmt: skip


if __name__ == "__main__":
    main()
