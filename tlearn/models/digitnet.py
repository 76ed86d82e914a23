"""DigitNet: the small CNN that is the course's "source knowledge".

Every network in tlearn is split the way transfer learning thinks about it::

    x ──► .features (image → vector z) ──► .head (z → class logits)

Fine-tuning replaces ``.head``; feature extraction keeps ``.features`` frozen; domain
adaptation aligns the distribution of ``z`` across domains.

>>> import torch
>>> net = DigitNet()
>>> net.features(torch.zeros(2, 1, 32, 32)).shape, net(torch.zeros(2, 1, 32, 32)).shape
(torch.Size([2, 128]), torch.Size([2, 10]))
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from tlearn import checks

__all__ = ["DigitNet"]


def _conv_block(c_in: int, c_out: int, kernel: int) -> nn.Sequential:
    """conv → BatchNorm → ReLU → 2×2 max-pool: halves the image side."""
    conv = nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(c_out), nn.ReLU(inplace=True), nn.MaxPool2d(2))


class DigitNet(nn.Module):
    """A small BatchNorm CNN for 32×32 digits (≈165k parameters).

    Blocks (the names ``freeze``, ``features.extract`` and ``freeze_to`` use)::

        features.conv1  1×32×32  → 16×16×16
        features.conv2  16×16×16 → 32×8×8
        features.conv3  32×8×8   → 64×4×4
        features.fc     1024     → ``feature_dim`` (128), BatchNorm1d + ReLU
        head            128      → ``num_classes`` logits

    ``in_channels=3`` accepts RGB digits (e.g. SVHN).

    The weights and each input batch are kept in channels-last memory (``torch.channels_last``,
    N×H×W×C in memory; the shapes stay N×C×H×W): the same function, computed by kernels that
    are about 1.3× faster on a CPU here (``benchmarks/memory_format.py``) and that GPUs prefer
    too. ``channels_last=False`` keeps PyTorch's default layout; the outputs agree to float
    rounding.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, feature_dim: int = 128,
                 channels_last: bool = True):  # fmt: skip
        super().__init__()
        self.num_classes = checks.positive_int("num_classes", num_classes, minimum=2)
        checks.positive_int("in_channels", in_channels)
        self.feature_dim = checks.positive_int("feature_dim", feature_dim)
        self.features = nn.Sequential(
            OrderedDict(
                conv1=_conv_block(in_channels, 16, 5),
                conv2=_conv_block(16, 32, 5),
                conv3=_conv_block(32, 64, 3),
                fc=nn.Sequential(
                    nn.Flatten(),
                    nn.Linear(64 * 4 * 4, feature_dim, bias=False),
                    nn.BatchNorm1d(feature_dim),
                    nn.ReLU(inplace=True),
                ),
            )
        )
        self.head = nn.Linear(feature_dim, num_classes)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.to(memory_format=self.memory_format)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[-2:] != (32, 32):
            raise ValueError(f"DigitNet expects a batch of shape (N, C, 32, 32), got "
                             f"{tuple(x.shape)}; load domains with size=32 (the default).")  # fmt: skip
        return self.head(self.features(x.contiguous(memory_format=self.memory_format)))
