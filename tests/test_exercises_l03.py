"""Lesson 03's grader: the solution passes; the usual slips fail with the right hint."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F

from tlearn import adapt
from tlearn.exercises import l03

SOLUTION = Path(__file__).resolve().parents[1] / "lessons" / "solutions" / "03_coral_step.py"


def _solution():
    spec = importlib.util.spec_from_file_location("sol03", SOLUTION)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.coral_step


def _step(*, joint=False, zero_grad=True, weighted=True, on_logits=False, update=True, ret=True):
    def step(model, xs, ys, xt, optimizer, w):
        if joint:
            z = model.features(torch.cat([xs, xt]))
            zs, zt = z[: len(xs)], z[len(xs) :]
        else:
            zs, zt = model.features(xs), model.features(xt)
        class_loss = F.cross_entropy(model.head(zs), ys)
        align = (
            adapt.coral_loss(model.head(zs), model.head(zt))
            if on_logits
            else adapt.coral_loss(zs, zt)
        )
        loss = class_loss + (w if weighted else 1.0) * align
        if zero_grad:
            optimizer.zero_grad()
        if update:
            loss.backward()
            optimizer.step()
        return (class_loss.item(), align.item()) if ret else None

    return step


def _out(capsys, step) -> tuple[bool, str]:
    ok = l03.check_coral_step(step)
    return ok, capsys.readouterr().out


def test_solution_passes(capsys):
    ok, out = _out(capsys, _solution())
    assert ok and "all checks passed" in out


def test_typical_slips_fail_with_their_hint(capsys):
    cases = [
        (dict(zero_grad=False), "optimizer.zero_grad()"),
        (dict(weighted=False), "ignores w"),
        (dict(joint=True), "separately"),
        (dict(on_logits=True), "not the logits"),
        (dict(update=False), "optimizer.step()"),
        (dict(ret=False), "returned None"),
    ]
    for kwargs, hint in cases:
        ok, out = _out(capsys, _step(**kwargs))
        assert not ok, kwargs
        assert hint in out, (kwargs, out)


def test_an_error_is_reported_not_raised(capsys):
    def asks_for_labels(model, xs, ys, xt, optimizer, w):
        raise KeyError("target labels")

    ok, out = _out(capsys, asks_for_labels)
    assert not ok and "KeyError" in out and "no labels" in out


def test_the_reference_is_fit_adapts_objective():
    """The reference step's losses are those ``fit_adapt``'s objective computes."""
    from tlearn.adapt.trainer import AlignedObjective
    from tlearn.features import FeatureHook

    net, xs, ys, xt = l03._setup(0)
    twin = l03._setup(0)[0]
    with FeatureHook(twin, "features") as hook:
        obj = AlignedObjective(adapt.CORALLoss(), 5.0, iter([xt]), hook, "per_domain", "coral")
        total, _, logs = obj(twin, xs, ys, 0.0)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    cl, al = l03.reference_coral_step(net, xs, ys, xt, opt, 5.0)
    assert abs(cl - logs["class_loss"]) < 1e-5 and abs(al - logs["align_loss"]) < 1e-7
