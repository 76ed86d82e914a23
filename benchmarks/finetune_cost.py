"""What does freezing save? Epoch time and peak memory of head-only vs full fine-tuning.

    python benchmarks/finetune_cost.py            # DigitNet, ResNet-18, EfficientNet-Lite0
    python benchmarks/finetune_cost.py --models resnet18 --size 96 --images 512
    python benchmarks/finetune_cost.py --device cuda   # GPU: memory from the CUDA allocator

For each model and mode ("head": everything frozen but the last block, via
``tlearn.freeze.freeze_to(model, 1)``; "full": everything trains) a *fresh subprocess*
trains one epoch over random images, a few times, and reports:

* **epoch time** — the median over ``--repeats`` epochs after one warm-up epoch (wall clock);
* **autograd check** — the number of ``AccumulateGrad`` nodes in the loss's backward graph,
  i.e. how many parameter tensors backward will write a gradient to. Head-only must list
  only the head's tensors: frozen blocks are not in the graph, so their backward pass (the
  gradient w.r.t. their weights *and* w.r.t. their inputs) is never run. After the step,
  every frozen parameter's ``.grad`` must still be ``None``.
* **peak training memory** —
  on CPU: the process's peak resident set size (``resource.getrusage(RUSAGE_SELF).ru_maxrss``)
  at the end of training minus the RSS just before the first training step (model, data and
  torch already loaded). It therefore counts what training adds — activations kept for
  backward, gradients, optimizer state — plus allocator slack. It is a coarse, honest upper
  bound: ``tracemalloc`` cannot see torch's C++ allocations, and the profiler's per-op
  numbers do not give a peak. Each mode runs in its own process so one mode's peak cannot
  hide the other's.
  On CUDA: ``torch.cuda.max_memory_allocated`` during training minus the allocation before
  it (exact tensor bytes, without the caching allocator's slack).

Timings on a shared 2-core CPU are noisy (±10–20%); the ratios are what to read.
Models are built with random weights (``pretrained=False``): speed does not depend on them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

MODELS = ("digitnet", "resnet18", "efficientnet_lite0")


def build(name: str):
    """The model and its input shape (C, H, W)."""
    from torch import nn

    from tlearn import models

    if name == "digitnet":
        return models.DigitNet(num_classes=10), (1, 32, 32)
    if hasattr(models, "load_backbone"):
        net = models.load_backbone(name, pretrained=False)
        if hasattr(models, "replace_head"):
            models.replace_head(net, num_classes=10)
        return net, (3, 0, 0)
    # Fallback while tlearn.models.load_backbone is not available.
    import torchvision

    if name == "resnet18":
        net = torchvision.models.resnet18(weights=None)
        net.fc = nn.Linear(net.fc.in_features, 10)
        return net, (3, 0, 0)
    if name == "efficientnet_lite0":
        from tlearn.models.efficientnet_lite import efficientnet_lite0

        net = efficientnet_lite0(num_classes=10)
        return net, (3, 0, 0)
    raise ValueError(f"unknown model {name!r}; choose from {MODELS}")


def count_accumulate_grad(loss) -> int:
    """Parameter tensors that backward will write a gradient to (AccumulateGrad nodes)."""
    seen, stack, n = set(), [loss.grad_fn], 0
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        if type(fn).__name__ == "AccumulateGrad":
            n += 1
        stack.extend(next_fn for next_fn, _ in fn.next_functions)
    return n


def rss_now_mb() -> float:
    """Current resident set size from /proc (Linux); falls back to the peak."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(args: argparse.Namespace) -> dict:
    """One model, one mode, in this (fresh) process."""
    import torch
    from torch import nn

    from tlearn.freeze import freeze_to, trainable_parameters

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    net, (c, h, w) = build(args.model)
    if h == 0:
        h = w = args.size
    mode = args.mode
    if mode == "head":
        freeze_to(net, 1)
    net.to(device).train()
    x = torch.rand(args.images, c, h, w)
    y = torch.randint(0, 10, (args.images,))
    opt = torch.optim.SGD(trainable_parameters(net), lr=1e-3, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def epoch() -> tuple[float, int]:
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0, nodes = time.perf_counter(), 0
        for i in range(0, args.images, args.batch_size):
            xb, yb = x[i : i + args.batch_size].to(device), y[i : i + args.batch_size].to(device)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(xb), yb)
            nodes = count_accumulate_grad(loss)
            loss.backward()
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0, nodes

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = rss_now_mb()
    _, nodes = epoch()  # warm-up (also sets the memory peak)
    times = [epoch()[0] for _ in range(args.repeats)]
    if device.type == "cuda":
        peak_mb = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base
    trainable = trainable_parameters(net)
    frozen = [p for p in net.parameters() if not p.requires_grad]
    return {
        "model": args.model,
        "mode": mode,
        "epoch_s": statistics.median(times),
        "peak_mb": peak_mb,
        "grad_nodes": nodes,
        "trainable_tensors": len(trainable),
        "frozen_with_grad": sum(p.grad is not None for p in frozen),
        "trainable_params": sum(p.numel() for p in trainable),
        "input": [c, h, w],
    }


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--size", type=int, default=64, help="input side for the ImageNet backbones")
    p.add_argument("--images", type=int, default=128, help="images per epoch")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--threads", type=int, default=1, help="CPU threads (2+ thrash on a busy shared CPU)"
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", help="also write the results to this file")
    p.add_argument("--worker", nargs=2, metavar=("MODEL", "MODE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        args.model, args.mode = args.worker
        print(json.dumps(worker(args)))
        return []

    results = []
    for model in args.models:
        for mode in ("head", "full"):
            cmd = [sys.executable, __file__, "--worker", model, mode]
            for flag in ("size", "images", "batch_size", "repeats", "threads", "device"):
                cmd += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            results.append(json.loads(out.strip().splitlines()[-1]))

    memory = "peak CUDA alloc" if args.device.startswith("cuda") else "peak RSS added"
    print(
        f"{args.images} images/epoch, batch {args.batch_size}, {args.threads} threads, "
        f"device {args.device}; median of {args.repeats} epochs; memory = {memory} (MB)\n"
    )
    header = (
        f"{'model':<20}{'mode':<6}{'input':>10}{'trainable':>12}{'grad tensors':>14}"
        f"{'epoch s':>9}{'MB':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        shape = "×".join(map(str, r["input"]))
        print(
            f"{r['model']:<20}{r['mode']:<6}{shape:>10}{r['trainable_params']:>12,}"
            f"{r['grad_nodes']:>14}{r['epoch_s']:>9.3f}{r['peak_mb']:>8.1f}"
        )
        # The autograd check: only trainable tensors are in the backward graph.
        assert r["grad_nodes"] == r["trainable_tensors"], r
        assert r["frozen_with_grad"] == 0, r
    print("\nfull ÷ head-only (how much more full fine-tuning costs):")
    for model in args.models:
        head, full = (
            next(r for r in results if r["model"] == model and r["mode"] == m)
            for m in ("head", "full")
        )
        mem = full["peak_mb"] / head["peak_mb"] if head["peak_mb"] > 1 else float("nan")
        print(
            f"  {model:<20} time ×{full['epoch_s'] / head['epoch_s']:.2f}   memory ×{mem:.2f}"
            f"   ({full['peak_mb']:.0f} vs {head['peak_mb']:.0f} MB)"
        )
    print(
        "\nautograd check passed: in head-only mode the backward graph holds only the head's "
        "parameter tensors, and no frozen parameter received a gradient."
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    main()
