"""Pictures of transfer learning: images, training curves, embeddings, matrices, comparisons.

Every function here only *reads* results (tensors, arrays, dicts, ``train.History``) and
returns a :class:`matplotlib.figure.Figure`; none of them trains anything, calls
``plt.show()`` or closes figures, so a notebook cell decides when and where to show them::

    from tlearn import plot
    fig = plot.image_grid(dataset, nrow=8, title="synthetic digits")
    fig = plot.history({"frozen": h1, "fine-tuned": h2}, keys=("loss", "accuracy"))
    fig = plot.embedding(Z, y, domains=d, method="tsne")
    fig = plot.compare({"source only": [0.27, 0.25, 0.28], "CORAL": [0.52, 0.50, 0.55]})

One style (:data:`STYLE`, applied by :func:`styled`) keeps all figures consistent: readable
font sizes, light grid, no top/right spines, the colour-blind-friendly ``tab10`` cycle.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

__all__ = [
    "STYLE",
    "styled",
    "image_grid",
    "history",
    "embedding",
    "confusion",
    "compare",
    "covariance",
    "curves",
]

#: The rcParams every tlearn figure is drawn with (see :func:`styled`).
STYLE: dict[str, Any] = {
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.labelsize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linestyle": "-",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": plt.cycler(color=plt.get_cmap("tab10").colors),
    "legend.fontsize": 9,
    "legend.frameon": False,
    "lines.linewidth": 2.0,
    "image.cmap": "viridis",
    "figure.constrained_layout.use": True,
}

_MARKERS = ("o", "^", "s", "D", "v", "P", "X", "*")


def styled(fn: Callable[..., Figure]) -> Callable[..., Figure]:
    """Decorator: draw ``fn``'s figure inside ``plt.rc_context(STYLE)``.

    Artists read rcParams when they are created, so the whole drawing function runs inside
    the context; the caller's global matplotlib settings are left untouched afterwards.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with plt.rc_context(STYLE):
            return fn(*args, **kwargs)

    return wrapper


# --------------------------------------------------------------------------- helpers


