"""Lesson 04's grader: the solution passes; the usual slips fail with the right hint."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tlearn.exercises import l04

SOLUTION = Path(__file__).resolve().parents[1] / "lessons" / "solutions" / "04_mmd_estimates.py"


def _solution():
    spec = importlib.util.spec_from_file_location("sol04", SOLUTION)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.mmd_estimates


def _off(k):
    return k.sum() - k.diagonal().sum()


def test_the_solution_passes(capsys):
    assert l04.check_mmd_estimates(_solution())
    assert "all checks passed" in capsys.readouterr().out


def _fails_with(fn, capsys, *words):
    assert not l04.check_mmd_estimates(fn)
    out = capsys.readouterr().out
    for w in words:
        assert w in out, out
    return out


def test_diagonals_kept_in_the_unbiased_estimate(capsys):
    def fn(k_ss, k_tt, k_st):
        b = k_ss.mean() + k_tt.mean() - 2 * k_st.mean()
        return b, b

    _fails_with(fn, capsys, "unbiased estimate", "leaves out the diagonals")


def test_divided_by_m_squared(capsys):
    def fn(k_ss, k_tt, k_st):
        m, n = len(k_ss), len(k_tt)
        b = k_ss.mean() + k_tt.mean() - 2 * k_st.mean()
        return b, _off(k_ss) / m**2 + _off(k_tt) / n**2 - 2 * k_st.mean()

    _fails_with(fn, capsys, "m(m−1) entries")


def test_sizes_swapped(capsys):
    def fn(k_ss, k_tt, k_st):
        m, n = len(k_ss), len(k_tt)
        b = k_ss.mean() + k_tt.mean() - 2 * k_st.mean()
        return b, _off(k_ss) / (n * (n - 1)) + _off(k_tt) / (m * (m - 1)) - 2 * k_st.mean()

    _fails_with(fn, capsys, "its own size")


def test_cross_term_once(capsys):
    def fn(k_ss, k_tt, k_st):
        return k_ss.mean() + k_tt.mean() - k_st.mean(), 0.0

    _fails_with(fn, capsys, "biased estimate", "counts twice")


def test_swapped_order_and_none(capsys):
    sol = _solution()
    _fails_with(lambda *k: sol(*k)[::-1], capsys, "swapped")
    _fails_with(lambda *k: None, capsys, "returned None")


def test_clamped_unbiased(capsys):
    sol = _solution()

    def fn(*k):
        b, u = sol(*k)
        return b, max(float(u), 0.0)

    _fails_with(fn, capsys, "do not clamp")  # the second case's unbiased MMD² is negative
