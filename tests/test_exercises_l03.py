"""Lesson 03's grader: the solution passes; the usual slips fail with the right hint."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

from tlearn.adapt import coral_loss
from tlearn.exercises import l03

SOLUTION = Path(__file__).resolve().parents[1] / "lessons" / "solutions" / "03_coral_loss.py"


def _solution():
    spec = importlib.util.spec_from_file_location("sol03", SOLUTION)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.my_coral_loss


def _cov(x, ddof=1):
    return (x - x.mean(0)).T @ (x - x.mean(0)) / (len(x) - ddof)


def test_solution_passes(capsys):
    assert l03.check_coral_loss(_solution())
    assert "all checks passed" in capsys.readouterr().out


def test_solution_does_not_call_the_library_loss():
    """The exercise forbids ``adapt.coral_loss``: its solution must not use it either."""
    names = {
        n.attr if isinstance(n, ast.Attribute) else n.id
        for n in ast.walk(ast.parse(SOLUTION.read_text()))
        if isinstance(n, ast.Attribute | ast.Name)
    }
    assert "coral_loss" not in names and "CORALLoss" not in names


def test_the_library_loss_passes(capsys):
    assert l03.check_coral_loss(coral_loss)


def test_typical_slips_fail_with_their_hint(capsys):
    def biased(zs, zt):  # ÷ n instead of ÷ (n − 1)
        d = zs.shape[1]
        return ((_cov(zs, 0) - _cov(zt, 0)) ** 2).sum() / (4 * d * d)

    def not_centred(zs, zt):
        d = zs.shape[1]
        return ((zs.T @ zs / (len(zs) - 1) - zt.T @ zt / (len(zt) - 1)) ** 2).sum() / (4 * d * d)

    def no_norm(zs, zt):
        return coral_loss(zs, zt) * 4 * zs.shape[1] ** 2

    def detached(zs, zt):
        return coral_loss(zs.detach(), zt.detach())

    cases = [
        (biased, "n − 1"),
        (not_centred, "centre"),
        (no_norm, "4·d²"),
        (detached, "differentiable"),
        (lambda zs, zt: None, "returned None"),
    ]
    for wrong, hint in cases:
        capsys.readouterr()
        assert not l03.check_coral_loss(wrong)
        assert hint in capsys.readouterr().out, hint


def test_an_error_is_reported_not_raised(capsys):
    def broken(zs, zt):
        raise KeyError("target labels")

    assert not l03.check_coral_loss(broken)
    assert "KeyError" in capsys.readouterr().out
