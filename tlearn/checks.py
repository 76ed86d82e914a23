"""The input checks every public function calls, so each refusal reads the same.

A function of tlearn that takes a number, a switch, a device name or a batch of images checks
it first, with one of these, and says what it expected and what it got::

    batch_size = checks.positive_int("batch_size", batch_size)
    # ValueError: batch_size must be a positive int, got 'a'

Nothing here knows about domains, models or training: this module imports only torch and
NumPy, so every other module (``runtime`` included) may use it.

The feature checks (:func:`features`, :func:`feature_pair`, :func:`tensor_pair`,
:func:`numpy_pair`) are what every function of ``tlearn.adapt`` that takes features of two
domains calls first, so a wrong input fails with one clear message instead of a shape error
deep inside a matrix product or a silent ``nan`` loss three epochs later: a 2-D
``(n_samples, n_features)`` array or tensor, at least ``min_rows`` rows (a covariance or a
U-statistic needs two), at least one feature, only finite values, and the same number of
features in both domains. The training losses skip the NaN/Inf scan of their inputs (it
would cost as much as the loss) and check their scalar result instead
(:func:`finite_or_raise`), which names the bad input when there is one.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = [
    "positive_int", "nonnegative_int", "positive_float", "nonnegative_float", "probability",
    "boolean", "one_of", "module", "matrix",
    "images", "channels_match", "accepted_channels", "batch_of_one",
    "env_int", "env_float",
    "features", "feature_pair", "tensor_pair", "numpy_pair", "finite_or_raise", "float_compute",
]  # fmt: skip


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
        kind = {0: "a non-negative int", 1: "a positive int"}.get(minimum, f"an int >= {minimum}")
        raise ValueError(f"{name} must be {kind}{why}, got {value!r}")
    return int(value)


def nonnegative_int(name: str, value: Any, *, why: str = "") -> int:
    """``value`` as an int if it is an int ≥ 0 (a seed, a count that may be zero)."""
    return positive_int(name, value, minimum=0, why=why)


def positive_float(name: str, value: Any, *, example: str = "") -> float:
    """``value`` as a float if it is a finite real number > 0 (a learning rate)."""
    if not _is_real(value) or not math.isfinite(value) or value <= 0:
        hint = f" (e.g. {example})" if example else ""
        raise ValueError(f"{name} must be a finite number > 0{hint}, got {value!r}")
    return float(value)


def nonnegative_float(name: str, value: Any, *, why: str = "") -> float:
    """``value`` as a float if it is a finite real number ≥ 0 (a weight, a weight decay)."""
    if not _is_real(value) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}{why}")
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
    if value not in options:
        listed = ", ".join(map(repr, options))
        raise ValueError(f"{name} must be one of {listed}, got {value!r}")
    return value


def module(name: str, value: Any) -> nn.Module:
    """``value`` if it is a ``torch.nn.Module``; a TypeError (that names what came) otherwise."""
    if not isinstance(value, nn.Module):
        unbuilt = " (a function or class was passed: build the network first, e.g. DigitNet())"
        hint = unbuilt if callable(value) else ""
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(value).__name__}{hint}")
    return value


def matrix(
    x: Any, name: str, what: str, *, rows: int | None = None, columns: int | None = None
) -> torch.Tensor:
    """``x`` if it is a 2-D tensor (with ``rows`` rows and ``columns`` columns, when given);
    else a ValueError saying ``what`` was expected and what came (its shape, or its type)."""
    ok = torch.is_tensor(x) and x.dim() == 2
    if not ok or rows not in (None, x.shape[0]) or columns not in (None, x.shape[1]):
        got = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f"{name} must be {what}, got {got}")
    return x


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


def batch_of_one(model: nn.Module, n: int, batch_size: int, where: str, hint: str = "") -> None:
    """Refuse a pass over ``n`` images in batches of ``batch_size`` whose last batch holds a
    single image, when ``model`` has BatchNorm: in training mode BatchNorm needs the statistics
    of at least two values per channel, and PyTorch's own error names neither number."""
    if n % batch_size == 1 and any(isinstance(m, _BatchNorm) for m in model.modules()):
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
    return _env(var, default, int, lambda value: value >= minimum, f"an int >= {minimum}")


def env_float(var: str, default: float) -> float:
    """The number > 0 in environment variable ``var`` (``default`` when unset or empty)."""
    return _env(var, default, float, lambda v: math.isfinite(v) and v > 0, "a number > 0")


def _env(var: str, default: Any, parse: Callable, ok: Callable[[Any], bool], kind: str) -> Any:
    """``parse`` of the text in environment variable ``var`` if ``ok`` says it is ``kind``;
    ``default`` when unset or empty; else a ValueError naming the variable."""
    raw = os.environ.get(var, "").strip()
    if not raw:
        return default
    try:
        value = parse(raw)
    except ValueError:
        value = None
    if value is None or not ok(value):
        raise ValueError(
            f"environment variable {var} must be {kind}, got {raw!r}; "
            f"fix or unset it (default {default})."
        )
    return value


