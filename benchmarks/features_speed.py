"""How fast is ``tlearn.features.extract``, and what does the feature cache buy?

Three side-by-side measurements on the same model and data, in one run:

1. **Same work**: ``extract(model, data, layer="features")`` against a plain loop
   ``with torch.no_grad(): model.features(x[i:i+b])``. The ratio should be ≈ 1: hooks,
   progress bars and bookkeeping cost (almost) nothing.
2. **Early stop**: features from an early block. ``extract`` stops the forward pass once
   the hooked layer has run; the usual hand-written alternative runs the whole network with
   a hook and throws the rest away.
3. **Cache**: probing the same features again (e.g. at 1, 5, 10, 30 labels per class) —
   loading them from a :class:`~tlearn.features.FeatureCache` against re-extracting them.

Usage::

    python benchmarks/features_speed.py                        # DigitNet on uci (1797 images)
    python benchmarks/features_speed.py --model lite0 --size 64  # EfficientNet-Lite0, 64×64

Timings on a shared CPU are noisy: each number is the median of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from tlearn import data, features, models, runtime


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("digitnet", "lite0"), default="digitnet")
    parser.add_argument("--size", type=int, default=64, help="input side for lite0")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    runtime.seed_everything(0)
    device = runtime.get_device(args.device)

    train = data.load_domain("uci", "train")
    test = data.load_domain("uci", "test")
    images = torch.cat([train.images, test.images])
    ds = data.DigitDataset(images, torch.cat([train.labels, test.labels]), name="uci:all")
    if args.model == "digitnet":
        model = models.DigitNet()
        early = "features.conv2"
    else:
        model = models.for_digits("efficientnet_lite0", size=args.size)
        early = "features.backbone.features.3"
    model = model.eval().to(device)
    n, bs = len(ds), args.batch_size
    print(f"{type(model).__name__} on {n} uci digits, batch {bs}, {args.threads} threads, {device}")

    def plain_features():
        with torch.no_grad():
            for i in range(0, n, bs):
                model.features(images[i : i + bs].to(device)).cpu()

    def tl_features():
        features.extract(model, ds, layer="features", batch_size=bs, device=device, progress=False)

    def naive_early():  # whole network, hook keeps the early block's output
        kept = []
        handle = model.get_submodule(early).register_forward_hook(
            lambda m, i, o: kept.append(o.mean(dim=(2, 3)).cpu())
        )
        try:
            with torch.no_grad():
                for i in range(0, n, bs):
                    model(images[i : i + bs].to(device))
        finally:
            handle.remove()

    def tl_early():
        features.extract(model, ds, layer=early, batch_size=bs, device=device, progress=False)

    tl_features()  # warm-up (allocator, lazy init)
    t_plain = _median_time(plain_features, args.repeats)
    t_extract = _median_time(tl_features, args.repeats)
    t_naive = _median_time(naive_early, args.repeats)
    t_early = _median_time(tl_early, args.repeats)

    with tempfile.TemporaryDirectory() as tmp:
        cache = features.FeatureCache(tmp)
        kw = dict(layer="features", batch_size=bs, device=device, progress=False, cache=cache)
        t0 = time.perf_counter()
        features.extract(model, ds, **kw)  # miss: extract + fingerprint + save
        t_miss = time.perf_counter() - t0
        t_hit = _median_time(lambda: features.extract(model, ds, **kw), args.repeats)
        assert cache.misses == 1 and cache.hits == args.repeats

    rows = [
        ("plain no_grad loop, model.features", t_plain),
        ("features.extract(layer='features')", t_extract),
        (f"full forward + hook at {early}", t_naive),
        (f"features.extract(layer={early!r})", t_early),
        ("extract with cache, first call (miss)", t_miss),
        ("extract with cache, again (hit)", t_hit),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"\n{'what':<{width}}  {'seconds':>8}  {'images/s':>9}")
    for name, t in rows:
        print(f"{name:<{width}}  {t:8.3f}  {n / t:9.0f}")
    ratios = {
        "extract_vs_plain_throughput": t_plain / t_extract,
        "early_stop_speedup": t_naive / t_early,
        "cache_hit_speedup": t_extract / t_hit,
        "cache_miss_overhead": t_miss / t_extract,
    }
    print(
        f"\nextract throughput / plain loop:        {ratios['extract_vs_plain_throughput']:.2f}×"
        f"\nearly stop at {early}: {ratios['early_stop_speedup']:.2f}× faster than a full forward"
        f"\ncache hit vs re-extracting:            {ratios['cache_hit_speedup']:.1f}× faster"
        f"\ncache miss (fingerprint + save) costs: {ratios['cache_miss_overhead']:.2f}× an extract"
        "\n(timings on a shared CPU are noisy; medians of --repeats runs)"
    )
    return ratios


if __name__ == "__main__":
    main()
