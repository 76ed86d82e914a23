"""tlearn.plot: every function returns a Figure whose artists carry the numbers it was given.

The checks read the drawn data back (bar heights, line y-values, image pixels, annotation
texts) and compare them with independent computations (numpy, scikit-learn), so a plot
that draws the wrong numbers fails, not only one that crashes.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.container import BarContainer  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from sklearn.metrics import confusion_matrix  # noqa: E402
from torch.utils.data import TensorDataset  # noqa: E402

from tlearn import plot  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _image_axes(fig: Figure) -> list:
    return [ax for ax in fig.axes if ax.get_images()]


# --------------------------------------------------------------------------- image_grid


def test_image_grid_dataset_reads_labels_and_pixels():
    g = torch.Generator().manual_seed(0)
    X = torch.rand(13, 1, 8, 8, generator=g)
    y = torch.arange(13) % 10
    fig = plot.image_grid(TensorDataset(X, y), nrow=5, title="t")
    assert isinstance(fig, Figure)
    axes = _image_axes(fig)
    assert len(axes) == 13 == len(fig.axes)  # unused grid cells are removed
    assert [ax.get_title() for ax in axes] == [str(int(v)) for v in y]
    np.testing.assert_allclose(axes[3].get_images()[0].get_array(), X[3, 0].numpy())
    # 5 per row → 3 rows: the first and sixth image sit in different rows, same column
    p0, p5 = axes[0].get_position(), axes[5].get_position()
    assert p0.x0 == pytest.approx(p5.x0) and p5.y0 < p0.y0


def test_image_grid_tensor_rgb_list_and_rescaling():
    X = torch.linspace(-2, 2, 2 * 3 * 4 * 4).reshape(2, 3, 4, 4)
    fig = plot.image_grid(X, labels=["a", "b"])
    img = _image_axes(fig)[0].get_images()[0].get_array()
    assert img.shape == (4, 4, 3)  # C×H×W → H×W×C for imshow
    assert img.min() == pytest.approx(0.0) and img.max() == pytest.approx(1.0)
    fig = plot.image_grid([torch.rand(1, 6, 6) for _ in range(4)])
    assert len(_image_axes(fig)) == 4
    fig = plot.image_grid(np.random.default_rng(0).random((70, 5, 5)), max_images=12)
    assert len(_image_axes(fig)) == 12


def test_image_grid_predictions_mark_mistakes():
    fig = plot.image_grid(torch.rand(3, 1, 4, 4), labels=[1, 2, 3], predictions=[1, 0, 3])
    titles = [ax.title for ax in fig.axes]
    assert [t.get_text() for t in titles] == ["1→1", "2→0", "3→3"]
    assert titles[1].get_color() != titles[0].get_color()


@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.rand(4, 4), "N×C×H×W"),
        (torch.rand(0, 1, 4, 4), "empty"),
        (42, "Dataset"),
    ],
)
def test_image_grid_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        plot.image_grid(bad)


def test_image_grid_too_few_labels():
    with pytest.raises(ValueError, match="labels"):
        plot.image_grid(torch.rand(3, 1, 4, 4), labels=[1])


# --------------------------------------------------------------------------- history

HIST = {
    "train_loss": [2.0, 1.0, 0.5],
    "val_loss": [2.1, 1.3, 0.9],
    "train_accuracy": [0.3, 0.6, 0.8],
    "val_accuracy": [0.25, 0.5, 0.7],
}


class _FakeHistory:
    """Stands in for train.History: only ``.records`` is read."""

    def __init__(self, d):
        n = len(next(iter(d.values())))
        self.records = [{"epoch": i, **{k: v[i] for k, v in d.items()}} for i in range(n)]


def test_history_panels_and_values():
    fig = plot.history(_FakeHistory(HIST))
    assert len(fig.axes) == 2
    loss_ax, acc_ax = fig.axes
    ys = {line.get_label(): list(line.get_ydata()) for line in loss_ax.get_lines()}
    assert ys == {"train": HIST["train_loss"], "val": HIST["val_loss"]}
    assert list(loss_ax.get_lines()[0].get_xdata()) == [1, 2, 3]
    assert len(acc_ax.get_lines()) == 2


def test_history_overlay_runs_by_name_and_list():
    records = [{"train_loss": 1.5}, {"train_loss": 1.0}]
    fig = plot.history({"a": HIST, "b": records}, keys="loss")
    assert len(fig.axes) == 1
    assert {ln.get_label() for ln in fig.axes[0].get_lines()} == {"a train", "a val", "b train"}
    fig = plot.history([HIST, HIST], keys=("loss", "accuracy"), labels=["x", "y"])
    assert len(fig.axes[0].get_lines()) == 4


def test_history_exact_key_and_errors():
    fig = plot.history([{"lambda": 0.0}, {"lambda": 0.5}], keys=["lambda"])
    assert list(fig.axes[0].get_lines()[0].get_ydata()) == [0.0, 0.5]
    with pytest.raises(ValueError, match="no column"):
        plot.history(HIST, keys=["bleu"])
    with pytest.raises(ValueError, match="labels"):
        plot.history([HIST, HIST], labels=["only one"])
    with pytest.raises(ValueError):
        plot.history("not a history")


# --------------------------------------------------------------------------- embedding


def test_embedding_pca_matches_sklearn_and_marks_domains():
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(0)
    Z = rng.normal(size=(60, 5)) * np.array([5, 3, 1, 1, 1])
    y = np.arange(60) % 3
    dom = np.array(["synth"] * 30 + ["uci"] * 30)
    fig = plot.embedding(torch.tensor(Z), y, dom, method="pca")
    assert len(fig.axes) == 1
    scatters = [c for c in fig.axes[0].collections if isinstance(c, PathCollection)]
    assert len(scatters) == 2  # one per domain
    expected = PCA(n_components=2, random_state=0).fit_transform(Z)
    np.testing.assert_allclose(scatters[0].get_offsets(), expected[:30], atol=1e-8)
    # colours follow the class: points of the same class share a colour
    colors = scatters[0].get_facecolors()
    assert np.allclose(colors[0], colors[3]) and not np.allclose(colors[0], colors[1])


def test_embedding_tsne_runs_and_is_seeded():
    rng = np.random.default_rng(1)
    Z = np.concatenate([rng.normal(0, 1, (20, 4)), rng.normal(8, 1, (20, 4))])
    y = np.repeat([0, 1], 20)
    a = plot.embedding(Z, y, method="tsne", seed=3).axes[0].collections[0].get_offsets()
    b = plot.embedding(Z, y, method="tsne", seed=3).axes[0].collections[0].get_offsets()
    np.testing.assert_allclose(a, b)


def test_embedding_bad_input():
    Z = np.zeros((10, 3))
    with pytest.raises(ValueError, match="labels"):
        plot.embedding(Z, np.zeros(9))
    with pytest.raises(ValueError, match="domains"):
        plot.embedding(Z, np.zeros(10), domains=np.zeros(4))
    with pytest.raises(ValueError, match="method"):
        plot.embedding(Z, np.zeros(10), method="umap")
    Z[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        plot.embedding(Z, np.zeros(10))


# --------------------------------------------------------------------------- confusion


def test_confusion_counts_match_sklearn():
    rng = np.random.default_rng(0)
    t = rng.integers(0, 4, 100)
    p = np.where(rng.random(100) < 0.7, t, rng.integers(0, 4, 100))
    fig = plot.confusion(t, p, class_names=["a", "b", "c", "d"])
    assert len(fig.axes) == 2  # matrix + colour bar
    ax = fig.axes[0]
    cm = confusion_matrix(t, p, labels=range(4))
    texts = {
        (round(tx.get_position()[1]), round(tx.get_position()[0])): int(tx.get_text())
        for tx in ax.texts
    }
    assert texts == {(i, j): int(cm[i, j]) for i in range(4) for j in range(4) if cm[i, j]}
    np.testing.assert_allclose(ax.get_images()[0].get_array(), cm / cm.sum(1, keepdims=True))
    assert f"{np.trace(cm) / cm.sum():.1%}" in ax.get_title()


def test_confusion_bad_input():
    with pytest.raises(ValueError, match="entries"):
        plot.confusion([0, 1], [0])
    with pytest.raises(ValueError, match="integer"):
        plot.confusion([0.5, 1], [0, 1])
    with pytest.raises(ValueError, match="class_names"):
        plot.confusion([0, 3], [0, 1], class_names=["a", "b"])


# --------------------------------------------------------------------------- compare


def test_compare_bars_are_means_with_std_errorbars():
    seeds = [0.2, 0.3, 0.4]
    fig = plot.compare({"a": seeds, "b": (0.8, 0.05), "c": 0.5}, title="t")
    ax = fig.axes[0]
    heights = [b.get_height() for b in ax.patches]
    np.testing.assert_allclose(heights, [np.mean(seeds), 0.8, 0.5])
    bars = next(c for c in ax.containers if isinstance(c, BarContainer))
    err = bars.errorbar.lines[2][0].get_segments()
    spans = [seg[1, 1] - seg[0, 1] for seg in err]
    np.testing.assert_allclose(spans, [2 * np.std(seeds, ddof=1), 0.1, 0.0], atol=1e-12)
    assert any("30.0%" in t.get_text() for t in ax.texts)


def test_compare_grouped():
    fig = plot.compare(
        {"random": {"1": [0.1, 0.2], "10": [0.5]}, "pretrained": {"1": [0.5, 0.6], "10": [0.8]}}
    )
    ax = fig.axes[0]
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert len(bars) == 2  # one bar container per group
    np.testing.assert_allclose([p.get_height() for p in bars[1].patches], [0.5, 0.8])


def test_compare_bad_input():
    with pytest.raises(ValueError, match="non-empty"):
        plot.compare({})
    with pytest.raises(ValueError, match="mean, std"):
        plot.compare({"a": (1, 2, 3)})
    with pytest.raises(ValueError, match="NaN"):
        plot.compare({"a": [0.1, float("nan")]})
    with pytest.raises(ValueError, match="either every"):
        plot.compare({"a": {"x": 1}, "b": 2})


# --------------------------------------------------------------------------- covariance


def test_covariance_shared_scale():
    a = np.cov(np.random.default_rng(0).normal(size=(4, 30)))
    b = 3 * a
    fig = plot.covariance({"source": a, "target": torch.tensor(b)})
    assert len(fig.axes) == 3  # two heatmaps + one colour bar
    ims = [ax.get_images()[0] for ax in fig.axes[:2]]
    vmax = np.abs(b).max()
    for im in ims:
        assert im.get_clim() == pytest.approx((-vmax, vmax))
    np.testing.assert_allclose(ims[1].get_array(), b)
    assert [ax.get_title() for ax in fig.axes[:2]] == ["source", "target"]


def test_covariance_bad_input():
    with pytest.raises(ValueError, match="square"):
        plot.covariance({"a": np.zeros((2, 3))})
    with pytest.raises(ValueError, match="non-empty"):
        plot.covariance({})
    with pytest.raises(ValueError, match="NaN"):
        plot.covariance({"a": np.full((2, 2), np.nan)})


# --------------------------------------------------------------------------- curves


def test_curves_mean_and_band():
    x = [1, 5, 10, 30]
    runs = np.array([[0.1, 0.5, 0.6, 0.9], [0.3, 0.5, 0.8, 0.9], [0.2, 0.8, 0.7, 0.9]])
    fig = plot.curves(
        x,
        {"pretrained": runs.tolist(), "random": [0.1, 0.1, 0.2, 0.3]},
        xlabel="labels per class",
        logx=True,
    )
    ax = fig.axes[0]
    lines = ax.get_lines()
    assert len(lines) == 2
    np.testing.assert_allclose(lines[0].get_ydata(), runs.mean(0))
    assert len(ax.collections) == 1  # a band only for the multi-seed method
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    std = runs.std(0, ddof=1)
    assert band.max() == pytest.approx((runs.mean(0) + std).max())
    assert ax.get_xscale() == "log"


def test_curves_bad_input():
    with pytest.raises(ValueError, match="len\\(x\\)"):
        plot.curves([1, 2, 3], {"a": [[0.1, 0.2]]})
    with pytest.raises(ValueError, match="non-empty"):
        plot.curves([1], {})


# --------------------------------------------------------------------------- style


def test_style_does_not_leak_and_nothing_is_shown(monkeypatch):
    shown = []
    monkeypatch.setattr(plt, "show", lambda *a, **k: shown.append(1))
    before = plt.rcParams["axes.spines.top"]
    fig = plot.compare({"a": [0.5]})
    assert plt.rcParams["axes.spines.top"] == before
    assert not fig.axes[0].spines["top"].get_visible()  # but the figure got the style
    assert not shown
    assert plt.fignum_exists(fig.number)  # the caller's figure stays open


def test_curves_per_line_x_and_baseline():
    fig = plot.curves(
        {"short": [0.0, 1.0], "long": [0.0, 0.5, 1.0]},
        {"short": [[0.5, 0.7], [0.6, 0.8]], "long": [0.2, 0.4, 0.9]},
        baseline=0.1,
    )
    lines = fig.axes[0].get_lines()
    assert [list(ln.get_xdata()) for ln in lines[:2]] == [[0.0, 1.0], [0.0, 0.5, 1.0]]
    np.testing.assert_allclose(lines[0].get_ydata(), [0.55, 0.75])
    assert list(lines[2].get_ydata()) == [0.1, 0.1]  # the baseline
    with pytest.raises(ValueError, match="no values for"):
        plot.curves({"a": [1, 2]}, {"b": [0.1, 0.2]})
