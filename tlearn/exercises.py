"""Graders for the lessons' "Your turn" cells.

Each ``check_*`` function runs a student's implementation against tlearn's own on a few
inputs and prints friendly feedback: what was expected, what came back, and a hint. It
returns True when everything passed, so a notebook can also ``assert`` it.
"""

from __future__ import annotations

from collections.abc import Callable

__all__: list[str] = []


def _feedback(name: str, problems: list[str], hints: list[str] | None = None) -> bool:
    """Print a pass/fail report for exercise ``name``; return True when ``problems`` is empty."""
    if not problems:
        print(f"✅ {name}: all checks passed. Well done!")
        return True
    print(f"❌ {name}: {len(problems)} check(s) failed")
    for p in problems:
        print(f"   • {p}")
    for h in hints or []:
        print(f"   hint: {h}")
    return False


def _call(fn: Callable, *args, **kwargs):
    """Call the student's function; turn an exception into a readable problem string."""
    try:
        return fn(*args, **kwargs), None
    except Exception as e:  # noqa: BLE001 - we report any error to the student
        return None, f"your function raised {type(e).__name__}: {e}"


# --- exercises are added below, one section per lesson ---------------------------------
