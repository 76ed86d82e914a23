"""Lesson 07's grader: the solution passes; the usual slips fail with the right feedback."""

import importlib.util
from pathlib import Path

import torch
from torchvision.transforms import v2

from tlearn.exercises import l07
from tlearn.studies.real_images import augmentation

SOLUTION = Path(__file__).parents[1] / "lessons" / "solutions" / "07_augmentation.py"


def _solution():
    spec = importlib.util.spec_from_file_location("solution_07", SOLUTION)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.my_augment


def test_solution_and_the_lessons_pipeline_pass(capsys):
    assert l07.check_augmentation(_solution())
    assert "all checks passed" in capsys.readouterr().out
    assert l07.check_augmentation(augmentation(32))


def test_identity_and_none(capsys):
    assert not l07.check_augmentation(lambda x: x)
    assert "nothing was augmented" in capsys.readouterr().out
    assert not l07.check_augmentation(lambda x: None)
    assert "returned None" in capsys.readouterr().out


def test_vertical_flip_is_caught(capsys):
    bad = v2.Compose([v2.RandomHorizontalFlip(), v2.RandomVerticalFlip()])
    assert not l07.check_augmentation(bad)
    out = capsys.readouterr().out
    assert "upside down" in out and "RandomVerticalFlip" in out


def test_big_rotations_are_caught(capsys):
    assert not l07.check_augmentation(
        lambda x: torch.rot90(x, 1, (-2, -1)) if torch.rand(1) < 0.5 else x
    )
    assert "on its side" in capsys.readouterr().out


def test_default_crop_scale_loses_the_object(capsys):
    assert not l07.check_augmentation(v2.RandomResizedCrop(32, scale=(0.02, 0.05), antialias=True))
    assert "resemble the input too little" in capsys.readouterr().out


def test_normalising_inside_and_wrong_size(capsys):
    assert not l07.check_augmentation(
        v2.Compose([v2.RandomHorizontalFlip(), v2.Normalize([0.5] * 3, [0.5] * 3)])
    )
    assert "outside [0, 1]" in capsys.readouterr().out
    assert not l07.check_augmentation(v2.RandomResizedCrop(16, antialias=True))
    assert "expected shape" in capsys.readouterr().out


def test_not_random_and_in_place(capsys):
    assert not l07.check_augmentation(lambda x: x.flip(-1))
    assert "not random" in capsys.readouterr().out

    def in_place(x):
        x.mul_(0.9)
        return x

    # the grader passes a copy, so an in-place change cannot corrupt its reference image
    assert not l07.check_augmentation(in_place)
    assert "not random" in capsys.readouterr().out


def test_raising_function_is_reported(capsys):
    assert not l07.check_augmentation(lambda x: x.view(-1, 7))
    assert "raised RuntimeError" in capsys.readouterr().out
