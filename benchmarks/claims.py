"""How often does each lesson's claim hold? Every lesson over other seed sets and thread counts.

Each lesson ends with a claims cell (``tlearn.studies.claims.check``). A claim belongs in a
lesson only if it is a finding about the methods, not about one draw: this script runs the
lessons from a fresh kernel, each (seed set, thread count) with its own empty cache — cold,
lessons in order, so 04 and 05 read the runs 03 trained, as a student's first Run All does —
with ``TLEARN_CLAIMS=report`` so every claim is evaluated, and counts, per claim, the runs in
which it held.

    python benchmarks/claims.py                                  # the README's table
    python benchmarks/claims.py --lessons 00 01 --threads 1 --seed-sets "3 4 5" "6 7 8"

Seed sets replace the ``SEEDS = [...]`` line of each lesson's parameters cell (and lesson 01's
``THREADS``); ``TLEARN_THREADS`` sets torch's thread count for the others. Results are appended
run by run to ``benchmarks/results/claims.json`` (``--out``), so an interrupted run keeps what
it measured, and ``--table`` prints the table from that file alone. ``--cache DIR`` runs on a
copy of the cache an earlier cold run filled (to re-evaluate a restated sentence on the same
numbers without retraining); its records say so, and ``--keep-caches DIR`` keeps each cold
run's cache for that. It is long, so it is not part of the test suite: per seed set, the ten
lessons took about 30 minutes at 2 threads and 55–90 at 1 thread on a 2-core machine that was
also running other work (each record keeps its seconds); lessons 03–05 make 36 runs, 08
and 09 start 30 more from their source-only networks.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import nbformat
from nbclient import NotebookClient

import tlearn

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "lessons").glob("0*.ipynb"))
DEFAULT_SEED_SETS = ["3 4 5", "6 7 8", "9 10 11", "12 13 14", "15 16 17"]
DUMP = (
    "import json\n"
    "from tlearn.studies import claims as _claims\n"
    "print('CLAIMS-JSON ' + json.dumps(_claims.LAST))"
)


def with_parameters(nb, seeds: list[int], threads: int):
    """A copy of ``nb`` whose parameters cell uses ``seeds`` (and ``threads``), plus a dump cell."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    cell = next(c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", []))
    source, n = re.subn(r"^SEEDS = \[[^\]]*\]", f"SEEDS = {seeds}", cell.source, flags=re.M)
    if n != 1:
        raise ValueError("the parameters cell has no `SEEDS = [...]` line")
    cell.source = re.sub(r"^THREADS = \d+", f"THREADS = {threads}", source, flags=re.M)
    nb.cells.append(nbformat.v4.new_code_cell(DUMP))
    return nb


def run_lesson(path: Path, seeds: list[int], threads: int, cache: str) -> dict:
    """Execute one lesson; return its claims' verdicts (or the error that stopped it)."""
    nb = with_parameters(nbformat.read(path, as_version=4), seeds, threads)
    env = {"TLEARN_CACHE": cache, "TLEARN_THREADS": str(threads), "TLEARN_CLAIMS": "report",
           "MPLBACKEND": "Agg"}  # fmt: skip
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits this process's environment
    t0 = time.perf_counter()
    try:
        NotebookClient(nb, timeout=1800, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()  # fmt: skip
        error = None
    except Exception as exc:  # a cell failed: the claims after it were not evaluated
        error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:300]}"
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    claims = {}
    for out in nb.cells[-1].get("outputs", []):
        for line in out.get("text", "").splitlines():
            if line.startswith("CLAIMS-JSON "):
                claims = json.loads(line[len("CLAIMS-JSON ") :])
    return {"seconds": round(time.perf_counter() - t0, 1), "claims": claims, "error": error}


def asserted_now(lessons=LESSONS) -> dict[str, list[str]]:
    """Per lesson, the ✓/✗ lines its stored claims cell (the one that calls ``check(…,
    default_data=…)``) prints: the sentences it asserts today."""
    printed = {}
    for path in lessons:
        nb = nbformat.read(path, as_version=4)
        printed[path.name[:2]] = [
            line
            for cell in nb.cells if cell.cell_type == "code" and "default_data=" in cell.source
            for out in cell.get("outputs", [])
            for line in out.get("text", "").splitlines()
            if line[:2] in ("✓ ", "✗ ")
        ]  # fmt: skip
    return printed


def _is_current(lesson: str, sentence: str, printed: dict[str, list[str]]) -> bool:
    return any(line[2:].startswith(f"{sentence}: ") for line in printed.get(lesson, []))


def verdicts(records: list[dict]) -> dict[tuple, tuple[bool, str]]:
    """``(lesson, seeds, threads, sentence) → (held, evidence)``, one per sentence and run: a
    later record of the same seed set and threads (``--cache`` re-evaluating it after a
    sentence was restated, or a re-run after a fix) replaces an earlier one's verdicts."""
    out = {}
    for r in records:
        for sentence, (ok, evidence) in r["claims"].items():
            out[(r["lesson"], tuple(r["seeds"]), r["threads"], sentence)] = (bool(ok), evidence)
    return out


