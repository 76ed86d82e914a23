"""``python -m tlearn.reproduce``: the help documents every protocol; a smoke run offline."""

import math
import subprocess
import sys

import pytest
import torch

from tlearn import reproduce


@pytest.mark.slow  # a subprocess or a long run: the inner loop skips it
def test_help_documents_every_protocol_and_method():
    out = subprocess.run(
        [sys.executable, "-m", "tlearn.reproduce", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0
    for name, protocol in reproduce.PROTOCOLS.items():
        assert name in out.stdout and protocol.paper in out.stdout
    for method in reproduce.METHODS:
        assert method in out.stdout
    assert "No choice reads target labels" in out.stdout


@pytest.mark.slow  # a subprocess or a long run: the inner loop skips it
def test_digits_smoke_run_offline(capsys):
    results = reproduce.main(
        ["mnist-usps", "--method", "dann", "--fake", "--seeds", "0", "1", "--epochs", "1",
         "--no-progress", "--device", "cpu"]
    )  # fmt: skip
    [(shift, accuracies)] = results.items()
    assert shift == "MNIST→USPS" and len(accuracies) == 2
    assert all(0 <= a <= 100 for a in accuracies)
    out = capsys.readouterr().out
    assert "77.1 ± 1.8" in out and "ADDA" in out and "no target labels" in out


def test_office31_smoke_runs_all_six_shifts_offline(capsys):
    results = reproduce.main(
        ["office31", "--method", "coral", "--fake", "--seeds", "0", "--epochs", "1",
         "--no-progress", "--device", "cpu"]
    )  # fmt: skip
    assert list(results) == list(reproduce.OFFICE31_SHIFTS)
    out = capsys.readouterr().out
    assert "average" in out and "not published" in out  # no ResNet-50 CORAL number to cite


def test_bad_protocol_is_refused():
    with pytest.raises(SystemExit):
        reproduce.main(["mnist-svhn"])


class _OneClassLeNet(reproduce.LeNet):
    """The protocol's LeNet with a head bias so large that every image gets class 4."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        with torch.no_grad():
            self.head.bias[4] = 1e4


class _DivergingLeNet(reproduce.LeNet):
    """The protocol's LeNet whose logits turn NaN: the loss is NaN at the first step."""

    def forward(self, x):
        return super().forward(x) * math.nan


def test_report_prints_each_seed_and_names_the_collapsed_ones():
    outcomes = [
        reproduce.Outcome(0, 76.1),
        reproduce.Outcome(1, 9.9, "collapsed: class 3 takes 100% of 2007 target predictions"),
        reproduce.Outcome(2, 13.2, "collapsed: class 1 takes 100% of 2007 target predictions"),
    ]
    text = reproduce.report("mnist-usps", "mmd", {"MNIST→USPS": outcomes})
    assert "33.1 ± 37.3" in text and "76.1, 9.9*, 13.2*" in text
    warnings = [line for line in text.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 2
    assert "seed 1 (MNIST→USPS) collapsed: class 3" in warnings[0] and "seed 2" in warnings[1]
    healthy = reproduce.report("mnist-usps", "mmd", {"MNIST→USPS": outcomes[:1]})
    assert "WARNING" not in healthy and "*" not in healthy.splitlines()[-1]


def test_a_collapsed_seed_is_flagged_end_to_end(capsys, monkeypatch):
    monkeypatch.setattr(reproduce, "LeNet", _OneClassLeNet)
    results = reproduce.main(
        ["mnist-usps", "--method", "source", "--fake", "--seeds", "3", "--epochs", "1",
         "--no-progress", "--device", "cpu"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "WARNING: seed 3 (MNIST→USPS) collapsed: class 4 takes 100% of 100" in out
    assert results["MNIST→USPS"][0] < 30  # the share of class 4 among 100 test digits


def test_a_diverged_seed_is_reported_not_raised(capsys, monkeypatch):
    monkeypatch.setattr(reproduce, "LeNet", _DivergingLeNet)
    results = reproduce.main(
        ["mnist-usps", "--method", "source", "--fake", "--seeds", "0", "--epochs", "1",
         "--no-progress", "--device", "cpu"]
    )  # fmt: skip
    assert math.isnan(results["MNIST→USPS"][0])
    assert "WARNING: seed 0 (MNIST→USPS) diverged: the loss became nan" in capsys.readouterr().out
