"""torchrun, unchanged scripts: 2 CPU processes (Gloo) against one process, same global batch."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from tlearn import data, distributed

SCRIPT = textwrap.dedent(
    """
    import os, sys
    import torch
    from torch import nn
    from tlearn import adapt, data, train

    out, batch_size = sys.argv[1], int(sys.argv[2])
    rank = int(os.environ.get("RANK", "0"))
    src = data.load_domain("synth", size=400, seed=0)
    tgt = data.load_domain("uci", size=300)
    test = data.load_domain("synth", "test", size=300, seed=0)

    def net():
        torch.manual_seed(0)
        features = nn.Sequential(nn.Flatten(), nn.Linear(1024, 64), nn.BatchNorm1d(64), nn.ReLU())
        return nn.Sequential(features, nn.Linear(64, 10))

    model = net()
    hist = train.fit(model, src, epochs=6, lr=3e-3, batch_size=batch_size, seed=0,
                     progress=False, device="cpu")
    aligned = net()
    adapt.fit_adapt(aligned, src, tgt, "coral", layer="0", epochs=1, batch_size=batch_size,
                    seed=0, progress=False, device="cpu")
    try:  # three images, two processes: more processes than batches
        linear = nn.Sequential(nn.Flatten(), nn.Linear(1024, 10))
        train.fit(linear, data.DigitDataset(src.images[:3], src.labels[:3]), epochs=1,
                  drop_last=False, progress=False, device="cpu")
        error = ""
    except ValueError as e:
        error = str(e)
    torch.save({"fit": model.state_dict(), "adapt": aligned.state_dict(), "records": hist.records,
                "accuracy": train.evaluate(model, test, device="cpu")["accuracy"],
                "error": error}, f"{out}/rank{rank}.pt")
    """
)


@pytest.mark.slow  # a subprocess or a long run: the inner loop skips it
def test_two_gloo_processes_match_one_process(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        "OMP_NUM_THREADS": "1",
        "TLEARN_THREADS": "1",
        "TLEARN_DIST_TIMEOUT": "60",
    }
    env.pop("WORLD_SIZE", None)
    (tmp_path / "two").mkdir()
    (tmp_path / "one").mkdir()
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    runs = [
        subprocess.Popen([*torchrun, str(script), str(tmp_path / "two"), "32"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True),
        subprocess.Popen([sys.executable, str(script), str(tmp_path / "one"), "64"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True),
    ]  # fmt: skip
    for run in runs:
        output, _ = run.communicate(timeout=120)
        assert run.returncode == 0, output[-3000:]
    r0, r1 = (torch.load(tmp_path / "two" / f"rank{r}.pt") for r in (0, 1))
    one = torch.load(tmp_path / "one" / "rank0.pt")
    for key in ("fit", "adapt"):  # parameters *and* BatchNorm statistics identical across ranks
        for name, value in r0[key].items():
            assert torch.equal(value, r1[key][name]), (key, name)
    for a, b in zip(r0["records"], r1["records"], strict=True):  # metrics were all-reduced
        assert a["train_loss"] == b["train_loss"] and a["train_accuracy"] == b["train_accuracy"]
    assert r0["accuracy"] == r1["accuracy"] > 0.3  # chance: 0.1
    assert abs(r0["accuracy"] - one["accuracy"]) < 0.1, (r0["accuracy"], one["accuracy"])
    assert abs(r0["records"][-1]["train_loss"] - one["records"][-1]["train_loss"]) < 0.25
    assert "2 processes but 3 images make only 1 batch(es)" in r0["error"]
    assert one["error"] == ""


def test_shards_are_disjoint_and_cover_the_epoch():
    ds = data.load_domain("uci", split="test")  # 540 images
    g = [torch.Generator().manual_seed(7) for _ in range(3)]
    full = torch.cat([y for _, y in data.base.batches(ds, 50, shuffle=True, generator=g[0])])
    parts = [
        torch.cat([y for _, y in data.base.batches(ds, 50, shuffle=True, generator=g[r + 1],
                                                   rank=r, world_size=2)])
        for r in range(2)
    ]  # fmt: skip
    assert len(parts[0]) == len(parts[1]) == 270
    assert torch.equal(torch.stack(parts, 1).reshape(-1), full)  # ranks deal the order in turn
    assert distributed.distributed("cpu") == (0, 1)  # outside torchrun: one process, nothing set up
