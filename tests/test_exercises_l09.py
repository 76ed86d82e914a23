"""Lesson 09's grader: the solution passes; the usual slips fail with the right hint."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from tlearn.exercises import l09

SOLUTION = (
    Path(__file__).resolve().parents[1]
    / "lessons"
    / "solutions"
    / "09_soft_neighborhood_density.py"
)


def _solution():
    spec = importlib.util.spec_from_file_location("sol09", SOLUTION)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.snd


def _snd(probs, tau, *, normalise=True, diagonal=False, scale=None, reduce=np.mean, log=np.log,
         stable=True):  # fmt: skip
    """A student's SND, written independently of the grader, with one thing changed."""
    p = probs / np.linalg.norm(probs, axis=1, keepdims=True) if normalise else probs
    s = p @ p.T
    s = s / tau if scale is None else scale(s, tau)
    if not diagonal:
        s[np.eye(len(s), dtype=bool)] = -np.inf
    if stable:
        s = s - s.max(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        e = np.exp(s)
        q = e / e.sum(1, keepdims=True)
        h = -np.nansum(q * log(q), axis=1)
    return float(reduce(h))


def _fails(fn, capsys, *words):
    assert not l09.check_snd(fn)
    out = capsys.readouterr().out
    for w in words:
        assert w in out, out


def test_the_solution_passes(capsys):
    assert l09.check_snd(_solution())
    assert "all checks passed" in capsys.readouterr().out


def test_the_library_function_and_an_independent_version_pass(capsys):
    from tlearn.adapt.selection import snd

    assert l09.check_snd(snd)
    assert l09.check_snd(lambda p, t: _snd(p, t))


def test_the_diagonal_kept_is_named(capsys):
    _fails(lambda p, t: _snd(p, t, diagonal=True), capsys, "diagonal is included")


def test_rows_not_normalised_are_named(capsys):
    _fails(lambda p, t: _snd(p, t, normalise=False), capsys, "not L2-normalised")


def test_a_multiplied_or_missing_temperature_is_named(capsys):
    _fails(lambda p, t: _snd(p, t, scale=lambda s, tau: s * tau), capsys, "multiplied by τ")
    _fails(lambda p, t: _snd(p, t, scale=lambda s, tau: s), capsys, "temperature is missing")


def test_a_sum_a_base_2_log_and_a_flipped_sign_are_named(capsys):
    _fails(lambda p, t: _snd(p, t, reduce=np.sum), capsys, "*mean* over the rows")
    _fails(lambda p, t: _snd(p, t, log=np.log2), capsys, "base 2")
    _fails(lambda p, t: -_snd(p, t), capsys, "sign is flipped")


def test_an_overflow_is_named(capsys):
    _fails(lambda p, t: _snd(p, t, stable=False), capsys, "overflows")


def test_the_placeholder_an_array_and_an_exception_are_reported(capsys):
    _fails(lambda p, t: None, capsys, "one number")
    _fails(lambda p, t: np.ones(len(p)), capsys, "one number")

    def boom(p, t):
        raise RuntimeError("oops")

    _fails(boom, capsys, "RuntimeError: oops")
