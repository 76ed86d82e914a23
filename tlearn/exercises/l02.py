"""Lesson 02's grader: write the cosine k-nearest-neighbour classifier.

A k-NN probe trains nothing: each test vector takes the majority label of the ``k`` training
vectors most similar to it. With cosine similarity ``z·z' / (‖z‖ ‖z'‖)`` only the direction
of a feature vector counts, not its length (DINO's k-NN evaluation, Caron et al., ICCV 2021;
:func:`tlearn.probes.knn_probe`).

:func:`check_knn_predict` compares the student's ``fn(Z_train, y_train, Z_test, k)`` with
:func:`knn_predict` on inputs whose rows have very different lengths — so Euclidean distance,
the raw dot product and cosine similarity pick different neighbours — and names the slip it
recognises.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from tlearn.exercises import _call, _feedback

__all__ = ["knn_predict", "check_knn_predict"]


def knn_predict(
    Z_train: torch.Tensor, y_train: torch.Tensor, Z_test: torch.Tensor, k: int
) -> torch.Tensor:
    """Cosine k-NN: the majority label of each test row's ``k`` most similar training rows
    (ties go to the smallest label, as scikit-learn's ``KNeighborsClassifier`` does)."""
    return _votes(Z_train, y_train, Z_test, k).argmax(1)  # first maximum = smallest label


def _votes(Z_train, y_train, Z_test, k) -> torch.Tensor:
    """N_test × classes: how many of each test row's k most similar training rows have each label."""
    a = Z_train / Z_train.norm(dim=1, keepdim=True)
    b = Z_test / Z_test.norm(dim=1, keepdim=True)
    similarity = b @ a.T  # N_test × N_train cosine similarities
    nearest = similarity.topk(k, dim=1).indices  # N_test × k: the k most similar
    return torch.nn.functional.one_hot(y_train[nearest], int(y_train.max()) + 1).sum(1)


def _variants(Ztr, ytr, Zte, k) -> dict[str, tuple[torch.Tensor, str, str]]:
    """Wrong answers a student might write: name → (their output, problem, hint)."""

    def vote(nearest):
        votes = torch.nn.functional.one_hot(ytr[nearest], int(ytr.max()) + 1).sum(1)
        return votes.argmax(1)

    cos = (Zte / Zte.norm(dim=1, keepdim=True)) @ (Ztr / Ztr.norm(dim=1, keepdim=True)).T
    return {
        "euclidean": (
            vote((-torch.cdist(Zte, Ztr)).topk(k, dim=1).indices),
            "your neighbours are the closest in Euclidean distance, not in cosine similarity",
            "divide each row by its length first: Z / Z.norm(dim=1, keepdim=True)",
        ),
        "dot": (
            vote((Zte @ Ztr.T).topk(k, dim=1).indices),
            "you ranked neighbours by the raw dot product z·z': long vectors win every vote",
            "cosine similarity is the dot product of the *normalised* rows (both sides)",
        ),
        "farthest": (
            vote(cos.topk(k, dim=1, largest=False).indices),
            "you took the k *least* similar training rows",
            "the nearest neighbours have the largest similarity: topk(k) (largest=True), or "
            "sort in descending order",
        ),
        "one": (
            vote(cos.topk(1, dim=1).indices),
            "you used only the single nearest neighbour, whatever k is",
            "take the k most similar rows, then the most frequent label among them",
        ),
        "index": (
            cos.argmax(1),
            "you returned the *position* of the nearest training row, not a label",
            "look the neighbours' labels up: y_train[nearest]",
        ),
    }


def _cases():
    """(Z_train, y_train, Z_test, k) with rows of very different lengths."""
    gen = torch.Generator().manual_seed(0)
    out = []
    for n_train, n_test, d, classes, k in [
        (60, 40, 8, 4, 5),
        (30, 25, 3, 3, 3),
        (50, 30, 16, 5, 1),
    ]:
        centres = torch.randn(classes, d, generator=gen)
        ytr = torch.arange(n_train) % classes
        yte = torch.randint(0, classes, (n_test,), generator=gen)
        scale_tr = torch.exp(1.5 * torch.randn(n_train, 1, generator=gen))
        scale_te = torch.exp(1.5 * torch.randn(n_test, 1, generator=gen))
        Ztr = (centres[ytr] + 0.9 * torch.randn(n_train, d, generator=gen)) * scale_tr
        Zte = (centres[yte] + 0.9 * torch.randn(n_test, d, generator=gen)) * scale_te
        out.append((Ztr, ytr, Zte, k))
    return out


def check_knn_predict(fn: Callable) -> bool:
    """Lesson 02: ``fn(Z_train, y_train, Z_test, k)`` must return, for each row of
    ``Z_test``, the most frequent label among its ``k`` most cosine-similar rows of
    ``Z_train`` (a tensor of ``len(Z_test)`` integer labels).

    Only test rows whose vote has a single winner are compared, so any tie rule passes.
    Recognises: Euclidean distance or the raw dot product instead of cosine similarity, the
    k least similar rows, k ignored (1-NN), returning neighbour positions instead of labels,
    and changing the inputs in place.
    """
    name = "check_knn_predict"
    problems: list[str] = []
    hints: list[str] = []
    for Ztr, ytr, Zte, k in _cases():
        shape = f"{len(Ztr)} training rows, {len(Zte)} test rows, d={Ztr.shape[1]}, k={k}"
        inputs = (Ztr.clone(), ytr.clone(), Zte.clone())
        out, err = _call(fn, *inputs, k)
        if err:
            problems.append(f"{shape}: {err}")
            continue
        if any(not torch.equal(a, b) for a, b in zip(inputs, (Ztr, ytr, Zte), strict=True)):
            problems.append(f"{shape}: your function changed its inputs in place")
            hints.append("compute new tensors (Z / Z.norm(...)), do not write into Z_train")
        if out is None:
            problems.append(f"{shape}: your function returned None")
            hints.append("`return` the predicted labels, one per test row")
            continue
        try:
            got = torch.as_tensor(out).flatten()
        except Exception:  # noqa: BLE001 - anything that is not array-like
            problems.append(f"{shape}: expected a tensor of labels, got {type(out).__name__}")
            continue
        if got.numel() != len(Zte):
            problems.append(
                f"{shape}: expected {len(Zte)} labels (one per test row), got "
                f"{tuple(torch.as_tensor(out).shape)}"
            )
            hints.append("one prediction per row of Z_test: reduce the k votes along dim=1")
            continue
        want = knn_predict(Ztr, ytr, Zte, k)
        top2 = _votes(Ztr, ytr, Zte, k).topk(2, dim=1).values  # winner's and runner-up's
        clear = top2[:, 0] > top2[:, 1]
        got = got.to(torch.long)
        wrong = int((got[clear] != want[clear]).sum())
        if wrong == 0:
            continue
        problems.append(f"{shape}: {wrong} of {int(clear.sum())} predictions differ")
        for variant, problem, hint in _variants(Ztr, ytr, Zte, k).values():
            if torch.equal(got[clear], variant[clear]):
                problems[-1] += f" — {problem}"
                hints.append(hint)
                break
        else:
            hints.append(
                "normalise both sides, similarity = Z_test_n @ Z_train_n.T, the k largest per "
                "row (topk), their labels y_train[idx], then the most frequent label per row"
            )
    return _feedback(name, problems, list(dict.fromkeys(hints)))
