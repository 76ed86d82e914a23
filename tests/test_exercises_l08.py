"""Lesson 08's grader: the solution passes; the usual slips fail with the right hint."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import torch

from tlearn.exercises import l08

SOLUTION = (
    Path(__file__).resolve().parents[1] / "lessons" / "solutions" / "08_information_maximization.py"
)


def _solution():
    spec = importlib.util.spec_from_file_location("sol08", SOLUTION)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.information_maximization_loss


def _terms(logits, *, safe=True, base=math.e):
    p = logits.softmax(1)
    log_p = logits.log_softmax(1) if safe else p.log()
    row_entropy = -(p * log_p).sum(1) / math.log(base)
    p_bar = p.mean(0)
    entropy_of_mean = -torch.special.xlogy(p_bar, p_bar).sum() / math.log(base)
    return row_entropy, entropy_of_mean


def _fails(fn, capsys, *words):
    assert not l08.check_information_maximization(fn)
    out = capsys.readouterr().out
    for w in words:
        assert w in out, out


def test_the_solution_passes(capsys):
    assert l08.check_information_maximization(_solution())
    assert "all checks passed" in capsys.readouterr().out


def test_the_library_function_passes(capsys):
    from tlearn.adapt import information_maximization_loss

    assert l08.check_information_maximization(information_maximization_loss)


def test_a_flipped_sign_is_named(capsys):
    def fn(logits):
        h, hm = _terms(logits)
        return hm - h.mean()

    _fails(fn, capsys, "sign is flipped")


def test_the_mean_entropy_alone_is_named(capsys):
    _fails(lambda x: _terms(x)[0].mean(), capsys, "diversity term")


def test_the_diversity_term_alone_is_named(capsys):
    _fails(lambda x: -_terms(x)[1], capsys, "confidence term")


def test_entropy_of_the_mean_twice_is_named(capsys):
    def fn(logits):  # both terms computed as the entropy of the mean prediction
        _, hm = _terms(logits)
        return hm - hm

    _fails(fn, capsys, "mean of the entropies", "entropy of the mean")


def test_a_sum_over_rows_is_named(capsys):
    def fn(logits):
        h, hm = _terms(logits)
        return h.sum() - hm

    _fails(fn, capsys, "average them over the batch")


def test_a_base_2_logarithm_is_named(capsys):
    def fn(logits):
        h, hm = _terms(logits, base=2)
        return h.mean() - hm

    _fails(fn, capsys, "base 2")


def test_nan_on_confident_rows_is_named(capsys):
    def fn(logits):
        h, hm = _terms(logits, safe=False)
        return h.mean() - hm

    _fails(fn, capsys, "NaN", "log_softmax")


def test_a_float_result_and_a_vector_are_named(capsys):
    _fails(lambda x: float(_terms(x)[0].mean() - _terms(x)[1]), capsys, "torch tensor")
    _fails(lambda x: _terms(x)[0] - _terms(x)[1], capsys, "scalar")


def test_the_placeholder_and_an_exception_are_reported(capsys):
    _fails(lambda x: None, capsys, "NoneType")

    def boom(x):
        raise RuntimeError("oops")

    _fails(boom, capsys, "RuntimeError: oops")