def _to_numpy(x: Any, name: str) -> np.ndarray:
    """Tensor / array / list → numpy array (float tensors detached and moved to CPU)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.dtype in (torch.bfloat16, torch.float16):
            x = x.float()
        return x.numpy()
    try:
        return np.asarray(x)
    except Exception as e:  # noqa: BLE001 - re-raised with a clearer message
        raise ValueError(f"{name}: expected a tensor, array or list, got {type(x).__name__}") from e


def _grid_shape(n: int, ncols: int | None, max_cols: int = 10) -> tuple[int, int]:
    ncols = min(n, max_cols) if ncols is None else min(n, ncols)
    return math.ceil(n / ncols), ncols


def _image_for_imshow(img: np.ndarray) -> tuple[np.ndarray, str | None]:
    """C×H×W or H×W (any range) → H×W or H×W×3 in [0, 1], plus the colormap to use."""
    if img.ndim == 3:
        if img.shape[0] in (1, 3):
            img = np.moveaxis(img, 0, -1)  # C×H×W → H×W×C
        elif img.shape[-1] not in (1, 3):
            raise ValueError(f"image must be C×H×W or H×W×C with C in (1, 3), got {img.shape}")
        if img.shape[-1] == 1:
            img = img[..., 0]
    elif img.ndim != 2:
        raise ValueError(f"image must have 2 or 3 dimensions, got shape {img.shape}")
    img = img.astype(np.float64)
    lo, hi = float(img.min()), float(img.max())
    if lo < 0.0 or hi > 1.0:  # e.g. normalised inputs: rescale this image to [0, 1] for display
        img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    return img, ("gray" if img.ndim == 2 else None)


def _collect_images(images: Any, labels: Any, max_images: int) -> tuple[list, list | None]:
    """Accept a Dataset of (x, y), a N×C×H×W / N×H×W tensor or array, or a list of images
    or of (x, y) pairs; return the first ``max_images`` images (numpy) and their labels."""
    out_labels: list | None = None
    if isinstance(images, (torch.Tensor, np.ndarray)):
        arr = _to_numpy(images, "images")
        if arr.ndim not in (3, 4):
            raise ValueError(
                f"images as a tensor must be N×C×H×W or N×H×W, got shape {tuple(arr.shape)}"
            )
        imgs = list(arr[:max_images])
    elif isinstance(images, torch.utils.data.Dataset) or (
        hasattr(images, "__getitem__") and hasattr(images, "__len__")
    ):
        n = min(len(images), max_images)
        imgs, out_labels = [], []
        for i in range(n):
            item = images[i]
            if isinstance(item, (tuple, list)):
                x = item[0]
                out_labels.append(item[1] if len(item) > 1 else None)
            else:
                x = item
                out_labels.append(None)
            imgs.append(_to_numpy(x, "images[i]"))
        if all(lab is None for lab in out_labels):
            out_labels = None
    else:
        raise ValueError(
            "images must be a Dataset of (image, label), a N×C×H×W tensor/array or a list of "
            f"images, got {type(images).__name__}"
        )
    if len(imgs) == 0:
        raise ValueError("images is empty: nothing to show")
    if labels is not None:
        if not isinstance(labels, list):
            labels = list(_to_numpy(labels, "labels").reshape(-1))
        if len(labels) < len(imgs):
            raise ValueError(f"got {len(labels)} labels for {len(imgs)} images")
        out_labels = labels[: len(imgs)]
    return imgs, out_labels


def _label_text(label: Any, class_names: Sequence[str] | None) -> str:
    if isinstance(label, (torch.Tensor, np.generic)):
        label = label.item()
    if class_names is not None and isinstance(label, (int, np.integer)):
        return str(class_names[int(label)])
    return str(label)


# --------------------------------------------------------------------------- images


@styled
def image_grid(
    images: Any,
    labels: Any = None,
    *,
    nrow: int | None = None,
    title: str | None = None,
    max_images: int = 64,
    class_names: Sequence[str] | None = None,
    predictions: Any = None,
    size: float = 1.0,
) -> Figure:
    """A grid of images with their labels as captions.

    Args:
        images: a Dataset whose items are ``(image, label)`` (labels are read from it), a
            tensor/array ``N×C×H×W`` or ``N×H×W``, or a list of images or ``(image, label)``.
            Images are shown in [0, 1]; one outside that range is rescaled for display.
        labels: captions that override the dataset's labels (ints, or any printable value).
        nrow: images per row (as in ``torchvision.utils.make_grid``); default ``min(N, 10)``.
        title: figure title.
        max_images: show at most this many (the first ones).
        class_names: turn integer labels into names.
        predictions: optional predicted labels; a caption then reads ``label→prediction``,
            in red where they differ.
        size: inches per image.

    Returns:
        The Figure, with one axis per image shown.
    """
    if max_images < 1:
        raise ValueError(f"max_images must be >= 1, got {max_images}")
    if nrow is not None and nrow < 1:
        raise ValueError(f"nrow (images per row) must be >= 1, got {nrow}")
    imgs, labs = _collect_images(images, labels, max_images)
    preds = None
    if predictions is not None:
        preds = list(_to_numpy(predictions, "predictions").reshape(-1))
        if len(preds) < len(imgs):
            raise ValueError(f"got {len(preds)} predictions for {len(imgs)} images")
    rows, cols = _grid_shape(len(imgs), nrow)
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(size * cols + 0.2, size * rows + (0.45 if title else 0.15) + 0.2),
        squeeze=False,
        layout="constrained",
    )
    for i, ax in enumerate(axes.flat):
        if i >= len(imgs):
            ax.remove()  # no empty boxes: one axis per image
            continue
        img, cmap = _image_for_imshow(imgs[i])
        ax.imshow(img, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
        for spine in ax.spines.values():
            spine.set_visible(False)
        if labs is not None:
            text = _label_text(labs[i], class_names)
            color = "black"
            if preds is not None:
                text += "→" + _label_text(preds[i], class_names)
                color = "black" if str(labs[i]) == str(preds[i]) else "tab:red"
            ax.set_title(text, fontsize=9, fontweight="normal", color=color, pad=2)
    if title:
        fig.suptitle(title, fontweight="bold")
    return fig


# --------------------------------------------------------------------------- history


def _as_records(hist: Any) -> list[dict]:
    """One training history → list of per-epoch dicts.

    Accepts ``train.History`` (anything with ``.records``), a list of per-epoch dicts, or a
    dict of lists (``{"train_loss": [...], ...}``).
    """
    if hasattr(hist, "records"):
        return list(hist.records)
    if isinstance(hist, Mapping):
        lengths = {len(v) for v in hist.values() if isinstance(v, (list, tuple, np.ndarray))}
        if len(lengths) != 1:
            raise ValueError("a history dict must map metric names to equally long lists")
        n = lengths.pop()
        return [{k: v[i] for k, v in hist.items() if len(v) == n} for i in range(n)]
    if isinstance(hist, (list, tuple)) and all(isinstance(r, Mapping) for r in hist):
        return list(hist)
    raise ValueError(
        "history: expected a train.History, a list of per-epoch dicts or a dict of lists, "
        f"got {type(hist).__name__}"
    )


def _is_single_history(h: Any) -> bool:
    if hasattr(h, "records"):
        return True
    if isinstance(h, Mapping):
        return all(isinstance(v, (list, tuple, np.ndarray)) for v in h.values()) and not any(
            hasattr(v, "records") or isinstance(v, Mapping) for v in h.values()
        )
    if isinstance(h, (list, tuple)):
        # a list of per-epoch records has scalar values; a list of histories does not
        return len(h) > 0 and all(
            isinstance(r, Mapping) and all(np.isscalar(v) or v is None for v in r.values())
            for r in h
        )
    return False


@styled
def history(
    hist: Any,
    keys: Sequence[str] | None = None,
    *,
    labels: Sequence[str] | None = None,
    title: str | None = None,
) -> Figure:
    """Training curves: one panel per metric, train solid and validation dashed.

    Args:
        hist: one history (``train.History``, list of per-epoch dicts, or dict of lists), a
            list of histories, or a dict ``{name: history}`` to overlay runs by name.
        keys: metrics to plot, one panel each. A key ``"loss"`` draws ``train_loss`` and
            ``val_loss`` (whichever exist); an exact record key (e.g. ``"lambda"``) draws that
            column. Default: ``("loss", "accuracy")``, those that exist.
        labels: names for a list of histories (default ``run 1``, ``run 2``, …).
        title: figure title.

    Returns:
        The Figure, one axis per key. Epochs on the x axis are numbered from 1.
    """
    if _is_single_history(hist):
        runs = {"": _as_records(hist)}
    elif isinstance(hist, Mapping):
        runs = {str(k): _as_records(v) for k, v in hist.items()}
    elif isinstance(hist, (list, tuple)):
        names = list(labels) if labels is not None else [f"run {i + 1}" for i in range(len(hist))]
        if len(names) != len(hist):
            raise ValueError(f"got {len(names)} labels for {len(hist)} histories")
        runs = {n: _as_records(h) for n, h in zip(names, hist, strict=True)}
    else:
        raise ValueError(f"history: cannot read {type(hist).__name__}")
    if not runs or all(len(r) == 0 for r in runs.values()):
        raise ValueError("history is empty: train for at least one epoch first")
    columns = {k for recs in runs.values() for r in recs for k in r}

    def series_for(key: str) -> list[tuple[str, str]]:
        """(column, line style) pairs drawn in the panel for ``key``."""
        if key in columns:
            return [(key, "-")]
        return [(c, ls) for c, ls in ((f"train_{key}", "-"), (f"val_{key}", "--")) if c in columns]

    if keys is None:
        keys = [k for k in ("loss", "accuracy") if series_for(k)]
        if not keys:
            raise ValueError(f"history has no loss/accuracy columns; pass keys= from {columns}")
    elif isinstance(keys, str):
        keys = [keys]
    for k in keys:
        if not series_for(k):
            raise ValueError(f"history has no column for {k!r}; available: {sorted(columns)}")

    fig, axes = plt.subplots(
        1, len(keys), figsize=(4.2 * len(keys), 3.2), squeeze=False, layout="constrained"
    )
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, key in zip(axes.flat, keys, strict=True):
        for r, (name, recs) in enumerate(runs.items()):
            for col, ls in series_for(key):
                pts = [(i + 1, rec[col]) for i, rec in enumerate(recs) if rec.get(col) is not None]
                if not pts:
                    continue
                x, y = zip(*pts, strict=True)
                split = col[: -len(key) - 1] if col != key else ""
                label = " ".join(s for s in (name, split) if s) or col
                ax.plot(x, y, ls, color=colors[r % len(colors)], marker="o", ms=3, label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.set_title(key)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend()
    if title:
        fig.suptitle(title, fontweight="bold")
    return fig


# --------------------------------------------------------------------------- embedding


@styled
def embedding(
    Z: Any,
    labels: Any,
    domains: Any = None,
    *,
    method: str = "pca",
    seed: int = 0,
    class_names: Sequence[str] | None = None,
    title: str | None = None,
    perplexity: float = 30.0,
    max_points: int | None = 3000,
    point_size: float = 14.0,
    label_title: str = "class",
) -> Figure:
    """2-D map of feature vectors: colour = class, marker = domain.

    ``method="pca"`` projects on the two directions of largest variance (linear, exact,
    fast); ``method="tsne"`` (van der Maaten & Hinton, JMLR 2008) keeps neighbours close
    and is better at showing clusters, but distances between clusters mean little.
    Both are scikit-learn's, seeded with ``seed``.

    Args:
        Z: ``N×D`` features (tensor or array; more dims are flattened).
        labels: ``N`` class labels (or any grouping: name it with ``label_title``).
        domains: optional ``N`` domain ids or names (e.g. ``"synth"``/``"uci"``).
        max_points: subsample (seeded, stratified by nothing) to at most this many points so
            t-SNE stays fast; ``None`` keeps all.

    Returns:
        The Figure with one axis; it holds one scatter per domain.
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    Z = _to_numpy(Z, "Z").astype(np.float64)
    if Z.ndim < 2:
        raise ValueError(f"Z must be N×D features, got shape {Z.shape}")
    Z = Z.reshape(len(Z), -1)
    labels = _to_numpy(labels, "labels").reshape(-1)
    if len(labels) != len(Z):
        raise ValueError(f"Z has {len(Z)} rows but labels has {len(labels)} entries")
    if domains is None:
        domains = np.zeros(len(Z), dtype=int)
        show_domains = False
    else:
        domains = _to_numpy(domains, "domains").reshape(-1)
        if len(domains) != len(Z):
            raise ValueError(f"Z has {len(Z)} rows but domains has {len(domains)} entries")
        show_domains = True
    if not np.isfinite(Z).all():
        raise ValueError("Z contains NaN or Inf values")
    if len(Z) < 3:
        raise ValueError(f"need at least 3 points to embed, got {len(Z)}")
    if method not in ("pca", "tsne"):
        raise ValueError(f"method must be 'pca' or 'tsne', got {method!r}")
    if max_points is not None and len(Z) > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(len(Z), max_points, replace=False))
        Z, labels, domains = Z[keep], labels[keep], domains[keep]
    # One thread for embedding-sized problems: threads barely help there, and on a busy
    # machine OpenMP/BLAS threads that spin-wait can make t-SNE 10× slower.
    limit = threadpool_limits(limits=1) if Z.size < 20_000_000 else contextlib.nullcontext()
    with limit:
        if method == "pca":
            xy = PCA(n_components=2, random_state=seed).fit_transform(Z)
            axis_names = ("PC 1", "PC 2")
        else:
            perp = min(perplexity, (len(Z) - 1) / 3)
            tsne = TSNE(n_components=2, perplexity=perp, init="pca", random_state=seed)
            xy = tsne.fit_transform(Z)
            axis_names = ("t-SNE 1", "t-SNE 2")

    fig, ax = plt.subplots(figsize=(5.6, 4.6), layout="constrained")
    classes = list(np.unique(labels))
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    color_of = {c: cmap(i % cmap.N) for i, c in enumerate(classes)}
    doms = list(dict.fromkeys(domains.tolist()))  # first-seen order
    for j, d in enumerate(doms):
        m = domains == d
        ax.scatter(
            xy[m, 0],
            xy[m, 1],
            c=[color_of[c] for c in labels[m]],
            s=point_size,
            marker=_MARKERS[j % len(_MARKERS)],
            alpha=0.75,
            linewidths=0.3,
            edgecolors="white" if j == 0 else "black",
            label=str(d),
        )
    handles = [
        Line2D([], [], ls="", marker="o", color=color_of[c], label=_label_text(c, class_names))
        for c in classes
    ]
    legend = ax.legend(handles=handles, title=label_title, loc="upper left", bbox_to_anchor=(1, 1))
    if show_domains:
        ax.add_artist(legend)
        dom_handles = [
            Line2D([], [], ls="", marker=_MARKERS[j % len(_MARKERS)], color="gray", label=str(d))
            for j, d in enumerate(doms)
        ]
        ax.legend(handles=dom_handles, title="domain", loc="lower left", bbox_to_anchor=(1, 0))
    ax.set_xlabel(axis_names[0])
    ax.set_ylabel(axis_names[1])
    ax.set_title(title or f"{method.upper() if method == 'pca' else 't-SNE'} of features")
    return fig


