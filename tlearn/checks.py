"""The input checks every public function calls, so each refusal reads the same.

A function of tlearn that takes a number, a switch, a device name or a batch of images checks
it first, with one of these, and says what it expected and what it got::

    batch_size = checks.positive_int("batch_size", batch_size)
    # ValueError: batch_size must be a positive int, got 'a'

Nothing here knows about domains, models or training: this module imports only torch, so
every other module (``runtime`` included) may use it.
"""

from __future__ import annotations

import argparse
import math
import numbers
import os
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = [
    "positive_int",
    "nonnegative_int",
    "positive_float",
    "nonnegative_float",
    "probability",
    "boolean",
    "one_of",
    "module",
    "images",
    "channels_match",
    "accepted_channels",
    "has_batchnorm",
    "batch_of_one",
    "env_int",
    "env_float",
    "int_argument",
    "device_argument",
]


def _is_int(value: Any) -> bool:
    """An int (Python or NumPy), not a bool: ``True`` is an int to Python, never to a user."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def positive_int(name: str, value: Any, *, minimum: int = 1, why: str = "") -> int:
    """``value`` as an int if it is an int ≥ ``minimum`` (default 1); else a ValueError.

    >>> positive_int("epochs", 3)
    3
    >>> positive_int("batch_size", "a")
    Traceback (most recent call last):
    ...
    ValueError: batch_size must be a positive int, got 'a'
    """
    if not _is_int(value) or value < minimum:
        kind = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{name} must be {kind}{why}, got {value!r}")
    return int(value)


def nonnegative_int(name: str, value: Any, *, why: str = "") -> int:
    """``value`` as an int if it is an int ≥ 0 (a seed, a count that may be zero)."""
    if not _is_int(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative int{why}, got {value!r}")
    return int(value)


def positive_float(name: str, value: Any, *, example: str = "") -> float:
    """``value`` as a float if it is a finite real number > 0 (a learning rate)."""
    if not _is_real(value) or not math.isfinite(value) or value <= 0:
        hint = f" (e.g. {example})" if example else ""
        raise ValueError(f"{name} must be a finite number > 0{hint}, got {value!r}")
    return float(value)


def nonnegative_float(name: str, value: Any) -> float:
    """``value`` as a float if it is a finite real number ≥ 0 (a weight, a weight decay)."""
    if not _is_real(value) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def probability(name: str, value: Any) -> float:
    """``value`` as a float if it is a number in [0, 1]."""
    if not _is_real(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


def boolean(name: str, value: Any) -> bool:
    """``value`` if it is ``True`` or ``False``: the string ``"False"`` is true to Python."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def one_of(name: str, value: Any, options: tuple | list) -> Any:
    """``value`` if it is one of ``options``; else a ValueError listing them."""
    try:
        ok = value in options
    except TypeError:  # an unhashable value asked of a set
        ok = False
    if not ok:
        listed = ", ".join(map(repr, options))
        raise ValueError(f"{name} must be one of {listed}, got {value!r}")
    return value


def module(name: str, value: Any) -> nn.Module:
    """``value`` if it is a ``torch.nn.Module``; a TypeError (that names what came) otherwise."""
    if not isinstance(value, nn.Module):
        hint = (
            " (a function or class was passed: build the network first, e.g. DigitNet())"
            if callable(value)
            else ""
        )
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(value).__name__}{hint}")
    return value


# --------------------------------------------------------------------------- images
def images(x: Any, where: str, *, finite: bool = False) -> torch.Tensor:
    """``x`` if it is a float tensor of images (and, with ``finite``, free of NaN and Inf).

    Networks compute in floats and expect values in [0, 1] (or standardised): a uint8 image
    (0 … 255) reaches the first convolution as a dtype error, or, cast blindly, as values 255
    times too large. Refused here with what to do instead.
    """
    if not torch.is_tensor(x) or not x.is_floating_point():
        got = x.dtype if torch.is_tensor(x) else type(x).__name__
        raise TypeError(
            f"{where}: images must be float tensors (values in [0, 1]), got {got}; "
            "convert them, e.g. x.float() / 255 for uint8 images."
        )
    if finite and not bool(torch.isfinite(x).all()):
        raise ValueError(
            f"{where}: the images contain NaN or Inf values; clean the data "
            "(e.g. torch.nan_to_num) first. The model is unchanged."
        )
    return x


