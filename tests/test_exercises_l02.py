"""Lesson 02: the k-NN grader accepts the solution and explains the usual slips; the lesson's
claims cell fails when one of its sentences is false."""

from __future__ import annotations

import copy
import json
import re
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch

from tlearn import probes
from tlearn.exercises import l02

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = runpy.run_path(str(ROOT / "lessons" / "solutions" / "02_knn_predict.py"))


def test_reference_agrees_with_the_knn_probe():
    """knn_predict is what probes.knn_probe (scikit-learn, cosine metric) predicts."""
    for Ztr, ytr, Zte, k in l02._cases():
        clf = probes.knn_probe(Ztr, ytr, Zte, torch.zeros(len(Zte), dtype=torch.long), k=k)
        want = torch.as_tensor(clf["classifier"].predict(Zte.numpy()))
        assert torch.equal(l02.knn_predict(Ztr, ytr, Zte, k), want)


def test_the_solution_passes(capsys):
    assert l02.check_knn_predict(SOLUTION["my_knn_predict"])
    assert "all checks passed" in capsys.readouterr().out


def _normalise(Z):
    return Z / Z.norm(dim=1, keepdim=True)


def _vote(y, nearest):
    return torch.nn.functional.one_hot(y[nearest], int(y.max()) + 1).sum(1).argmax(1)


WRONG = {
    "Euclidean distance": (
        lambda a, y, b, k: _vote(y, torch.cdist(b, a).topk(k, largest=False).indices),
        "closest in Euclidean distance",
    ),
    "raw dot product": (
        lambda a, y, b, k: _vote(y, (b @ a.T).topk(k).indices),
        "raw dot product",
    ),
    "least similar": (
        lambda a, y, b, k: _vote(
            y, (_normalise(b) @ _normalise(a).T).topk(k, largest=False).indices
        ),
        "*least* similar",
    ),
    "k ignored": (
        lambda a, y, b, k: y[(_normalise(b) @ _normalise(a).T).argmax(1)],
        "single nearest neighbour",
    ),
    "positions, not labels": (
        lambda a, y, b, k: (_normalise(b) @ _normalise(a).T).argmax(1),
        "*position* of the nearest",
    ),
    "no return": (lambda a, y, b, k: None, "returned None"),
    "one label per neighbour": (
        lambda a, y, b, k: y[(_normalise(b) @ _normalise(a).T).topk(k).indices],
        "expected",
    ),
    "raises": (lambda a, y, b, k: a.foo, "raised AttributeError"),
}


@pytest.mark.parametrize("slip", list(WRONG))
def test_typical_slips_fail_with_the_right_feedback(slip, capsys):
    fn, message = WRONG[slip]
    assert not l02.check_knn_predict(fn)
    assert message in capsys.readouterr().out


def test_normalising_in_place_is_reported(capsys):
    def in_place(a, y, b, k):
        a /= a.norm(dim=1, keepdim=True)
        b /= b.norm(dim=1, keepdim=True)
        return _vote(y, (b @ a.T).topk(k).indices)

    assert not l02.check_knn_predict(in_place)
    assert "changed its inputs in place" in capsys.readouterr().out


# --- the claims cell: each assert fails when its sentence is false ---------------------------

NAMES = [
    "random DigitNet",
    "synth source DigitNet",
    "random EfficientNet-Lite0",
    "ImageNet EfficientNet-Lite0",
]
LITE = [f"features.backbone.features.{i}" for i in range(9)]
DIGIT = ["features.conv1", "features.conv2", "features.conv3", "features.fc", "head"]

# The stored run's numbers (PER_CLASS = [1, 5, 10, 30]; 3 seeds).
STORED = {
    "probe_acc": {  # mean over seeds, per label count: each network's feature vector
        "random DigitNet": [0.543, 0.838, 0.899, 0.952],
        "synth source DigitNet": [0.651, 0.855, 0.901, 0.963],
        "random EfficientNet-Lite0": [0.556, 0.784, 0.870, 0.930],
        "ImageNet EfficientNet-Lite0": [0.471, 0.736, 0.832, 0.901],
    },
    "chosen": {  # per seed: (block chosen by CV, its test accuracy)
        "random DigitNet": [
            ("features.conv3", 0.893),
            ("features.conv3", 0.906),
            ("features.fc", 0.885),
        ],
        "synth source DigitNet": [
            ("features.fc", 0.894),
            ("features.conv3", 0.919),
            ("features.conv2", 0.837),
        ],
        "random EfficientNet-Lite0": [(LITE[7], 0.865), (LITE[7], 0.863), (LITE[8], 0.844)],
        "ImageNet EfficientNet-Lite0": [(LITE[5], 0.926), (LITE[5], 0.924), (LITE[5], 0.919)],
    },
    "last": {
        "random DigitNet": 0.683,
        "synth source DigitNet": 0.806,
        "random EfficientNet-Lite0": 0.870,
        "ImageNet EfficientNet-Lite0": 0.832,
    },
    "lin": {
        "random DigitNet": 0.899,
        "synth source DigitNet": 0.901,
        "random EfficientNet-Lite0": 0.870,
        "ImageNet EfficientNet-Lite0": 0.832,
    },
    "knn": {
        "random DigitNet": 0.851,
        "synth source DigitNet": 0.817,
        "random EfficientNet-Lite0": 0.798,
        "ImageNet EfficientNet-Lite0": 0.751,
    },
    "fine_tuned": [0.959, 0.939, 0.943],
    "t_hit": 0.067,
    "t_miss": 26.7,
}


