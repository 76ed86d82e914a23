"""Lesson 02: the k-NN grader accepts the solution and explains the usual slips; the lesson's
claims cell fails when one of its sentences is false."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
import torch

from tlearn import probes
from tlearn.exercises import l02

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = runpy.run_path(str(ROOT / "lessons" / "solutions" / "02_knn_predict.py"))


def test_reference_agrees_with_the_knn_probe():
    """knn_predict is what probes.knn_probe (scikit-learn, cosine metric) predicts."""
    for Ztr, ytr, Zte, k in l02._cases():
        clf = probes.knn_probe(Ztr, ytr, Zte, torch.zeros(len(Zte), dtype=torch.long), k=k)
        want = torch.as_tensor(clf["classifier"].predict(Zte.numpy()))
        assert torch.equal(l02.knn_predict(Ztr, ytr, Zte, k), want)


def test_the_solution_passes(capsys):
    assert l02.check_knn_predict(SOLUTION["my_knn_predict"])
    assert "all checks passed" in capsys.readouterr().out


def _normalise(Z):
    return Z / Z.norm(dim=1, keepdim=True)


def _vote(y, nearest):
    return torch.nn.functional.one_hot(y[nearest], int(y.max()) + 1).sum(1).argmax(1)


WRONG = {
    "Euclidean distance": (
        lambda a, y, b, k: _vote(y, torch.cdist(b, a).topk(k, largest=False).indices),
        "closest in Euclidean distance",
    ),
    "raw dot product": (
        lambda a, y, b, k: _vote(y, (b @ a.T).topk(k).indices),
        "raw dot product",
    ),
    "least similar": (
        lambda a, y, b, k: _vote(
            y, (_normalise(b) @ _normalise(a).T).topk(k, largest=False).indices
        ),
        "*least* similar",
    ),
    "k ignored": (
        lambda a, y, b, k: y[(_normalise(b) @ _normalise(a).T).argmax(1)],
        "single nearest neighbour",
    ),
    "positions, not labels": (
        lambda a, y, b, k: (_normalise(b) @ _normalise(a).T).argmax(1),
        "*position* of the nearest",
    ),
    "no return": (lambda a, y, b, k: None, "returned None"),
    "one label per neighbour": (
        lambda a, y, b, k: y[(_normalise(b) @ _normalise(a).T).topk(k).indices],
        "expected",
    ),
    "raises": (lambda a, y, b, k: a.foo, "raised AttributeError"),
}


@pytest.mark.parametrize("slip", list(WRONG))
def test_typical_slips_fail_with_the_right_feedback(slip, capsys):
    fn, message = WRONG[slip]
    assert not l02.check_knn_predict(fn)
    assert message in capsys.readouterr().out


def test_normalising_in_place_is_reported(capsys):
    def in_place(a, y, b, k):
        a /= a.norm(dim=1, keepdim=True)
        b /= b.norm(dim=1, keepdim=True)
        return _vote(y, (b @ a.T).topk(k).indices)

    assert not l02.check_knn_predict(in_place)
    assert "changed its inputs in place" in capsys.readouterr().out
