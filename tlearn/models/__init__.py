"""Networks: the small digit CNN, pretrained ImageNet backbones, and their weights.

Every network here is split the way transfer learning thinks about it::

    x ──► .features (image → vector z) ──► .head (z → class logits)

Fine-tuning replaces ``.head``; feature extraction keeps ``.features`` frozen; domain
adaptation aligns the distribution of ``z`` across domains.

* ``digitnet`` — :class:`DigitNet`, a small BatchNorm CNN for 32×32 digits;
* ``backbones`` — :func:`load_backbone` (torchvision's ImageNet families and the offline
  EfficientNet-Lite0), :func:`replace_head`, :func:`head_name`, :func:`blocks`, and
  :func:`for_digits` (digits into an ImageNet backbone);
* ``weights`` — reading weight files, strict loading, the offline check;
* ``efficientnet_lite`` — EfficientNet-Lite0 written out in full.
"""

from tlearn.models import backbones, efficientnet_lite, weights
from tlearn.models.backbones import *  # noqa: F403 (its __all__: load_backbone, blocks, …)
from tlearn.models.digitnet import DigitNet
from tlearn.models.efficientnet_lite import EfficientNetLite
from tlearn.models.weights import WeightsUnavailableError

__all__ = [
    "DigitNet", "EfficientNetLite", "WeightsUnavailableError", *backbones.__all__,
    "efficientnet_lite", "weights",
]  # fmt: skip