def accepted_channels(model: nn.Module) -> tuple[int, ...] | None:
    """The channel counts ``model`` takes: its first convolution's ``in_channels``, or what an
    input adapter registered before it declares (``accepts_channels``, e.g. ``ImageNetInput``
    turns grey into RGB). None: no convolution, nothing to check."""
    for m in model.modules():
        if hasattr(m, "accepts_channels"):
            return tuple(m.accepts_channels)
        if isinstance(m, nn.modules.conv._ConvNd):
            return (m.in_channels,)
    return None


def channels_match(model: nn.Module, x: torch.Tensor, where: str) -> None:
    """Refuse a batch ``x`` (N×C×H×W) whose C is not what the model's first convolution takes.

    Checked before the forward pass, so the message can say how to fix it instead of
    PyTorch's "expected input to have 1 channels, but got 3 channels instead".
    """
    accepted = accepted_channels(model)
    if accepted is None or x.dim() != 4 or x.shape[1] in accepted:
        return
    expected, got = accepted[0], x.shape[1]
    raise ValueError(
        f"{where}: the network expects {expected} channel{'s' * (expected != 1)} but the images "
        f"have {got}; pass channels={expected} to load_domain, or build the network with "
        f"in_channels={got} (e.g. DigitNet(in_channels={got}))."
    )


def has_batchnorm(model: nn.Module) -> bool:
    """Whether ``model`` has an ordinary BatchNorm layer (one that trains on batch statistics)."""
    return any(isinstance(m, _BatchNorm) for m in model.modules())


def batch_of_one(model: nn.Module, n: int, batch_size: int, where: str, hint: str = "") -> None:
    """Refuse a pass over ``n`` images in batches of ``batch_size`` whose last batch holds a
    single image, when ``model`` has BatchNorm: in training mode BatchNorm needs the statistics
    of at least two values per channel, and PyTorch's own error names neither number."""
    if n % batch_size == 1 and has_batchnorm(model):
        raise ValueError(
            f"{where}: {n} images in batches of {batch_size} leave a last batch of one image, "
            "and BatchNorm cannot train on one image. Keep drop_last=True (the default), or "
            f"choose a batch_size that does not leave one image over{hint}."
        )


# --------------------------------------------------------------------------- environment
def env_int(var: str, default: int, *, minimum: int = 0) -> int:
    """The int in environment variable ``var`` (``default`` when unset or empty).

    A value that is not an int ≥ ``minimum`` raises a ValueError naming the variable — read
    where it is used, so a bad value never breaks an ``import``.
    """
    raw = os.environ.get(var, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise ValueError(
            f"environment variable {var} must be an int >= {minimum}, got {raw!r}; "
            f"fix or unset it (default {default})."
        )
    return value


def env_float(var: str, default: float, *, positive: bool = True) -> float:
    """The number in environment variable ``var`` (``default`` when unset or empty)."""
    raw = os.environ.get(var, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or (positive and value <= 0) or value < 0:
        bound = "> 0" if positive else ">= 0"
        raise ValueError(
            f"environment variable {var} must be a number {bound}, got {raw!r}; "
            f"fix or unset it (default {default})."
        )
    return value


# --------------------------------------------------------------------------- command lines
def int_argument(name: str, *, minimum: int = 0) -> Callable[[str], int]:
    """An argparse ``type=``: the text as an int ≥ ``minimum``, else argparse's usage error.

    >>> int_argument("--seed")("-1")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: --seed must be an int >= 0, got '-1'
    """

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"{name} must be an int >= {minimum}, got {text!r}")
        return value

    return parse


def device_argument(text: str) -> str:
    """An argparse ``type=`` for ``--device``: a name ``torch.device`` understands."""
    try:
        torch.device(text)
    except (RuntimeError, ValueError):
        hint = ' (a GPU is "cuda")' if text.lower().startswith("gpu") else ""
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a device name; use cpu, cuda, cuda:0 or mps{hint}"
        ) from None
    return text