# --------------------------------------------------------------------------- feature matrices
def features(
    x: Any, name: str, *, min_rows: int = 2, finite: bool = True
) -> torch.Tensor | np.ndarray:
    """Validate one ``(n_samples, n_features)`` matrix; return it as a tensor or ndarray.

    Tensors stay tensors (same device, same dtype); anything else becomes a NumPy array.
    Raises ``ValueError`` for a wrong number of dimensions, too few rows, no features,
    non-numeric data, or (with ``finite``) NaN/Inf values.
    """
    if not isinstance(x, torch.Tensor):
        x = np.asarray(x)  # a ragged list raises numpy's ValueError ("inhomogeneous shape")
        if not (np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.bool_)):
            raise ValueError(f"{name} must hold numbers, got dtype {x.dtype}")
    elif x.is_complex():
        raise ValueError(f"{name} must be real-valued, got dtype {x.dtype}")
    if x.ndim != 2:
        hint = " (use x.reshape(len(x), -1) to flatten images)" if x.ndim > 2 else ""
        raise ValueError(
            f"{name} must be 2-D with shape (n_samples, n_features), got {x.ndim}-D "
            f"shape {tuple(x.shape)}{hint}"
        )
    n, d = x.shape
    if n < min_rows:
        raise ValueError(
            f"{name} needs at least {min_rows} rows (samples), got {n}: a covariance or "
            "an unbiased kernel mean needs two samples"
        )
    if d < 1:
        raise ValueError(f"{name} needs at least one feature column, got shape {(n, d)}")
    if finite and not _all_finite(x):
        raise ValueError(_nonfinite_message(name))
    return x


def feature_pair(
    x: Any, y: Any, names: tuple[str, str] = ("x", "y"), *, min_rows: int = 2, finite=True
) -> tuple[Any, Any]:
    """Validate two feature matrices (:func:`features`) with the same number of features."""
    x = features(x, names[0], min_rows=min_rows, finite=finite)
    y = features(y, names[1], min_rows=min_rows, finite=finite)
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same number of features, got "
            f"{x.shape[1]} and {y.shape[1]} (shapes {tuple(x.shape)} and {tuple(y.shape)})"
        )
    return x, y


def tensor_pair(
    x: Any, y: Any, names: tuple[str, str] = ("x", "y"), *, min_rows: int = 2, finite=True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a pair and return two tensors in a dtype fit to compute a loss in.

    Half precision (fp16/bf16) is cast *up* to float32 — a covariance or a Gaussian kernel in
    fp16 loses most of its digits and overflows easily. float64 stays float64 (gradcheck).
    NumPy input becomes float32 tensors (float64 stays float64) on the other input's device.
    ``finite=False`` skips the NaN/Inf scan of the inputs (it costs as much as a small loss):
    the losses check their *result* with :func:`finite_or_raise` instead.
    """
    x, y = feature_pair(x, y, names, min_rows=min_rows, finite=finite)
    device = next((t.device for t in (x, y) if isinstance(t, torch.Tensor)), None)
    x, y = (t if isinstance(t, torch.Tensor) else torch.as_tensor(t, device=device) for t in (x, y))
    x, y = (t if t.dtype == torch.float64 else t.float() for t in (x, y))
    if x.device != y.device:
        raise ValueError(
            f"{names[0]} and {names[1]} are on different devices: {x.device} vs {y.device}"
        )
    if x.dtype != y.dtype:  # one float64, one float32: compute in float64
        x, y = x.double(), y.double()
    return x, y


def numpy_pair(
    x: Any, y: Any, names: tuple[str, str] = ("x", "y"), *, min_rows: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Validate a pair and return float64 NumPy copies (tensors are detached, moved to CPU)."""
    x, y = feature_pair(x, y, names, min_rows=min_rows)
    return _float64(x), _float64(y)


def _float64(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def _all_finite(x: torch.Tensor | np.ndarray) -> bool:
    if isinstance(x, torch.Tensor):
        return bool(torch.isfinite(x).all()) if x.is_floating_point() else True
    return bool(np.isfinite(x).all()) if np.issubdtype(x.dtype, np.inexact) else True


def _nonfinite_message(name: str) -> str:
    return (
        f"{name} contains NaN or Inf values; check the features (a diverged network, "
        "a division by zero in preprocessing) before computing a domain distance"
    )


def finite_or_raise(value: torch.Tensor, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """Return a loss ``value`` if it is finite; otherwise raise a ValueError that says why.

    Checking one scalar is far cheaper than scanning the inputs for NaN/Inf on every call;
    a NaN or Inf input always makes the loss non-finite, so only then are the inputs scanned
    to name the culprit. Finite inputs with a non-finite result mean overflow.
    """
    if bool(torch.isfinite(value)):
        return value
    for name, t in inputs.items():
        if not _all_finite(t):
            raise ValueError(_nonfinite_message(name))
    biggest = max(float(t.detach().abs().max()) for t in inputs.values())
    raise ValueError(
        f"the result overflowed although the inputs are finite (largest |value| {biggest:.3g}): "
        "standardise or rescale the features"
    )


def float_compute(device: torch.device) -> contextlib.AbstractContextManager:
    """A context that switches autocast *off* for ``device`` (a no-op when it is off), for the
    losses that want their covariances and kernel matrices in float32: under
    ``torch.autocast`` a matrix product would run in fp16/bf16 even on float32 inputs."""
    try:
        enabled = bool(torch.is_autocast_enabled(device.type))
    except TypeError:  # torch < 2.4: no device argument
        cpu = device.type == "cpu" and torch.is_autocast_cpu_enabled()
        enabled = bool(cpu or (device.type == "cuda" and torch.is_autocast_enabled()))
    if enabled:
        return torch.autocast(device_type=device.type, enabled=False)
    return contextlib.nullcontext()