# --------------------------------------------------------------------------- matrices


@styled
def confusion(
    y_true: Any,
    y_pred: Any,
    class_names: Sequence[str] | None = None,
    *,
    normalize: bool = True,
    title: str | None = None,
) -> Figure:
    """Confusion matrix: row = true class, column = predicted class.

    Cell colour is the fraction of the row (recall per class) when ``normalize`` is True,
    else the count; every cell is annotated with its count. The title gives the accuracy.

    Returns:
        The Figure: the matrix axis and its colour bar.
    """
    t = _to_numpy(y_true, "y_true").reshape(-1)
    p = _to_numpy(y_pred, "y_pred").reshape(-1)
    if len(t) != len(p):
        raise ValueError(f"y_true has {len(t)} entries but y_pred has {len(p)}")
    if len(t) == 0:
        raise ValueError("y_true is empty")
    if not (np.issubdtype(t.dtype, np.integer) and np.issubdtype(p.dtype, np.integer)):
        raise ValueError("y_true and y_pred must be integer class indices")
    if t.min() < 0 or p.min() < 0:
        raise ValueError("class indices must be >= 0")
    k = int(max(t.max(), p.max())) + 1
    if class_names is not None:
        if len(class_names) < k:
            raise ValueError(f"{len(class_names)} class_names for class indices up to {k - 1}")
        k = len(class_names)
    cm = np.bincount(t * k + p, minlength=k * k).reshape(k, k)
    rows = cm.sum(axis=1, keepdims=True)
    shown = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0) if normalize else cm
    names = [str(c) for c in class_names] if class_names is not None else [str(i) for i in range(k)]

    side = max(3.6, 0.36 * k + 1.6)
    fig, ax = plt.subplots(figsize=(side + 0.8, side), layout="constrained")
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    ax.grid(False)
    ax.set_xticks(range(k), names, rotation=45 if max(map(len, names)) > 2 else 0)
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    hi = 1.0 if normalize else max(float(shown.max()), 1.0)
    for i in range(k):
        for j in range(k):
            if cm[i, j]:
                ax.text(
                    j,
                    i,
                    str(cm[i, j]),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if shown[i, j] > 0.55 * hi else "black",
                )
    fig.colorbar(im, ax=ax, shrink=0.8, label="fraction of row" if normalize else "count")
    acc = np.trace(cm) / cm.sum()
    ax.set_title(title or f"confusion matrix (accuracy {acc:.1%})")
    return fig


