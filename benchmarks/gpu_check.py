"""A short check of tlearn's GPU paths, for a machine with CUDA (CI has none).

Runs in about a minute on one GPU and prints one line per check, PASS or FAIL, then exits
non-zero if anything failed:

* ``train.fit`` with mixed precision (bf16 or fp16 + GradScaler) learns, and a checkpoint
  saved from the GPU loads on the CPU with the same predictions;
* ``features.extract`` under autocast matches the float32 features;
* the losses (``coral_loss``, ``mmd``) under autocast on the GPU agree with float64 on the CPU;
* ``adapt.fit_adapt`` runs each method on the GPU and its losses stay finite;
* the offline ImageNet EfficientNet-Lite0 gives the same top-5 on the GPU under autocast;
* **throughput against the limit**: images/s of a ResNet-50 fine-tuning step at 224 px
  through ``train.fit`` against a bare hand-written step on the same model and the same
  synthetic tensors (target: fit ≥ 0.9× bare), in float32 and in bf16 autocast with
  ``channels_last`` (``--compile`` adds ``torch.compile``), and a Deep CORAL and a DANN step
  through ``adapt.fit_adapt``.

    python benchmarks/gpu_check.py          # on a GPU machine (about 5 minutes on an H200)
    python benchmarks/gpu_check.py --cpu    # the same checks, small, on the CPU (checks the script)
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
from pathlib import Path

import torch

import tlearn
from tlearn import adapt, checkpoint, data, features, models, train

RESULTS: list[tuple[str, bool, str]] = []


def check(name: str):
    def wrap(fn):
        start = time.perf_counter()
        try:
            ok, detail = fn()
        except Exception as e:  # report and go on: one failure should not hide the others
            ok, detail = False, f"{type(e).__name__}: {e}"
        RESULTS.append((name, ok, f"{detail} ({time.perf_counter() - start:.1f} s)"))
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {RESULTS[-1][2]}", flush=True)
        return fn

    return wrap


def main() -> int:
    if "--cpu" in sys.argv:
        device = torch.device("cpu")
    elif torch.cuda.is_available():
        device = torch.device("cuda")
    else:
        print("no CUDA device: nothing to check (run with --cpu to exercise the script here)")
        return 0
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device {device} ({name}), torch {torch.__version__}, "
          f"autocast dtype {tlearn.runtime.amp_dtype(device)}")  # fmt: skip
    src = data.load_domain("synth", size=3000, seed=0)
    src_test = data.load_domain("synth", split="test", size=1000, seed=0)
    tgt = data.load_domain("uci", split="train")
    tgt_test = data.load_domain("uci", split="test")

    @check("fit with AMP learns; GPU checkpoint loads on CPU")
    def _():
        tlearn.seed_everything(0)
        net = models.DigitNet()
        hist = train.fit(net, src, epochs=3, lr=2e-3, device=device, progress=False)
        acc = train.evaluate(net, src_test, device=device)["accuracy"]
        with tempfile.TemporaryDirectory() as tmp:
            path = checkpoint.save_checkpoint(Path(tmp) / "net.pt", net)
            cpu_net = models.DigitNet()
            checkpoint.load_checkpoint(path, cpu_net)
        same = torch.equal(
            train.predict(net, src_test, device=device, amp=False),
            train.predict(cpu_net, src_test, device="cpu"),
        )
        finite = all(math.isfinite(v) for v in hist["train_loss"])
        return acc > 0.9 and same and finite, f"synth acc {acc:.3f}, cpu==gpu preds {same}"

    @check("features.extract under autocast ≈ float32")
    def _():
        net = models.DigitNet().eval()
        z_amp, y = features.extract(net, tgt_test, device=device, amp=True, progress=False)
        z_32, _ = features.extract(net, tgt_test, device=device, amp=False, progress=False)
        err = ((z_amp - z_32).norm() / z_32.norm()).item()
        ordered = torch.equal(y, tgt_test.labels)
        return err < 2e-2 and ordered and z_amp.dtype == torch.float32, f"rel. error {err:.2e}"

    @check("coral_loss and mmd on GPU under autocast ≈ CPU float64")
    def _():
        g = torch.Generator().manual_seed(0)
        xs, xt = torch.randn(512, 256, generator=g), torch.randn(512, 256, generator=g) + 0.3
        ref_c = adapt.coral_loss(xs.double(), xt.double()).item()
        ref_m = adapt.mmd(xs.double(), xt.double()).item()
        with tlearn.runtime.autocast(device):
            c = adapt.coral_loss(xs.to(device), xt.to(device)).item()
            m = adapt.mmd(xs.to(device), xt.to(device)).item()
        ok = abs(c - ref_c) <= 1e-3 * abs(ref_c) + 1e-7 and abs(m - ref_m) <= 1e-3 * abs(ref_m)
        return ok, f"coral {c:.6g} vs {ref_c:.6g}; mmd {m:.6g} vs {ref_m:.6g}"

    for method in ("coral", "mmd", "dann"):

        @check(f"fit_adapt({method!r}) on GPU")
        def _(method=method):
            tlearn.seed_everything(0)
            net = models.DigitNet()
            hist = adapt.fit_adapt(
                net, src, tgt, method=method, epochs=2, device=device, progress=False, seed=0
            )
            losses = [v for r in hist.records for k, v in r.items() if "loss" in k]
            acc = train.evaluate(net, tgt_test, device=device)["accuracy"]
            ok = all(math.isfinite(v) for v in losses)
            return ok, f"uci acc {acc:.3f} after 2 epochs, losses finite {ok}"

    @check("EfficientNet-Lite0 top-5 on china.jpg: GPU autocast = CPU float32")
    def _():
        from sklearn.datasets import load_sample_image

        net = models.load_backbone("efficientnet_lite0").eval()
        img = torch.from_numpy(load_sample_image("china.jpg")).permute(2, 0, 1).float() / 255
        x = torch.nn.functional.interpolate(img[None], size=(224, 224), mode="bilinear")
        x = (x - 0.5) / 0.5
        with torch.inference_mode():
            cpu_top = net(x).topk(5).indices
            with tlearn.runtime.autocast(device):
                gpu_top = net.to(device)(x.to(device)).float().topk(5).indices.cpu()
        same = set(cpu_top[0].tolist()) == set(gpu_top[0].tolist())
        return same, f"top-5 {cpu_top[0].tolist()} vs {gpu_top[0].tolist()}"

    throughput(device, small=device.type == "cpu", compile_=("--compile" in sys.argv))
    failed = [name for name, ok, _ in RESULTS if not ok]
    print(f"\n{len(RESULTS) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


def _images_per_second(step, batch: int, steps: int, device: torch.device) -> float:
    """Run ``step()`` a few times to warm up, then ``steps`` times; images per second."""
    for _ in range(3):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - start)


def throughput(device: torch.device, *, small: bool, compile_: bool) -> None:
    """images/s: ``train.fit`` vs a bare step; fp32 vs bf16 + channels_last; CORAL/DANN steps.

    The data are synthetic tensors already on the device (a DigitDataset holds them), so
    both loops measure the training step, not image decoding.
    """
    import torchvision

    from tlearn.data import DigitDataset

    arch, size, batch, steps = ("resnet18", 64, 16, 4) if small else ("resnet50", 224, 128, 30)
    g = torch.Generator().manual_seed(0)
    n = batch * (steps + 3)
    x = torch.rand(n, 3, size, size, generator=g).to(device)
    y = torch.randint(0, 10, (n,), generator=g).to(device)
    ds = DigitDataset(x, y)
    rows = []
    for label, amp, fmt in (
        ("fp32", False, torch.contiguous_format),
        ("bf16 + channels_last", True, torch.channels_last),
    ):
        if amp and tlearn.runtime.amp_dtype(device) is None:
            continue
        net = torchvision.models.get_model(arch, num_classes=10).to(device, memory_format=fmt)
        model = torch.compile(net) if compile_ else net
        opt = torch.optim.Adam(net.parameters(), lr=1e-4)
        order = iter(range(10**9))

        def bare_step(model=model, opt=opt, amp=amp, fmt=fmt, order=order):
            i = next(order) % (steps + 3)
            xb = x[i * batch : (i + 1) * batch].contiguous(memory_format=fmt)
            with tlearn.runtime.autocast(device, enabled=amp):
                loss = torch.nn.functional.cross_entropy(
                    model(xb).float(), y[i * batch : (i + 1) * batch]
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        bare = _images_per_second(bare_step, batch, steps, device)
        # the second epoch's time (History's "seconds"): the first one warms up, as above
        hist = train.fit(model, ds, epochs=2, batch_size=batch, lr=1e-4, device=device,
                         amp=amp, progress=False)  # fmt: skip
        rows.append((f"{arch} {size}px {label}", bare, n / hist.last["seconds"]))
        for method in ("coral", "dann"):
            hist = adapt.fit_adapt(net, ds, x, method=method, epochs=2, batch_size=batch,
                                   layer="avgpool", device=device, amp=amp, progress=False,
                                   reestimate_bn=False)  # fmt: skip
            rows.append((f"  fit_adapt {method} ({label})", bare, 2 * n / hist.last["seconds"]))
    print("\nthroughput (images/s; fit_adapt counts source and target images)")
    print(f"{'':40s} {'bare step':>10s} {'tlearn':>10s} {'ratio':>6s}")
    for name, bare, ours in rows:
        print(f"{name:40s} {bare:10.0f} {ours:10.0f} {ours / bare:6.2f}")
    fit_rows = [r for r in rows if not r[0].startswith("  ")]
    ok = all(ours / bare >= 0.9 for _, bare, ours in fit_rows)
    RESULTS.append(("fit reaches ≥ 0.9× a bare step's images/s", ok or small,
                    "measured" if not small else "CPU: timings not meaningful"))  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
