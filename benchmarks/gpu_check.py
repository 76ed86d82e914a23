"""A short check of tlearn's GPU paths, for a machine with CUDA (CI has none).

Runs in about a minute on one GPU and prints one line per check, PASS or FAIL, then exits
non-zero if anything failed:

* ``train.fit`` with mixed precision (bf16 or fp16 + GradScaler) learns, and a checkpoint
  saved from the GPU loads on the CPU with the same predictions;
* ``features.extract`` under autocast matches the float32 features;
* the losses (``coral_loss``, ``mmd``) under autocast on the GPU agree with float64 on the CPU;
* ``adapt.fit_adapt`` runs each method on the GPU and its losses stay finite;
* the offline ImageNet EfficientNet-Lite0 gives the same top-5 on the GPU under autocast.

    python benchmarks/gpu_check.py          # on a GPU machine
    python benchmarks/gpu_check.py --cpu    # the same checks on the CPU (checks the script)
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
from pathlib import Path

import torch

import tlearn
from tlearn import adapt, data, features, models, train

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
            path = train.save_checkpoint(Path(tmp) / "net.pt", net)
            cpu_net = models.DigitNet()
            train.load_checkpoint(path, cpu_net)
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

    failed = [name for name, ok, _ in RESULTS if not ok]
    print(f"\n{len(RESULTS) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