@styled
def covariance(
    matrices: Mapping[str, Any],
    *,
    title: str | None = None,
    cmap: str = "RdBu_r",
    symmetric: bool = True,
) -> Figure:
    """Heatmaps of ``d×d`` matrices (e.g. feature covariances) side by side, one colour scale.

    A shared scale makes "the source covariance looks like the target's after CORAL"
    visible. With ``symmetric=True`` the scale is centred on 0 (±max |entry|).

    Args:
        matrices: ``{panel title: d×d tensor/array}``; sizes may differ between panels.

    Returns:
        The Figure: one axis per matrix plus one shared colour bar.
    """
    if not isinstance(matrices, Mapping) or not matrices:
        raise ValueError("matrices must be a non-empty dict {title: d×d matrix}")
    mats = {}
    for name, m in matrices.items():
        a = _to_numpy(m, f"matrices[{name!r}]").astype(np.float64)
        if a.ndim != 2 or a.shape[0] != a.shape[1]:
            raise ValueError(f"matrices[{name!r}] must be square d×d, got shape {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError(f"matrices[{name!r}] contains NaN or Inf")
        mats[str(name)] = a
    if symmetric:
        vmax = max(float(np.abs(a).max()) for a in mats.values()) or 1.0
        vmin = -vmax
    else:
        vmin = min(float(a.min()) for a in mats.values())
        vmax = max(float(a.max()) for a in mats.values())
    n = len(mats)
    fig, axes = plt.subplots(
        1, n, figsize=(3.2 * n + 0.9, 3.4), squeeze=False, layout="constrained"
    )
    im = None
    for ax, (name, a) in zip(axes.flat, mats.items(), strict=True):
        im = ax.imshow(a, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.grid(False)
        ax.set_title(name)
        ax.set_xlabel("feature")
        ax.set_ylabel("feature")
    fig.colorbar(im, ax=list(axes.flat), shrink=0.85)
    if title:
        fig.suptitle(title, fontweight="bold")
    return fig


# --------------------------------------------------------------------------- comparisons


def _mean_std(v: Any, name: str) -> tuple[float, float, int]:
    """A result → (mean, std, n). A tuple ``(mean, std)`` is read as such; a list/array as
    per-seed values (std with ddof=1 when n > 1, else 0); a number as one value."""
    if isinstance(v, tuple):
        if len(v) != 2:
            raise ValueError(f"{name}: a tuple must be (mean, std), got {v!r}")
        return float(v[0]), float(v[1]), 0
    a = _to_numpy(v, name).astype(np.float64).reshape(-1)
    if a.size == 0:
        raise ValueError(f"{name}: no values")
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: contains NaN or Inf")
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0, int(a.size)


@styled
def compare(
    results: Mapping[str, Any],
    *,
    ylabel: str = "accuracy",
    title: str | None = None,
    percent: bool | None = None,
    ylim: tuple[float, float] | None = None,
    baseline: float | None = None,
) -> Figure:
    """Bar chart of methods with error bars (± one standard deviation), each bar annotated.

    Args:
        results: ``{name: values}`` where values are per-seed numbers (list/array), a
            ``(mean, std)`` tuple, or one number. A nested ``{name: {group: values}}``
            draws grouped bars (one colour per group, e.g. per labels-per-class).
        percent: annotate as percentages; default when every mean is within [0, 1].
        baseline: draw a dotted horizontal line (e.g. chance level).

    Returns:
        The Figure with one axis; one bar container per group (one when not nested).
    """
    if not isinstance(results, Mapping) or not results:
        raise ValueError("results must be a non-empty dict {name: values}")
    nested = all(isinstance(v, Mapping) for v in results.values())
    if any(isinstance(v, Mapping) for v in results.values()) and not nested:
        raise ValueError("either every value of results is a dict {group: values} or none is")
    if nested:
        groups = list(dict.fromkeys(g for v in results.values() for g in v))
        table = {
            g: [
                _mean_std(v[g], f"results[{n!r}][{g!r}]") if g in v else (np.nan, 0.0, 0)
                for n, v in results.items()
            ]
            for g in groups
        }
    else:
        table = {"": [_mean_std(v, f"results[{n!r}]") for n, v in results.items()]}
    names = [str(n) for n in results]
    means = np.array([[m for m, _, _ in rows] for rows in table.values()])
    if percent is None:
        finite = means[np.isfinite(means)]
        percent = bool(finite.size) and finite.min() >= 0 and finite.max() <= 1

    x = np.arange(len(names))
    width = 0.8 / len(table)
    fig, ax = plt.subplots(
        figsize=(max(4.0, 1.0 * len(names) * max(1, 0.6 * len(table)) + 1.5), 3.6),
        layout="constrained",
    )
    for gi, (group, rows) in enumerate(table.items()):
        m = np.array([r[0] for r in rows])
        s = np.array([r[1] for r in rows])
        offs = x - 0.4 + width * (gi + 0.5)
        bars = ax.bar(
            offs,
            m,
            width * 0.92,
            yerr=s,
            capsize=3,
            label=str(group) or None,
            error_kw={"elinewidth": 1.2, "ecolor": "0.25"},
        )
        for b, mi, si in zip(bars, m, s, strict=True):
            if not np.isfinite(mi):
                continue
            text = (f"{mi:.1%}" if percent else f"{mi:.3g}") + (
                f"\n±{si:.1%}" if percent and si else (f"\n±{si:.2g}" if si else "")
            )
            ax.annotate(
                text,
                (b.get_x() + b.get_width() / 2, mi + si),
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=8,
            )
    ax.set_xticks(x, names, rotation=20 if max(map(len, names)) > 10 else 0)
    ax.set_ylabel(ylabel)
    ax.grid(axis="x", visible=False)
    if baseline is not None:
        ax.axhline(baseline, color="0.4", ls=":", lw=1.2, label="chance" if percent else None)
    if ylim is not None:
        ax.set_ylim(*ylim)
    elif percent:
        ax.set_ylim(0, 1.12)
    if percent:
        ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    if nested or baseline is not None:
        ax.legend(loc="upper left", bbox_to_anchor=(1, 1))
    if title:
        ax.set_title(title)
    return fig


@styled
def curves(
    x: Sequence[float] | Mapping[str, Sequence[float]],
    results: Mapping[str, Any],
    *,
    xlabel: str = "",
    ylabel: str = "accuracy",
    title: str | None = None,
    logx: bool = False,
    percent: bool | None = None,
    baseline: float | None = None,
    baseline_label: str | None = None,
) -> Figure:
    """Mean ± one standard deviation over seeds, one line per method, against ``x``.

    Typical use: accuracy against labels per class, ``x = [1, 5, 10, 30]`` and
    ``results = {"pretrained": [[acc at 1, 5, 10, 30] for seed 0, [...] seed 1, ...], ...}``.

    Args:
        x: the x values shared by every line, or ``{name: x values}`` when lines differ
            (e.g. relative depth of each network's blocks).
        results: ``{name: values}``, values an array ``seeds × len(x)`` (a single list of
            ``len(x)`` numbers is one seed: no band). NaN marks a missing point.
        baseline: draw a dotted horizontal line (e.g. chance level).
        baseline_label: the dotted line's legend entry (none without it).

    Returns:
        The Figure with one axis: one line per name (shaded band when ≥ 2 seeds).
    """
    if not isinstance(results, Mapping) or not results:
        raise ValueError("results must be a non-empty dict {name: per-seed lists}")
    if isinstance(x, Mapping):
        missing = [n for n in results if n not in x]
        if missing:
            raise ValueError(f"x has no values for {missing}")
        xs_of = {n: _to_numpy(x[n], f"x[{n!r}]").astype(np.float64).reshape(-1) for n in results}
    else:
        shared = _to_numpy(x, "x").astype(np.float64).reshape(-1)
        xs_of = dict.fromkeys(results, shared)
    if any(v.size == 0 for v in xs_of.values()):
        raise ValueError("x is empty")
    fig, ax = plt.subplots(figsize=(5.4, 3.8), layout="constrained")
    all_means = []
    for name, v in results.items():
        xs = xs_of[name]
        a = _to_numpy(v, f"results[{name!r}]").astype(np.float64)
        if a.ndim == 1:
            a = a[None, :]
        if a.ndim != 2 or a.shape[1] != xs.size:
            raise ValueError(
                f"results[{name!r}] must be seeds × len(x) = (·, {xs.size}), got {a.shape}"
            )
        if np.isinf(a).any():
            raise ValueError(f"results[{name!r}] contains Inf")
        n = np.sum(~np.isnan(a), axis=0)
        if (n == 0).any():
            raise ValueError(f"results[{name!r}] has a column with no values (all NaN)")
        mean = np.nanmean(a, axis=0)
        std = np.array([np.nanstd(a[:, j], ddof=1) if n[j] > 1 else 0.0 for j in range(xs.size)])
        label = f"{name} (n={a.shape[0]})" if a.shape[0] > 1 else str(name)
        (line,) = ax.plot(xs, mean, marker="o", ms=4, label=label)
        if a.shape[0] > 1:
            ax.fill_between(xs, mean - std, mean + std, color=line.get_color(), alpha=0.2, lw=0)
        all_means.append(mean)
    if logx:
        ax.set_xscale("log")
        ticks = np.unique(np.concatenate(list(xs_of.values())))
        ax.set_xticks(ticks, [f"{v:g}" for v in ticks])
    if baseline is not None:
        ax.axhline(baseline, color="0.4", ls=":", lw=1.2, label=baseline_label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    means = np.concatenate(all_means)
    if percent is None:
        finite = means[np.isfinite(means)]
        percent = bool(finite.size) and finite.min() >= 0 and finite.max() <= 1
    if percent:
        ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax.legend()
    if title:
        ax.set_title(title)
    return fig
