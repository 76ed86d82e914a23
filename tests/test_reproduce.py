"""``python -m tlearn.reproduce``: the help documents every protocol; a smoke run offline."""

import subprocess
import sys

import pytest

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
