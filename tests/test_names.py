"""Every ``tlearn`` name the README and the lessons mention resolves.

A reader copies what the README and the lessons write: a dotted name in prose
(``tlearn.studies.layers``), an import (``from tlearn.data import batches``), an attribute of an
imported module in code (``data.load_domain``), or a name in the README's table of modules.
Each one is looked up by importing the longest part that is a module and reading the rest as
attributes; that ``from tlearn import studies; studies.layers`` works without an import of
``tlearn.studies.layers`` is the lazy loaders' test, at the end.
"""

from __future__ import annotations

import ast
import importlib
import json
import pkgutil
import re
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
LESSONS = sorted((ROOT / "lessons").glob("*.ipynb"))
SOLUTIONS = sorted((ROOT / "lessons" / "solutions").glob("*.py"))

# ``tlearn.a.b`` in prose or code, not part of a path or URL (``…/tlearn.git``, ``tlearn/``).
DOTTED = re.compile(r"(?<![\w./-])tlearn(?:\.[A-Za-z_]\w*)+")
TOP_LEVEL = importlib.import_module("tlearn")._SUBMODULES
IDENTIFIER = re.compile(r"^([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)(?:\(.*\))?$")


# --------------------------------------------------------------------------- collecting names
def _notebook_cells(path: Path) -> list[tuple[str, str]]:
    """``(cell_type, source)`` of every cell of a notebook."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return [(c["cell_type"], "".join(c["source"])) for c in cells]


def _without_magics(code: str) -> str:
    """IPython lines (``%pip``, ``!ls``) commented out, so the cell parses as Python."""
    return "\n".join(
        "# " + line if line.lstrip().startswith(("%", "!")) else line for line in code.splitlines()
    )


def _attribute_chain(node: ast.Attribute) -> tuple[str, list[str]] | None:
    """``a.b.c`` → ``("a", ["b", "c"])``; None when the chain does not start at a name."""
    attrs: list[str] = []
    while isinstance(node, ast.Attribute):
        attrs.insert(0, node.attr)
        node = node.value
    return (node.id, attrs) if isinstance(node, ast.Name) else None


def names_in_code(code: str) -> set[str]:
    """Every tlearn name a piece of code imports or reads as an attribute of an import."""
    tree = ast.parse(_without_magics(code))
    found: set[str] = set()
    aliases: dict[str, str] = {}  # local name → the tlearn name it was imported as
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "tlearn":
            for a in node.names:
                found.add(f"{node.module}.{a.name}")
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "tlearn":
                    found.add(a.name)
                    aliases[a.asname or a.name.split(".")[0]] = a.asname and a.name or "tlearn"
    rebound = {  # a name assigned elsewhere in the code no longer (only) means the module
        n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    } | {a.arg for a in ast.walk(tree) if isinstance(a, ast.arg)}
    for node in ast.walk(tree):
        chain = _attribute_chain(node) if isinstance(node, ast.Attribute) else None
        if chain and chain[0] in aliases and chain[0] not in rebound:
            found.add(".".join([aliases[chain[0]], *chain[1]]))
    return found


def _python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.S)


def names_in_readme_table(markdown: str) -> set[str]:
    """Rows ``| `tlearn.x` | … `name` … |`` of the README's table of modules: each backticked
    identifier of the second column is an attribute of that row's module(s), or of one of
    their submodules named in the same row (``studies`` … ``real_images`` … ``lr_range_test``)."""
    found: set[str] = set()
    for line in markdown.splitlines():
        cols = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cols) != 2 or not cols[0].startswith("`tlearn."):
            continue
        modules = re.findall(r"`(tlearn(?:\.\w+)+)`", cols[0])
        tokens = [IDENTIFIER.match(t) for t in re.findall(r"`([^`]+)`", cols[1])]
        found.add(json.dumps({"modules": modules, "names": [t[1] for t in tokens if t]}))
    return found


def mentioned_names() -> dict[str, set[str]]:
    """Dotted names (``tlearn.…``) with the places that mention them."""
    where: dict[str, set[str]] = {}

    def note(names, place: str) -> None:
        for n in names:
            where.setdefault(n, set()).add(place)

    text = README.read_text(encoding="utf-8")
    note(DOTTED.findall(text), "README.md")
    for block in _python_blocks(text):
        note(names_in_code(block), "README.md")
    for nb in LESSONS:
        for kind, source in _notebook_cells(nb):
            note(DOTTED.findall(source), nb.name)
            if kind == "code":
                note(names_in_code(source), nb.name)
            else:
                for block in _python_blocks(source):
                    note(names_in_code(block), nb.name)
    for py in SOLUTIONS:
        source = py.read_text(encoding="utf-8")
        note(DOTTED.findall(source) + sorted(names_in_code(source)), f"solutions/{py.name}")
    return where


# --------------------------------------------------------------------------- resolving them
def resolve(dotted: str) -> object:
    """``tlearn.a.b.c``: import the longest prefix that is a module, then attribute access.

    (That a package's lazy loader reaches its submodules by attribute is tested apart.)"""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


def broken_names(dotted: Iterable[str], table: Iterable[dict]) -> list[str]:
    """The names that do not resolve, each with the reason.

    A table row's plain name must be an attribute of the row's module, or of a module the row
    named before it (``studies``: … ``real_images`` … ``lr_range_test``); a dotted one that starts with a tlearn module
    (``models.weights``) is resolved from ``tlearn``; environment variables
    (``TLEARN_CACHE``) and other dotted names (``model.train()``) are not tlearn names."""
    broken = []
    for name in dotted:
        try:
            resolve(name)
        except (AttributeError, ModuleNotFoundError) as e:
            broken.append(f"{name}: {type(e).__name__}: {e}")
    for row in table:
        modules = [resolve(name) for name in row["modules"]]
        for name in row["names"]:
            first = name.split(".")[0]
            if first.startswith("TLEARN_") or ("." in name and first not in TOP_LEVEL):
                continue
            if "." in name:
                found = [resolve("tlearn." + name)] if _resolves("tlearn." + name) else []
            else:
                found = [getattr(m, name) for m in modules if hasattr(m, name)]
            if not found:
                broken.append(f"{name}: not in {', '.join(row['modules'])} (README's table)")
            modules += [m for m in found if isinstance(m, ModuleType)]
    return broken


def _resolves(dotted: str) -> bool:
    try:
        resolve(dotted)
    except (AttributeError, ModuleNotFoundError):
        return False
    return True


# --------------------------------------------------------------------------- the tests
def test_the_collector_finds_each_kind_of_mention():
    code = (
        "import tlearn\nfrom tlearn import data, studies as st\nfrom tlearn.freeze import freeze\n"
        "tlearn.seed_everything(0)\nx = data.load_domain('synth').images\nst.layers.layer_sweep\n"
        "features = 3\nfeatures.real\n%pip install tlearn\n"
    )
    assert names_in_code(code) == {
        "tlearn",
        "tlearn.data",
        "tlearn.studies",
        "tlearn.freeze.freeze",
        "tlearn.seed_everything",
        "tlearn.data.load_domain",
        "tlearn.studies.layers",
        "tlearn.studies.layers.layer_sweep",
    }
    assert DOTTED.findall("see tlearn.studies.layers, not github.com/x/tlearn.git") == [
        "tlearn.studies.layers"
    ]
    rows = names_in_readme_table("| `tlearn.data` | `load_domain(name)`, `batches` (one) |")
    assert [json.loads(r) for r in rows] == [
        {"modules": ["tlearn.data"], "names": ["load_domain", "batches"]}
    ]


def test_a_dangling_name_is_reported():
    broken = broken_names(
        ["tlearn.data.load_domain", "tlearn.data.no_such_helper"],
        [{"modules": ["tlearn.data"], "names": ["few_shot", "no_such_either"]}],
    )
    assert len(broken) == 2 and "no_such_helper" in broken[0] and "no_such_either" in broken[1]


def test_every_tlearn_name_in_the_readme_and_the_lessons_resolves():
    where = mentioned_names()
    assert len(where) > 50  # the collector really read the README and the lessons
    table = [json.loads(r) for r in names_in_readme_table(README.read_text(encoding="utf-8"))]
    assert len(table) >= 10
    broken = broken_names(sorted(where), table)
    places = {b: sorted(where.get(b.split(":")[0], {"README.md"})) for b in broken}
    assert not broken, "\n".join(f"{b}  (in {', '.join(p)})" for b, p in places.items())


@pytest.mark.parametrize("package", ["tlearn", "tlearn.studies"])
def test_lazy_loaders_list_every_public_submodule(package):
    """``from tlearn import studies; studies.layers`` works for every module in the folder."""
    module = importlib.import_module(package)
    public = {m.name for m in pkgutil.iter_modules(module.__path__) if not m.name.startswith("_")}
    if package == "tlearn":  # reached by import, never loaded by the core (see GUIDE)
        public -= {"studies", "reproduce"}
    assert public <= set(module._SUBMODULES), sorted(public - set(module._SUBMODULES))
