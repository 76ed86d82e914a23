"""AdaBN: adapt a network to a new domain by re-estimating its BatchNorm statistics.

Li, Wang, Shi, Liu & Hou, "Revisiting Batch Normalization For Practical Domain Adaptation"
(ICLR workshop 2017; Pattern Recognition 2018). The observation: a BatchNorm layer

    BN(x) = γ · (x − μ) / √(σ² + ε) + β

stores *domain* knowledge in its statistics (μ, σ²) and *task* knowledge in its weights
(γ, β and everything else). Swap the source statistics for the target's — the mean and
variance of each channel over all target data — and the network sees target activations
standardised the way it saw source activations during training. No labels, no gradients,
no parameter changes: one pass over the unlabelled target set.

The statistics are computed by :func:`tlearn.freeze.estimate_bn_statistics` (one mechanism
for the whole library): per channel, the mean and unbiased variance over every target image,
pooled in float64; see there for the details.
"""

from __future__ import annotations

import torch
from torch import nn

from tlearn import runtime
from tlearn.freeze import estimate_bn_statistics

__all__ = ["adabn", "batchnorm_layers"]

_BN = nn.modules.batchnorm._BatchNorm


def batchnorm_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The BatchNorm layers of ``model`` that keep running statistics, by qualified name."""
    return {
        name: m
        for name, m in model.named_modules()
        if isinstance(m, _BN) and m.track_running_stats and m.running_mean is not None
    }


@torch.no_grad()
def adabn(
    model: nn.Module,
    target,
    *,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> nn.Module:
    """Replace every BatchNorm layer's running statistics by the target domain's; return ``model``.

    Args:
        model: a trained network with BatchNorm layers (changed in place).
        target: target images — a Dataset (items ``x`` or ``(x, y)``; labels are ignored), a
            DataLoader, or an N×C×H×W tensor.
        batch_size: images per forward pass (Dataset/tensor input). Larger batches make the
            statistics that deeper layers see closer to the population's.
        device: where to run (default: ``tlearn.get_device()``); the model is moved there.
        progress: show a tqdm bar over the target batches.

    Returns:
        ``model`` in eval mode, with ``running_mean``/``running_var`` of each BN layer set to
        the target's per-channel mean and unbiased variance, ``num_batches_tracked`` to the
        number of batches seen. Weights, biases and ``requires_grad`` are untouched.

    Example::

        net = models.source_model()                     # trained on synth
        adapt.adabn(net, data.load_domain("uci"))       # unlabelled target images
        train.evaluate(net, data.load_domain("uci", split="test"))
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not batchnorm_layers(model):
        raise ValueError(
            f"{type(model).__name__} has no BatchNorm layer with running statistics; "
            "AdaBN has nothing to adapt (use CORAL, MMD or DANN instead)."
        )
    device = runtime.get_device() if device is None else torch.device(device)
    estimate_bn_statistics(model, target, batch_size=batch_size, device=device, progress=progress)
    return model.eval()
