"""Binder builds the environment the lessons were tested in: its pins agree with pyproject."""

from __future__ import annotations

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _requirements(lines: list[str]) -> dict[str, str]:
    """``{normalised name: specifier}`` of requirement lines (options and paths skipped)."""
    found = {}
    for line in lines:
        line = line.split("#")[0].strip()
        m = re.match(r"([A-Za-z0-9_.\-]+)\s*(.*)$", line)
        if line and not line.startswith(("-", ".")) and m:
            found[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(2).replace(" ", "")
    return found


def _pyproject_dependencies() -> dict[str, str]:
    text = (ROOT / "pyproject.toml").read_text()
    block = re.search(r"^dependencies = \[(.*?)^\]", text, re.M | re.S).group(1)
    return _requirements(re.findall(r'"([^"]+)"', block))


def test_binder_pins_agree_with_pyproject():
    lines = (ROOT / "binder" / "requirements.txt").read_text().splitlines()
    binder, project = _requirements(lines), _pyproject_dependencies()
    assert binder, "binder/requirements.txt names no package"
    for name, spec in binder.items():
        assert name in project, f"binder pins {name}, which pyproject.toml does not depend on"
        assert spec == project[name], f"{name}: binder {spec!r} vs pyproject {project[name]!r}"
    # everything else comes from the project itself
    assert any(line.strip() in ("-e .", ".") for line in lines), "binder must install tlearn"


def test_binder_warms_every_lesson_cache_at_build_time():
    post = ROOT / "binder" / "postBuild"
    assert os.access(post, os.X_OK), "repo2docker runs postBuild only when it is executable"
    commands = [line.strip() for line in post.read_text().splitlines()]
    warm = [c for c in commands if re.fullmatch(r"tlearn warm( --jobs ([1-9]|auto))?", c)]
    assert warm, "postBuild should build the lessons' caches (tlearn warm [--jobs N|auto])"


def test_the_parser_reads_what_pip_reads():
    assert _requirements(["torch >= 2.2  # CPU wheel", "-e .", "--extra-index-url x"]) == {
        "torch": ">=2.2"
    }
    assert _requirements(["Scikit_Learn>=1.3"]) == {"scikit-learn": ">=1.3"}
