"""Lesson 05's grader: the solution passes; the usual slips fail with the right hint."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from tlearn.exercises import l05

SOLUTION = Path(__file__).resolve().parents[1] / "lessons" / "solutions" / "05_entropy_weights.py"


def _solution():
    spec = importlib.util.spec_from_file_location("sol05", SOLUTION)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.entropy_weights


def _weights(*, log=torch.log, sign=-1.0, one=1.0, norm="share", safe=True):
    def fn(g_s, g_t):
        n = len(g_s) + len(g_t)
        ws = []
        for g in (g_s, g_t):
            plogp = torch.special.xlogy(g, g) if safe else g * torch.log(g)
            if log is not torch.log:
                plogp = plogp / torch.log(torch.tensor(2.0, dtype=g.dtype))
            h = -plogp.sum(1)
            ws.append(one + torch.exp(sign * h))
        if norm == "none":
            return torch.cat(ws)
        if norm == "global":
            w = torch.cat(ws)
            return w / w.sum()
        if norm == "unit":
            return torch.cat([w / w.sum() for w in ws])
        return torch.cat([w / w.sum() * len(g) / n for w, g in zip(ws, (g_s, g_t), strict=True)])

    return fn


def _fails(fn, capsys, *words):
    assert not l05.check_entropy_weights(fn)
    out = capsys.readouterr().out
    for w in words:
        assert w in out, out


def test_the_solution_passes(capsys):
    assert l05.check_entropy_weights(_solution())
    assert "all checks passed" in capsys.readouterr().out
    assert l05.check_entropy_weights(_weights())


def test_usual_slips(capsys):
    _fails(_weights(safe=False), capsys, "NaN")
    _fails(_weights(norm="none"), capsys, "normalise per domain")
    _fails(_weights(norm="global"), capsys, "each domain separately")
    _fails(_weights(norm="unit"), capsys, "its share")
    _fails(_weights(sign=1.0), capsys, "not exp(+H)")
    _fails(_weights(one=0.0), capsys, "without the 1")
    _fails(_weights(log=torch.log2), capsys, "nats")
    _fails(lambda g_s, g_t: torch.ones(3), capsys, "shape")


# --- the gradient reversal layer -----------------------------------------------------------

GRL_SOLUTION = SOLUTION.with_name("05_gradient_reversal.py")


def test_gradient_reversal_solution_and_the_library_pass(capsys):
    from tlearn.adapt.dann import _GradReverse, grad_reverse

    spec = importlib.util.spec_from_file_location("sol05grl", GRL_SOLUTION)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for fn in (mod.GradReverse, grad_reverse, _GradReverse):
        assert l05.check_gradient_reversal(fn)
    assert "all checks passed" in capsys.readouterr().out


class _NoSign(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lam):
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return ctx.lam * g, None


class _OneOutput(_NoSign):
    @staticmethod
    def backward(ctx, g):
        return -ctx.lam * g


class _Unchanged(_NoSign):
    @staticmethod
    def backward(ctx, g):
        return g, None


def test_gradient_reversal_slips_fail_with_their_hint(capsys):
    cases = [
        (_NoSign, "reverse the sign"),
        (_OneOutput, "(grad, None)"),
        (_Unchanged, "multiply it by −λ"),
        (lambda x, lam: x * 2, "forward is the identity"),
    ]
    for wrong, hint in cases:
        capsys.readouterr()
        assert not l05.check_gradient_reversal(wrong)
        assert hint in capsys.readouterr().out, hint
