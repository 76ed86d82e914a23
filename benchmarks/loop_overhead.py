"""How much does ``tlearn.train.fit`` cost over a minimal hand-written PyTorch loop?

Both train the same DigitNet on the same synthetic digits with Adam, batch 128, a shuffled
DataLoader and cross-entropy, one epoch per repeat, alternating which goes first. We report
the median wall time of each and their ratio (target: fit / plain ≤ 1.05).

    python benchmarks/loop_overhead.py [--repeats 7] [--size 3000] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import tlearn
from tlearn import data, models, train


def plain_epoch(model, dataset, device, batch_size: int, seed: int) -> float:
    """The loop a PyTorch tutorial would write, nothing more."""
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed)
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.to(device).train()
    start = time.perf_counter()
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def fit_epoch(model, dataset, device, batch_size: int, seed: int) -> float:
    start = time.perf_counter()
    train.fit(model, dataset, epochs=1, batch_size=batch_size, device=device, progress=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--size", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()

    device = tlearn.get_device(args.device)
    dataset = data.load_domain("synth", size=args.size, seed=0)
    times: dict[str, list[float]] = {"plain loop": [], "tlearn.fit": []}
    runners = {"plain loop": plain_epoch, "tlearn.fit": fit_epoch}
    for run in runners.values():  # warm-up: allocator, kernels, thread pools
        tlearn.seed_everything(0)
        run(models.DigitNet(), dataset, device, args.batch_size, 0)
    for r in range(args.repeats):
        order = list(runners) if r % 2 == 0 else list(reversed(runners))
        for name in order:
            tlearn.seed_everything(r)
            times[name].append(
                runners[name](models.DigitNet(), dataset, device, args.batch_size, r)
            )

    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"device={device}  images/epoch={args.size}  batch={args.batch_size}  repeats={args.repeats}"
    )
    for k, v in times.items():
        print(f"  {k:11s} median {med[k]:.3f} s   (min {min(v):.3f}, max {max(v):.3f})")
    ratio = med["tlearn.fit"] / med["plain loop"]
    print(f"ratio fit / plain = {ratio:.3f}  (target <= 1.05: {'OK' if ratio <= 1.05 else 'OVER'})")


if __name__ == "__main__":
    main()
