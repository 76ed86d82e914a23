"""Lesson 07's grader: a data-augmentation pipeline for upright product photos.

``check_augmentation(fn)`` applies the student's ``fn`` (one 3×32×32 image in [0, 1] → one
augmented image) many times to a fixed, deliberately asymmetric test image and checks the
effects a good pipeline for Fashion-MNIST-like photos has — and the slips people make.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from tlearn.exercises import _call, _feedback

__all__ = ["check_augmentation", "test_image"]

TRIALS = 64


def test_image(size: int = 32) -> torch.Tensor:
    """A fixed 3×size×size image in [0, 1], unlike its mirror images and rotations: a bright
    "boot" — a tall shaft on the left, a sole running to the right at the bottom."""
    img = torch.full((3, size, size), 0.1)
    s = size / 64
    img[:, int(8 * s) : int(48 * s), int(14 * s) : int(30 * s)] = 0.8  # shaft
    img[:, int(40 * s) : int(54 * s), int(14 * s) : int(54 * s)] = 0.9  # foot and sole
    img[0, int(44 * s) : int(50 * s), int(40 * s) : int(50 * s)] = 0.4  # a coloured toe
    return img


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten() - a.mean(), b.flatten() - b.mean()
    return float((a @ b) / (a.norm() * b.norm() + 1e-12))


def check_augmentation(fn: Callable, size: int = 32) -> bool:
    """``fn(img)`` must return a randomly changed copy of ``img`` (3×size×size, float, in [0, 1])
    that keeps the label of an upright product photo. Checked on :func:`test_image` over
    64 calls:

    * the output is a tensor of the same shape, float, within [0, 1], and ``img`` is unchanged;
    * it is random (not every call gives the same image) and not the identity;
    * it never turns the photo upside down or on its side (vertical flips, 90°/180° turns);
    * the object stays recognisable: on average the output still resembles the input (or
      its left–right mirror) — a crop that keeps only a corner does not.
    """
    name = "check_augmentation"
    problems: list[str] = []
    hints: list[str] = []
    torch.manual_seed(0)
    img = test_image(size)
    original = img.clone()
    outs = []
    for _ in range(TRIALS):
        out, err = _call(fn, img.clone())
        if err:
            return _feedback(name, [err], ["fn takes one C×H×W tensor and returns one"])
        outs.append(out)
    out = outs[0]
    if out is None:
        return _feedback(name, ["your function returned None"], ["`return` the augmented image"])
    if not isinstance(out, torch.Tensor):
        return _feedback(name, [f"expected a tensor, got {type(out).__name__}"],
                         ["torchvision.transforms.v2 transforms take and return tensors"])  # fmt: skip
    if tuple(out.shape) != tuple(img.shape):
        problems.append(f"expected shape {tuple(img.shape)}, got {tuple(out.shape)}")
        hints.append(f"keep the size: v2.RandomResizedCrop({size}, …) ends at {size}×{size}")
        return _feedback(name, problems, hints)
    if not out.is_floating_point():
        problems.append(f"expected a float image, got {out.dtype}")
        hints.append("stay in float: no v2.ToDtype(torch.uint8) / PIL conversion at the end")
    lo = min(float(o.min()) for o in outs)
    hi = max(float(o.max()) for o in outs)
    if lo < -1e-4 or hi > 1 + 1e-4:
        problems.append(f"values outside [0, 1]: from {lo:.2f} to {hi:.2f}")
        hints.append("keep pixels in [0, 1]; normalisation belongs to the model, not here")
    if not torch.equal(img, original):
        problems.append("your function changed its input in place")
    stack = torch.stack([o.float() for o in outs])
    if all(torch.allclose(o, img, atol=1e-4) for o in stack):
        problems.append("every output equals the input: nothing was augmented")
        hints.append("add random transforms, e.g. v2.RandomHorizontalFlip(), v2.RandomResizedCrop")
        return _feedback(name, problems, hints)
    if torch.allclose(stack.std(0), torch.zeros_like(img), atol=1e-4):
        problems.append("all 64 outputs are identical: the augmentation is not random")
        hints.append("use the Random… transforms, so each call draws new parameters")
    turned = {
        "upside down (vertical flip)": img.flip(-2),
        "upside down and mirrored (180° turn)": img.flip(-2).flip(-1),
        "on its side (90° turn)": img.rot90(1, (-2, -1)),
        "on its side (270° turn)": img.rot90(-1, (-2, -1)),
    }
    for what, target in turned.items():
        n = sum(_corr(o, target) > 0.9 for o in stack)
        if n:
            problems.append(f"{n} of {TRIALS} outputs show the photo {what}")
            hints.append(
                "the test photos are upright: no v2.RandomVerticalFlip and no large rotations "
                "(v2.RandomRotation(degrees=10) at most)"
            )
    mirror = img.flip(-1)
    resemblance = [max(_corr(o, img), _corr(o, mirror)) for o in stack]
    mean_resemblance = sum(resemblance) / len(resemblance)
    if mean_resemblance < 0.5:
        problems.append(
            f"the outputs resemble the input too little (mean correlation {mean_resemblance:.2f}, "
            "expected ≥ 0.5): the object is cropped away or drowned"
        )
        hints.append(
            "keep most of the object: RandomResizedCrop(32, scale=(0.7, 1.0)) instead of the "
            "default scale=(0.08, 1.0); mild ColorJitter; small noise"
        )
    return _feedback(name, problems, list(dict.fromkeys(hints)))
