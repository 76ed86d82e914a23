import subprocess
import sys

import pytest

from tlearn import cli


def test_info_reports_offline_resources(capsys):
    facts = cli.info()
    assert facts["domain synth"] == "available" and facts["domain uci"] == "available"
    assert facts["device"].startswith(("cpu", "cuda", "mps"))
    assert "available" in facts["weights efficientnet_lite0"]
    assert cli.main(["info"]) == 0
    assert "torchvision" in capsys.readouterr().out


@pytest.mark.slow
def test_demo_quick_prints_source_and_target_accuracy(capsys):
    rows = cli.demo(progress=False, quick=True, all_methods=True)
    out = capsys.readouterr().out
    assert rows[0]["strategy"].startswith("source only")
    for key in ("synth test", "uci test"):
        assert rows[0][key].endswith("%") and 0 <= float(rows[0][key][:-1]) <= 100
    assert [r["uci labels"] for r in rows] == ["0", "5/class", "5/class", "5/class"] + ["none"] * 5
    for name in ("DANN", "CDAN", "TENT"):
        assert any(name in r["strategy"] for r in rows), name
    assert "uci test" in out and "Deep CORAL" in out


@pytest.mark.slow  # a subprocess or a long run: the inner loop skips it
def test_python_dash_m_entry_point():
    done = subprocess.run(
        [sys.executable, "-m", "tlearn", "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and "info" in done.stdout and "demo" in done.stdout


def test_links_leaves_lessons_that_already_agree_untouched(tmp_path):
    """On a copy of the repository's lessons, `tlearn links` finds nothing to change (lessons
    store their sources as lists of lines; comparing them with joined strings rewrote every
    lesson)."""
    import shutil
    from pathlib import Path

    from tlearn.cli import write_links

    root = Path(__file__).resolve().parents[1]
    shutil.copy(root / "pyproject.toml", tmp_path)
    shutil.copytree(root / "lessons", tmp_path / "lessons")
    before = {p.name: p.read_bytes() for p in (tmp_path / "lessons").glob("*.ipynb")}
    assert write_links(tmp_path) == []
    assert {p.name: p.read_bytes() for p in (tmp_path / "lessons").glob("*.ipynb")} == before
