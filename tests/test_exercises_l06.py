"""Lesson 06's grader: the solution passes, the usual slips fail with the right hint."""

import importlib.util
from pathlib import Path

import numpy as np

from tlearn import probes
from tlearn.exercises import l06

SOLUTION = Path(__file__).resolve().parents[1] / "lessons" / "solutions" / "06_leep.py"


def _solution():
    spec = importlib.util.spec_from_file_location("solution_06", SOLUTION)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.my_leep


def _parts(theta, y):
    theta, y = np.asarray(theta, float), np.asarray(y)
    n = len(y)
    joint = np.eye(y.max() + 1)[y].T @ theta / n
    return theta, y, n, joint


def test_the_solution_and_the_library_pass(capsys):
    assert l06.check_leep(_solution())
    assert l06.check_leep(probes.leep)
    assert "all checks passed" in capsys.readouterr().out


def test_joint_instead_of_conditional_is_named(capsys):
    def slip(theta, y):
        theta, y, n, joint = _parts(theta, y)
        return float(np.log((theta @ joint.T)[np.arange(n), y]).mean())

    assert not l06.check_leep(slip)
    assert "divide P̂(y, z) by P̂(z)" in capsys.readouterr().out


def test_missing_log_is_named(capsys):
    def slip(theta, y):
        theta, y, n, joint = _parts(theta, y)
        marginal = joint.sum(0)
        cond = np.divide(joint, marginal, out=np.zeros_like(joint), where=marginal > 0)
        return float((theta @ cond.T)[np.arange(n), y].mean())

    assert not l06.check_leep(slip)
    out = capsys.readouterr().out
    assert "take log" in out and "≤ 0" in out


def test_normalising_over_z_is_named(capsys):
    def slip(theta, y):
        theta, y, n, joint = _parts(theta, y)
        cond = joint / joint.sum(1, keepdims=True)
        return float(np.log((theta @ cond.T)[np.arange(n), y]).mean())

    assert not l06.check_leep(slip)
    assert "normalises over y for a fixed source label z" in capsys.readouterr().out


def test_hard_labels_and_errors_are_reported(capsys):
    def hard(theta, y):
        theta = np.eye(np.shape(theta)[1])[np.argmax(theta, 1)]
        return _solution()(theta + 1e-300, y)

    assert not l06.check_leep(hard)
    assert "the whole softmax" in capsys.readouterr().out
    assert not l06.check_leep(lambda theta, y: None)
    out = capsys.readouterr().out
    assert out.count("returned None") == 1 and "`return` LEEP as a float" in out
    assert not l06.check_leep(lambda theta, y: 1 / 0)
    assert "raised ZeroDivisionError" in capsys.readouterr().out
