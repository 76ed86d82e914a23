"""AdaBN: adapt a network to a new domain by re-estimating its BatchNorm statistics.

Li, Wang, Shi, Liu & Hou, "Revisiting Batch Normalization For Practical Domain Adaptation"
(ICLR workshop 2017; Pattern Recognition 2018). The observation: a BatchNorm layer

    BN(x) = γ · (x − μ) / √(σ² + ε) + β

stores *domain* knowledge in its statistics (μ, σ²) and *task* knowledge in its weights
(γ, β and everything else). Swap the source statistics for the target's — the mean and
variance of each channel over all target data — and the network sees target activations
standardised the way it saw source activations during training. No labels, no gradients,
no parameter changes: one pass over the unlabelled target set.

How we estimate the statistics (Algorithm 1 of the paper, per channel j of every BN layer):

    μ_j  = mean of x_j over every target image (and every pixel, for BatchNorm2d)
    σ²_j = unbiased variance of the same values (PyTorch's convention for running_var)

The sums are pooled over the whole target set in float64, so the first BN layer gets the
exact population statistics whatever the batch size. Layers behind it see inputs that the
earlier layers normalised with *batch* statistics (BN layers run in train mode during the
pass, as in ``torch.optim.swa_utils.update_bn``); with batches of a few hundred images those
are close to the population statistics. Other layers (Dropout, …) stay in eval mode.
"""

from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm

from tlearn.adapt.trainer import _input_batches, _resolve_device

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
    if not isinstance(batch_size, int) or batch_size < 2:
        raise ValueError(
            f"batch_size must be an int >= 2 (BatchNorm needs 2+ samples), got {batch_size!r}"
        )
    layers = batchnorm_layers(model)
    if not layers:
        raise ValueError(
            f"{type(model).__name__} has no BatchNorm layer with running statistics; "
            "AdaBN has nothing to adapt (use CORAL, MMD or DANN instead)."
        )
    device = _resolve_device(device)
    model.to(device)

    # Pool Σx and Σx² per channel in float64 through a pre-forward hook on every BN layer.
    sums: dict[str, list] = {name: [0.0, 0.0, 0] for name in layers}

    def make_hook(name: str):
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            x = inputs[0].detach().double()
            dims = [0] + list(range(2, x.dim()))  # every axis except channels
            s = sums[name]
            s[0] = s[0] + x.sum(dims)
            s[1] = s[1] + (x * x).sum(dims)
            s[2] += x.numel() // x.shape[1]

        return hook

    was_training = {m: m.training for m in model.modules()}
    handles = [m.register_forward_pre_hook(make_hook(n)) for n, m in layers.items()]
    batches = 0
    try:
        model.eval()
        for m in layers.values():
            m.train()  # normalise with batch statistics, as during training
        pending = None  # held back one batch: a trailing batch of 1 image is merged into it
        for x in tqdm(
            _input_batches(target, batch_size), desc="AdaBN", disable=not progress, leave=False
        ):
            if pending is not None and len(x) < 2:
                pending = torch.cat([pending, x])  # BN cannot normalise 1 sample in train mode
                continue
            if pending is not None:
                model(pending.to(device, non_blocking=True))
                batches += 1
            pending = x
        if pending is not None and len(pending) >= 2:
            model(pending.to(device, non_blocking=True))
            batches += 1
    finally:
        for h in handles:
            h.remove()
        for m, mode in was_training.items():
            m.train(mode)
    if batches == 0:
        raise ValueError("AdaBN: the target has no batch of 2+ images; pass more target data.")

    for name, m in layers.items():
        s, s2, n = sums[name]
        mean = s / n
        var = (s2 / n - mean * mean).clamp_min(0) * (n / max(n - 1, 1))  # unbiased
        m.running_mean.copy_(mean.to(m.running_mean.dtype))
        m.running_var.copy_(var.to(m.running_var.dtype))
        if m.num_batches_tracked is not None:
            m.num_batches_tracked.fill_(batches)
    return model.eval()
