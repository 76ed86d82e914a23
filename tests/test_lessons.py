"""The lessons as files: stored outputs a reader can trust, links that lead somewhere.

These read the notebooks' JSON (fast); running them is nbval's job (``pytest lessons``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tlearn import cli

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted((ROOT / "lessons").glob("[0-9][0-9]_*.ipynb"))


def _nb(path: Path) -> dict:
    return json.loads(path.read_text())


def _text(output: dict) -> str:
    parts = [output.get("text", "")]
    for mime, value in output.get("data", {}).items():
        if mime.startswith("text/"):
            parts.append(value)
    return "".join("".join(p) if isinstance(p, list) else p for p in parts)


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_stored_outputs_read_well(path):
    nb = _nb(path)
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    # stored with outputs (GitHub and Binder readers see them; nbval compares marked cells)
    assert sum(bool(c["outputs"]) for c in code) >= len(code) // 2, "store the lesson run"
    counts = [c["execution_count"] for c in code if c["execution_count"] is not None]
    assert counts == sorted(counts) and len(set(counts)) == len(counts), "run it top to bottom"
    for i, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []):
            assert out["output_type"] != "error", f"cell {i} stored an error"
            text = _text(out)
            # a tqdm bar stored as its first frame reads "0%| 0/4": run with TLEARN_PROGRESS=0
            assert not re.search(r"\d+%\|", text), f"cell {i} stored a progress bar: {text[:80]!r}"
            for private in ("/root/", "/home/", "/tmp/", "/Users/"):
                assert private not in text, f"cell {i} shows a local path ({private})"
    assert "/root/" not in json.dumps(nb["metadata"]) and "/home/" not in json.dumps(nb["metadata"])


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_no_cell_carries_execution_timestamps(path):
    """Clean metadata: Jupyter's per-cell ``metadata.execution`` timestamps change on every run
    and say nothing to a reader (execute with ``record_timing=False``, or strip them)."""
    stamped = [i for i, c in enumerate(_nb(path)["cells"]) if "execution" in c.get("metadata", {})]
    assert not stamped, f"cells {stamped} carry metadata.execution timestamps"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_launch_badges_install_cell_and_links_come_from_the_one_setting(path):
    """`tlearn links` writes them from [tool.tlearn] in pyproject.toml; nothing drifts."""
    links = cli.lesson_links(ROOT)[path.name]
    nb = _nb(path)
    cells = nb["cells"]
    assert links["launch"] in "".join(cells[0]["source"])
    first_code = next(c for c in cells if c["cell_type"] == "code")
    assert "".join(first_code["source"]) == links["install"]
    last_md = next(c for c in reversed(cells) if c["cell_type"] == "markdown")
    assert "".join(last_md["source"]).rstrip().endswith(links["nav"])
    repo, branch = cli.course_setting(ROOT)
    assert f"github/{repo}/blob/{branch}/lessons/{path.name}" in links["launch"]


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_every_relative_link_leads_to_a_file(path):
    for cell in _nb(path)["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        for target in re.findall(r"\]\(([^)\s]+)\)", "".join(cell["source"])):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # web links and anchors
            assert (path.parent / target.split("#")[0]).exists(), f"{path.name} → {target}"


def test_links_rewrite_a_fork_in_one_step(tmp_path):
    (tmp_path / "lessons").mkdir()
    for p in LESSONS[:2]:
        (tmp_path / "lessons" / p.name).write_text(p.read_text())
    text = (ROOT / "pyproject.toml").read_text()
    repo, _ = cli.course_setting(ROOT)
    (tmp_path / "pyproject.toml").write_text(text.replace(f'"{repo}"', '"teacher/course"'))
    assert cli.course_setting(tmp_path)[0] == "teacher/course"
    assert sorted(cli.write_links(tmp_path)) == [p.name for p in LESSONS[:2]]
    for p in LESSONS[:2]:
        nb = (tmp_path / "lessons" / p.name).read_text()
        assert "teacher/course" in nb and f"gh/{repo}/" not in nb
    assert cli.write_links(tmp_path) == []  # a second run changes nothing


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_the_claims_cell_says_run_from_the_top_when_run_first(path):
    """Run before the cells it builds on, the claims cell names what to do — not a NameError."""
    cells = _nb(path)["cells"]
    heading = next(
        i for i, c in enumerate(cells)
        if c["cell_type"] == "markdown" and "".join(c["source"]).lstrip().startswith("## Claims")
    )  # fmt: skip
    claims = "".join(cells[heading + 1]["source"])
    assert claims.startswith("from tlearn.exercises import run_from_top\n")
    namespace: dict = {}
    guard = claims.split("\n\n", 1)[1].split(")\n", 1)[0] + ")"  # the run_from_top(...) call
    exec("from tlearn.exercises import run_from_top", namespace)  # noqa: S102 - the lesson's own line
    with pytest.raises(Exception, match="Run the lesson from the top") as err:
        exec(guard, {**namespace, "globals": lambda: {}})  # noqa: S102 - a fresh kernel's globals
    assert type(err.value).__name__ == "RunFromTheTop"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_every_cell_that_shows_a_figure_stores_it(path):
    """A lesson executed with ``MPLBACKEND=Agg`` in the environment runs green but stores no
    figure (``plt.show()`` draws nowhere): GitHub and nbviewer readers would see none."""
    missing = []
    for i, cell in enumerate(_nb(path)["cells"]):
        if cell["cell_type"] == "code" and "plt.show()" in "".join(cell["source"]):
            if not any("image/png" in out.get("data", {}) for out in cell["outputs"]):
                missing.append(i)
    assert not missing, f"cells {missing} call plt.show() but store no image"
