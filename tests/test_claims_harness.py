"""benchmarks/claims.py: the harness reads which sentences a lesson asserts today from the stored
notebook, and counts only those as the lesson's claims (restated ones are listed apart)."""

import importlib.util
from pathlib import Path

import nbformat
import pytest

import tlearn

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def harness():
    spec = importlib.util.spec_from_file_location("claims_harness", ROOT / "benchmarks/claims.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _lesson(tmp_path: Path, printed: str) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("SEEDS = [0, 1, 2]\nTHREADS = 2")
    params.metadata["tags"] = ["parameters"]
    exercise = nbformat.v4.new_code_cell("grade(answer)")  # a grader's ✓ is not a claim
    exercise.outputs = [nbformat.v4.new_output("stream", name="stdout", text="✓ correct: 1\n")]
    claims = nbformat.v4.new_code_cell("check(claims, default_data=True)")
    claims.outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed)]
    nb.cells = [params, exercise, claims]
    path = tmp_path / "03_lesson.ipynb"
    nbformat.write(nb, path)
    return path


def _record(seeds, threads, claims):
    return {"lesson": "03", "seeds": seeds, "threads": threads, "error": None,
            "claims": claims, "seconds": 1.0}  # fmt: skip


def test_only_the_sentences_the_stored_lesson_prints_count(harness, tmp_path):
    path = _lesson(tmp_path, "✓ A beats B by 10+ points: +12.0\n✗ C: a colon inside: 0.4\nnoise\n")
    printed = harness.asserted_now([path])
    records = [
        _record(
            [3, 4, 5],
            1,
            {
                "A beats B by 15+ points": [False, "+12.0"],
                "A beats B by 10+ points": [True, "+12.0"],
                "C: a colon inside": [True, "0.4"],
            },
        ),  # fmt: skip
        _record([6, 7, 8], 2, {"A beats B by 10+ points": [False, "+8.0"]}),
    ]
    summary = harness.summary(records, printed)
    assert "| 03 | 2: 2 | 2: 3 4 5 (1 thread); 6 7 8 (2 threads) | 2/3 | 0 |" in summary
    current = {**records[1], "tlearn": tlearn.__version__}  # a record that names this version
    assert "| 2/3 | 1 |" in harness.summary([records[0], current], printed)
    again = _record([6, 7, 8], 2, {"A beats B by 10+ points": [True, "+11.0"]})  # re-evaluated
    assert "| 03 | 2: 2 | 2: 3 4 5 (1 thread); 6 7 8 (2 threads) | 3/3 |" in harness.summary(
        [*records, again], printed
    )  # the later record of a run replaces its verdicts; the run still counts once
    restated = harness.asserted_now(
        [_lesson(tmp_path, "✓ A beats B by 10+ points: +12.0\n✓ D: 1\n")]
    )
    assert "| 03 | 2: 1 |" in harness.summary(records[1:], restated)  # D was never run
    table = harness.table(records, printed)
    now, retired = table.split("restated or dropped")
    assert "| 03 | A beats B by 10+ points | 1/2 ✗ |" in now
    assert "| 03 | C: a colon inside | 1/1 |" in now
    assert "15+" not in now and "| 03 | A beats B by 15+ points | 0/1 ✗ |" in retired


def test_the_seed_sets_replace_the_parameters_cell(harness, tmp_path):
    nb = nbformat.read(_lesson(tmp_path, ""), as_version=4)
    assert harness.asserted_now([tmp_path / "03_lesson.ipynb"])["03"] == []
    run = harness.with_parameters(nb, [9, 10, 11], 1)
    assert run.cells[0].source == "SEEDS = [9, 10, 11]\nTHREADS = 1"
    assert "CLAIMS-JSON" in run.cells[-1].source
    assert nb.cells[0].source == "SEEDS = [0, 1, 2]\nTHREADS = 2"  # the stored lesson is untouched