def table(records: list[dict], printed: dict[str, list[str]]) -> str:
    """Markdown: per lesson and claim, how many runs it held in, and the runs that failed —
    the sentences the lessons assert now first, then those since restated or dropped."""
    held, runs, failed_in = defaultdict(int), defaultdict(int), defaultdict(list)
    errors = [r for r in records if r["error"]]
    for (lesson, seeds, threads, sentence), (ok, evidence) in verdicts(records).items():
        key = (lesson, sentence)
        runs[key] += 1
        held[key] += ok
        if not ok:
            failed_in[key].append(f"seeds {list(seeds)}, {threads} thread(s): {evidence}")
    lines = []
    for current in (True, False):
        keys = [k for k in sorted(runs) if _is_current(*k, printed) == current]
        title = "asserted now" if current else "restated or dropped since (not asserted now)"
        lines += ["", f"| lesson | claim, {title} | held |", "|---|---|---|"]
        for key in keys:
            mark = "" if held[key] == runs[key] else " ✗"
            lines.append(f"| {key[0]} | {key[1]} | {held[key]}/{runs[key]}{mark} |")
    for key, fails in sorted(failed_in.items()):
        now = "asserted now" if _is_current(*key, printed) else "no longer asserted"
        lines.append(f"\n{key[0]} · {key[1]} ({now}) failed in: " + "; ".join(fails))
    for r in errors:
        lines.append(
            f"\n{r['lesson']} seeds {r['seeds']}, {r['threads']} thread(s) stopped: {r['error']}"
        )
    return "\n".join(lines).strip()


def version(record: dict) -> str:
    """The tlearn version a record was measured with (records before 0.2 did not store it)."""
    return record.get("tlearn", "0.1.0")


def summary(records: list[dict], printed: dict[str, list[str]]) -> str:
    """Markdown: per lesson, the sentences it asserts now and how many of them the harness
    ran (a sentence restated after the last run has no record yet), the runs (seed set ×
    threads) that evaluated them, how many of those checks held, and how many of the runs
    used this tlearn version (a new version can change every number, e.g. 0.2's layout)."""
    lines = [f"| lesson | sentences asserted now: run here | runs: seed sets × threads | "
             f"checks held | runs on tlearn {tlearn.__version__} |",
             "|---|---|---|---|---|"]  # fmt: skip
    for lesson in sorted({r["lesson"] for r in records}):
        runs = [r for r in records if r["lesson"] == lesson]
        done = [r for r in runs if not r["error"]]
        held = [ok for (n, *_, s), (ok, _) in verdicts(done).items()
                if n == lesson and _is_current(lesson, s, printed)]  # fmt: skip
        sentences = {s for r in done for s in r["claims"] if _is_current(lesson, s, printed)}
        sets = sorted({(tuple(r["seeds"]), r["threads"]) for r in done})
        where = f"{len(sets)}: " + "; ".join(
            f"{' '.join(map(str, s))} ({t} thread{'s' * (t > 1)})" for s, t in sets
        )
        stopped = f" ({len(runs) - len(done)} stopped by an error)" if len(done) < len(runs) else ""
        asserted = f"{len(printed.get(lesson, []))}: {len(sentences)}"
        now = len({(tuple(r["seeds"]), r["threads"]) for r in done
                   if version(r) == tlearn.__version__})  # fmt: skip
        lines.append(
            f"| {lesson} | {asserted} | {where}{stopped} | {sum(held)}/{len(held)} | {now} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lessons", nargs="*", default=[p.name[:2] for p in LESSONS])
    parser.add_argument("--seed-sets", nargs="*", default=DEFAULT_SEED_SETS,
                        help='each a quoted list of seeds, e.g. "3 4 5"')  # fmt: skip
    parser.add_argument("--threads", nargs="*", type=int, default=[1, 2])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/claims.json")
    parser.add_argument("--table", action="store_true", help="print the table of --out and stop")
    parser.add_argument(
        "--cache",
        type=Path,
        help="re-evaluate on the cache an earlier cold run of "
        "the same seeds and threads filled (its copy; e.g. after a sentence was "
        "restated) instead of an empty one: nothing retrains, the record says so",
    )
    parser.add_argument(
        "--keep-caches",
        type=Path,
        metavar="DIR",
        help="run cold as usual, but in DIR/seeds-S-threads-T (kept, and must not exist yet) "
        "instead of a temporary folder, so a restated sentence can later be re-evaluated "
        "with --cache on a copy",
    )
    args = parser.parse_args(argv)
    records = json.loads(args.out.read_text()) if args.out.exists() else []
    if args.table:
        printed = asserted_now()
        print(summary(records, printed) + "\n\n" + table(records, printed))
        return
    lessons = [p for p in LESSONS if p.name[:2] in args.lessons]
    t_start = time.perf_counter()
    for threads in args.threads:
        for seed_set in args.seed_sets:
            seeds = [int(s) for s in seed_set.split()]
            with tempfile.TemporaryDirectory(prefix="tlearn-claims-") as cache:
                cache = str(args.cache) if args.cache else cache
                if args.keep_caches:
                    kept = args.keep_caches / f"seeds-{'-'.join(map(str, seeds))}-threads-{threads}"
                    kept.mkdir(parents=True)  # an existing folder would not be a cold run
                    cache = str(kept)
                for path in lessons:
                    r = run_lesson(path, seeds, threads, cache)
                    r.update(lesson=path.name[:2], seeds=seeds, threads=threads,
                             tlearn=tlearn.__version__)  # fmt: skip
                    if args.cache:
                        r["cache"] = f"re-evaluated on the cache of an earlier cold run ({cache})"
                    held = sum(ok for ok, _ in r["claims"].values())
                    print(f"{path.name[:2]} seeds {seeds} threads {threads}: {held}/"
                          f"{len(r['claims'])} held, {r['seconds']:.0f} s"
                          + (f" — {r['error']}" if r["error"] else ""), flush=True)  # fmt: skip
                    records.append(r)
                    args.out.parent.mkdir(parents=True, exist_ok=True)
                    args.out.write_text(json.dumps(records, indent=1, ensure_ascii=False))
    print(f"\nwall time {time.perf_counter() - t_start:.0f} s\n")
    printed = asserted_now()
    print(summary(records, printed) + "\n\n" + table(records, printed))


if __name__ == "__main__":
    main()
