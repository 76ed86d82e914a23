"""Input validation shared by the domain-adaptation losses and transforms.

Every public function in ``tlearn.adapt`` that takes a batch of features from two domains
calls these helpers first, so a wrong input fails with one clear message — what was
expected, what came — instead of a shape error deep inside a matrix product or a silent
``nan`` loss three epochs later.

What is checked: a 2-D ``(n_samples, n_features)`` array or tensor, at least ``min_rows``
rows (a covariance or a U-statistic needs two), at least one feature, only finite values,
and (for pairs) the same number of features in both domains. The training losses skip the
NaN/Inf scan of their inputs (it would cost as much as the loss) and check their scalar
result instead (:func:`finite_or_raise`), which names the bad input when there is one.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch


def check_features(
    x: Any, name: str, *, min_rows: int = 2, check_finite: bool = True
) -> torch.Tensor | np.ndarray:
    """Validate one ``(n_samples, n_features)`` matrix; return it as a tensor or ndarray.

    Tensors stay tensors (same device, same dtype); anything else becomes a NumPy array.
    Raises ``ValueError`` for a wrong number of dimensions, too few rows, no features,
    non-numeric data, or NaN/Inf values.
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
    if check_finite and not _all_finite(x):
        raise ValueError(_nonfinite_message(name))
    return x


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


def check_pair(
    x: Any,
    y: Any,
    names: tuple[str, str] = ("x", "y"),
    *,
    min_rows: int = 2,
    check_finite: bool = True,
) -> tuple[Any, Any]:
    """Validate two feature matrices and that they have the same number of features."""
    x = check_features(x, names[0], min_rows=min_rows, check_finite=check_finite)
    y = check_features(y, names[1], min_rows=min_rows, check_finite=check_finite)
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same number of features, got "
            f"{x.shape[1]} and {y.shape[1]} (shapes {tuple(x.shape)} and {tuple(y.shape)})"
        )
    return x, y


def as_tensor_pair(
    x: Any,
    y: Any,
    names: tuple[str, str] = ("x", "y"),
    *,
    min_rows: int = 2,
    check_finite: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a pair and return two tensors in a dtype fit to compute a loss in.

    Half precision (fp16/bf16) is cast *up* to float32 — a covariance or a Gaussian kernel in
    fp16 loses most of its digits and overflows easily. float64 stays float64 (gradcheck).
    NumPy input becomes float32 tensors (float64 stays float64) on the other input's device.

    ``check_finite=False`` skips the NaN/Inf scan of the inputs (it costs as much as a small
    loss): the losses check their *result* with :func:`finite_or_raise` instead.
    """
    x, y = check_pair(x, y, names, min_rows=min_rows, check_finite=check_finite)
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


def as_numpy_pair(
    x: Any, y: Any, names: tuple[str, str] = ("x", "y"), *, min_rows: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Validate a pair and return float64 NumPy copies (tensors are detached, moved to CPU)."""
    x, y = check_pair(x, y, names, min_rows=min_rows)
    return to_numpy64(x), to_numpy64(y)


def to_numpy64(x: Any) -> np.ndarray:
    """A float64 NumPy array from an array or (any-device, any-dtype) tensor."""
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def _autocast_enabled(device_type: str) -> bool:
    try:
        return bool(torch.is_autocast_enabled(device_type))
    except TypeError:  # torch < 2.4: no device argument
        if device_type == "cpu":
            return bool(torch.is_autocast_cpu_enabled())
        return bool(torch.is_autocast_enabled()) if device_type == "cuda" else False


def float_compute(device: torch.device) -> contextlib.AbstractContextManager:
    """A context that switches autocast *off* for ``device`` (a no-op when it is off).

    Under ``torch.autocast`` a matrix product would run in fp16/bf16 even on float32 inputs;
    the losses want their covariances and kernel matrices in float32.
    """
    if _autocast_enabled(device.type):
        return torch.autocast(device_type=device.type, enabled=False)
    return contextlib.nullcontext()
