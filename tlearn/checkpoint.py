"""Checkpoints: save and load a model (and optimizer) atomically and safely, resume exactly.

``train.fit(..., checkpoint=path)`` calls :func:`save_progress` after every epoch and, with
``resume=True``, :func:`load_progress` before the first: the model, the optimizer, the history, the
epoch's shuffling seed and the global random state come back, so a resumed run sees exactly
the batches (and draws) it would have seen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from tlearn.models.weights import state_dict_mismatch
from tlearn.runtime import atomic_write, is_main_process

__all__ = [
    "CHECKPOINT_FORMAT", "CheckpointError", "save_checkpoint", "load_checkpoint", "save_progress",
    "load_progress",
]  # fmt: skip

CHECKPOINT_FORMAT = "tlearn-checkpoint-v1"


class CheckpointError(ValueError):
    """A checkpoint file that is corrupt, truncated, not ours, or does not fit the model."""


def save_checkpoint(
    path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None, **extra
) -> Path:
    """Save model (and optimizer) state plus ``extra`` values to ``path``, atomically.

    The bytes go to a temporary file in the same folder, are flushed to disk, and only then
    renamed over ``path`` (``os.replace`` is atomic): an interrupted save leaves the old
    checkpoint (or nothing), never half a file.
    """
    payload = {
        "format": CHECKPOINT_FORMAT,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "extra": extra,
    }
    return atomic_write(path, lambda f: torch.save(payload, f))


def load_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    map_location: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` into ``model`` (and ``optimizer``).

    Uses ``torch.load(weights_only=True)``: a checkpoint cannot run code. A missing, corrupt,
    truncated or mismatched file raises :class:`CheckpointError` (``FileNotFoundError`` when
    missing) and leaves the model unchanged. Returns the ``extra`` values saved with it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # pickle, zip and EOF errors all mean: not a readable checkpoint
        # torch's own message suggests weights_only=False, which would let a file run code:
        # name the failure, never that advice.
        raise CheckpointError(
            f"checkpoint {path} is corrupt, truncated or not a checkpoint (torch.load raised "
            f"{type(e).__name__}); the model is unchanged. Delete the file and train again."
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} is not a tlearn checkpoint (expected format {CHECKPOINT_FORMAT!r}); "
            "for a plain state dict use model.load_state_dict(torch.load(path, weights_only=True))."
        )
    problems = state_dict_mismatch(model, payload["model"])
    if problems:
        raise CheckpointError(
            f"checkpoint {path} does not fit this model ({'; '.join(problems)}); "
            "the model is unchanged."
        )
    model.load_state_dict(payload["model"])
    if optimizer is not None and payload.get("optimizer") is not None:
        optimizer.load_state_dict(payload["optimizer"])
    return payload.get("extra", {})


def save_progress(path: str | Path, state: Any) -> None:
    """What ``fit`` saves after each epoch (on rank 0 only), from its ``FitState``: model,
    optimizer, epoch, shuffling seed, history and the global random state."""
    if is_main_process():
        save_checkpoint(
            path, state.model, state.optimizer, epoch=state.epoch, base_seed=state.seed,
            history=state.history.records, torch_rng=torch.get_rng_state(),
        )  # fmt: skip


def load_progress(path: str | Path, state: Any) -> None:
    """Put what :func:`save_progress` saved at ``path`` back into ``fit``'s ``state`` (its
    model, optimizer, next epoch, seed and history) and the global random state; nothing when
    there is no checkpoint yet (a first run)."""
    if not Path(path).exists():
        return
    extra = load_checkpoint(path, state.model, state.optimizer)
    state.epoch, state.seed = extra["epoch"] + 1, extra["base_seed"]
    for record in extra["history"]:
        state.history.append(record)
    torch.set_rng_state(extra["torch_rng"])
