"""Why ``import tlearn`` caps torch's and BLAS's CPU threads: oversubscription, side by side.

Times DigitNet training steps (batch 128, forward + backward + Adam) with torch's threads
set to the CPUs this process may use (``runtime.cpu_budget()``, what tlearn picks) and to
several times that — what torch picks in a container that shows the host's cores but allows
fewer (Docker ``--cpus``, Kubernetes CPU limits) — and a scikit-learn logistic regression
(a proxy A-distance's domain classifier: 1,080 × 128 features) with the BLAS it runs on
capped the same two ways. Alternates the settings, prints medians and their ratio::

    python benchmarks/threads.py               # budget vs 4 × budget threads
    python benchmarks/threads.py --factor 8 --steps 30
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from tlearn import models, runtime


def time_steps(threads: int, steps: int) -> float:
    """Median seconds of one training step with ``threads`` intra-op threads."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = models.DigitNet()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x, y = torch.rand(128, 1, 32, 32), torch.randint(0, 10, (128,))
    times = []
    for i in range(steps + 3):
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= 3:  # warm-up
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_fits(threads: int, fits: int) -> float:
    """Median seconds of one logistic-regression fit with ``threads`` BLAS threads."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1080, 128))
    y = (x[:, :8].sum(1) + rng.normal(size=1080) > 0).astype(int)
    times = []
    with threadpool_limits(limits=threads, user_api="blas"):
        for _ in range(fits):
            t0 = time.perf_counter()
            LogisticRegression(max_iter=1000).fit(x, y)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factor", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    budget = runtime.cpu_budget()
    settings = {"tlearn (budget)": budget, f"{args.factor} × budget": args.factor * budget}
    results: dict[str, list[float]] = {k: [] for k in settings}
    fits: dict[str, list[float]] = {k: [] for k in settings}
    for _ in range(args.rounds):  # alternate, so a busy moment hits both
        for name, n in settings.items():
            results[name].append(time_steps(n, args.steps))
            fits[name].append(time_fits(n, args.steps))
    print(
        f"cpu_budget() = {budget} (quota {runtime.cgroup_cpu_quota()}), torch {torch.__version__}"
    )
    base = statistics.median(results["tlearn (budget)"])
    for name, n in settings.items():
        med = statistics.median(results[name])
        print(f"{name:<16} {n:3d} threads: {1000 * med:8.1f} ms/step   ÷ tlearn {med / base:5.2f}")
    base = statistics.median(fits["tlearn (budget)"])
    for name, n in settings.items():
        med = statistics.median(fits[name])
        print(
            f"{name:<16} {n:3d} BLAS threads: {1000 * med:8.1f} ms/fit   ÷ tlearn {med / base:5.2f}"
        )


if __name__ == "__main__":
    main()