def _claims_source() -> str:
    nb = json.loads((ROOT / "lessons" / "02_feature_extraction.ipynb").read_text())
    (cell,) = [c for c in nb["cells"] if "feature_claims(" in "".join(c["source"])]
    return "".join(cell["source"])


def _namespace(v: dict) -> dict:
    """The variables the claims cell reads, built from numbers like STORED."""
    sweeps = {}
    for n in NAMES:
        blocks = LITE if "Lite0" in n else DIGIT
        rows = [{"layer": b, "accuracy": 0.5} for b in blocks[:-1]]
        sweeps[n] = [[*rows, {"layer": blocks[-1], "accuracy": v["last"][n]}]] * 3
    return {
        "TARGET": "uci",
        "np": np,
        "PER_CLASS": [1, 5, 10, 30],
        "k": 2,
        "extractors": dict.fromkeys(NAMES),
        "pairs": {
            "DigitNet": ("synth source DigitNet", "random DigitNet"),
            "EfficientNet-Lite0": ("ImageNet EfficientNet-Lite0", "random EfficientNet-Lite0"),
        },
        "probe_acc": {n: np.array([a] * 3) for n, a in v["probe_acc"].items()},
        "best": {n: [{"layer": b, "accuracy": a} for b, a in c] for n, c in v["chosen"].items()},
        "sweeps": sweeps,
        "fine_tuned": v["fine_tuned"],
        "lin_acc": {n: np.array([a] * 3) for n, a in v["lin"].items()},
        "knn_acc": {n: np.array([a] * 3) for n, a in v["knn"].items()},
        "t_hit": v["t_hit"],
        "t_miss": v["t_miss"],
    }


def test_claims_hold_on_the_stored_numbers():
    exec(_claims_source(), _namespace(STORED))


# a phrase of the sentence → how it could be false: (STORED key, name or None, replacement), or several
FALSE = {
    "beats random Lite0 on average over the seeds": (
        "chosen",
        "random EfficientNet-Lite0",
        STORED["chosen"]["ImageNet EfficientNet-Lite0"],
    ),
    "probes below random Lite0's on average over the label counts": (
        "probe_acc",
        "random EfficientNet-Lite0",
        [0.46, 0.72, 0.83, 0.90],  # ImageNet's vector +0.75 above it on average
    ),
    "picks a middle block": ("chosen", "ImageNet EfficientNet-Lite0", [(LITE[8], 0.93)] * 3),
    "beats Lite0's last block on average": ("last", "ImageNet EfficientNet-Lite0", 0.93),
    "within 5 points of random DigitNet": (
        "probe_acc",
        "random DigitNet",
        [0.543, 0.838, 0.899, 0.90],
    ),
    "strong baseline": (  # both DigitNets at 70% with 10 labels: the closeness still holds
        ("probe_acc", "random DigitNet", [0.543, 0.838, 0.70, 0.952]),
        ("probe_acc", "synth source DigitNet", [0.651, 0.855, 0.70, 0.963]),
    ),
    "fine-tuning beats every probe": ("fine_tuned", None, [0.92, 0.93, 0.925]),
    "linear probe beats k-NN": ("knn", "random DigitNet", 0.899),
    "10× faster": ("t_hit", None, 5.0),
}


def test_the_one_label_gain_is_read_not_asserted():
    """One labelled image per class decides it (+0.9 to +10.7 over seed sets): not a claim."""
    v = copy.deepcopy(STORED)
    v["probe_acc"]["synth source DigitNet"] = [0.54, 0.855, 0.901, 0.963]
    exec(_claims_source(), _namespace(v))


@pytest.mark.parametrize("case", list(FALSE))
def test_each_claim_fails_when_its_sentence_is_false(case):
    changes = FALSE[case] if isinstance(FALSE[case][0], tuple) else (FALSE[case],)
    v = copy.deepcopy(STORED)
    for key, name, value in changes:
        if name is None:
            v[key] = value
        else:
            v[key][name] = value
    with pytest.raises(AssertionError, match=re.escape(case)):
        exec(_claims_source(), _namespace(v))
