"""Domain adaptation: losses that pull source and target features together, and trainers.

* ``coral`` / ``CORAL`` — closed-form CORAL (Sun, Feng & Saenko, AAAI 2016)
* ``coral_loss`` / ``CORALLoss`` — Deep CORAL (Sun & Saenko, ECCV-W 2016)
* ``mmd`` / ``MMDLoss`` / ``mmd_test`` — multi-kernel MMD (Gretton et al. 2012; Long et al. 2015)
* ``grad_reverse`` / ``GradientReversal`` / ``DomainClassifier`` / ``DomainAdversarialLoss`` /
  ``dann_lambda`` / ``dann_lr`` — DANN (Ganin et al., JMLR 2016)
* ``multilinear_map`` / ``RandomizedMultilinearMap`` / ``entropy_weights`` /
  ``ConditionalAdversarialLoss`` — CDAN and CDAN+E (Long et al., NeurIPS 2018)
* ``shot`` / ``pseudo_labels`` / ``information_maximization_loss`` / ``centroid_pseudo_labels``
  — self-training and SHOT, source-free (Liang, Hu & Feng, ICML 2020)
* ``tent`` / ``entropy`` — TENT, test-time entropy minimisation (Wang et al., ICLR 2021)
* ``proxy_a_distance`` — Ben-David et al. 2007
* ``diagnose`` / ``collapsed`` / ``majority_share`` — is a run broken? (one class takes every
  target prediction, or a loss went non-finite)
* ``adabn`` — AdaBN: re-estimate BatchNorm statistics on the target (Li et al. 2016/2018)
* ``selection`` — choosing without target labels: ``iwcv_risk`` (Sugiyama et al. 2007),
  ``dev_risk`` (DEV, You et al. 2019), ``density_ratios``, ``snd`` (Saito et al. 2021),
  ``prediction_entropy``
* ``fit_adapt`` — ``train.fit`` with source labels + an alignment module: "none" | "coral" |
  "mmd" | "dann" | "cdan" | "cdan_e", a method added with ``register_method``, or any
  ``nn.Module`` of yours

The cached runs behind lessons 03 and 04 live in :mod:`tlearn.studies.adaptation`.
"""

from tlearn.adapt import selection
from tlearn.adapt.cdan import (
    ConditionalAdversarialLoss,
    RandomizedMultilinearMap,
    entropy_weights,
    multilinear_map,
)
from tlearn.adapt.coral import CORAL, CORALLoss, coral, coral_loss
from tlearn.adapt.dann import (
    DomainAdversarialLoss,
    DomainClassifier,
    GradientReversal,
    dann_lambda,
    dann_lr,
    grad_reverse,
)
from tlearn.adapt.diagnostics import CollapseWarning, collapsed, diagnose, majority_share
from tlearn.adapt.distance import proxy_a_distance
from tlearn.adapt.mmd import MMDLoss, mmd, mmd_test
from tlearn.adapt.shot import (
    centroid_pseudo_labels,
    information_maximization_loss,
    pseudo_labels,
    shot,
)
from tlearn.adapt.tent import entropy, tent
from tlearn.adapt.trainer import METHODS, defaults, fit_adapt, register_method
from tlearn.bn import adabn, batchnorm_layers

__all__ = [
    "coral", "CORAL", "coral_loss", "CORALLoss",  # CORAL
    "mmd", "MMDLoss", "mmd_test",  # MMD
    "grad_reverse", "GradientReversal", "DomainClassifier", "DomainAdversarialLoss",  # DANN
    "dann_lambda", "dann_lr",
    "multilinear_map", "RandomizedMultilinearMap", "entropy_weights",  # CDAN
    "ConditionalAdversarialLoss",
    "shot", "pseudo_labels", "information_maximization_loss", "centroid_pseudo_labels",  # SHOT
    "tent", "entropy",  # TENT
    "adabn", "batchnorm_layers",  # AdaBN
    "proxy_a_distance", "selection", "diagnose", "collapsed", "majority_share", "CollapseWarning",
    "fit_adapt", "register_method", "METHODS", "defaults",  # the trainer
]  # fmt: skip
