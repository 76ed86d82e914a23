"""Interactive explorers for the lessons (ipywidgets).

Every widget here only *reads* precomputed results — a slider never retrains anything —
so moving it is instant and the notebook stays reproducible. Each function returns the
widget; display it as the last expression of a cell (mark the cell ``# NBVAL_IGNORE_OUTPUT``:
widget state differs from run to run).
"""

from __future__ import annotations

__all__: list[str] = []


# --- lessons 03/04: domain adaptation (tlearn.adapt) ----------------------------------------


def adaptation_weight_explorer(results, *, title: str = "Deep CORAL: the loss weight w"):
    """A slider over precomputed runs ``{w: result}`` (from ``studies.adaptation.weight_sweep``).

    For the chosen w it shows target and source accuracy against w (every run, the chosen
    one circled) and that run's per-epoch loss terms (class loss, alignment loss), read from
    the stored training history. Nothing is trained when the slider moves.

    Args:
        results: ``{weight: result dict}`` with ``target_accuracy``, ``source_accuracy`` and
            ``history`` (records with ``class_loss`` and ``align_loss``), as ``run`` returns.

    Returns:
        An ``ipywidgets.VBox``: the slider, a line of numbers and two PNG images (PNG images
        rather than an ``Output`` area, which keeps headless runs — nbconvert, nbval — from
        waiting on the widget at the end).
    """
    import io

    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    from tlearn import plot
    from tlearn.studies.adaptation import weight_sweep_figure

    if not isinstance(results, dict) or not results:
        raise ValueError("results must be a non-empty dict {weight: result}")
    for w, r in results.items():
        missing = {"target_accuracy", "source_accuracy", "history"} - set(r)
        if missing:
            raise ValueError(f"results[{w!r}] lacks {sorted(missing)}; pass adaptation.run results")
    weights = sorted(results, key=float)
    slider = widgets.SelectionSlider(
        options=[(f"{float(w):g}", w) for w in weights],
        value=weights[len(weights) // 2],
        description="w",
        continuous_update=False,
    )
    text = widgets.HTML()
    images = [widgets.Image(format="png"), widgets.Image(format="png")]

    def png(fig) -> bytes:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        plt.close(fig)
        return buf.getvalue()

    def draw(change=None):
        w = slider.value
        r = results[w]
        text.value = (
            f"<b>{title}</b> — w = {float(w):g}: target {r['target_accuracy']:.1%}, "
            f"source {r['source_accuracy']:.1%}"
        )
        images[0].value = png(weight_sweep_figure(results, highlight=w))
        images[1].value = png(
            plot.history(r["history"], keys=("class_loss", "align_loss"), title=f"w = {float(w):g}")
        )

    slider.observe(draw, names="value")
    draw()
    return widgets.VBox([slider, text, widgets.HBox(images)])


__all__ += ["adaptation_weight_explorer"]


# --- lesson 01: fine-tuning with few labels (tlearn.studies.finetune) -----------------------


def few_shot_explorer(results, *, title: str = "Fine-tuning with few labels"):
    """A slider over labels per class for ``studies.finetune.few_shot_curve`` results.

    For the chosen count k it draws every method's target test accuracy (mean ± std over
    seeds, bars annotated) and lists the per-seed numbers and each method's gain over
    training from scratch, paired by seed (same few-shot set). Nothing is retrained.

    The figure is rendered to PNG into an ``Image`` widget and the numbers into an ``HTML``
    widget — no ``Output`` widget, whose display capture can stall nbconvert/nbclient for
    its whole timeout.

    Args:
        results: a :class:`tlearn.studies.finetune.FewShotResults` (or anything with ``methods``,
            ``per_class``, ``seeds`` and ``accuracies(method, k)``).

    Returns:
        An ``ipywidgets.VBox`` (slider, figure, table).
    """
    import io
    from html import escape

    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    import numpy as np

    from tlearn import plot
    from tlearn.studies.finetune import METHOD_LABELS

    for attr in ("methods", "per_class", "seeds", "accuracies"):
        if not hasattr(results, attr):
            raise ValueError(
                "results must be studies.finetune.FewShotResults (few_shot_curve's output); "
                f"it has no {attr!r}"
            )
    if not results.per_class:
        raise ValueError("results is empty: run studies.finetune.few_shot_curve first")
    slider = widgets.SelectionSlider(
        options=[(str(k), k) for k in results.per_class],
        value=results.per_class[0],
        description="labels/class",
        continuous_update=False,
        style={"description_width": "initial"},
    )
    image = widgets.Image(format="png")
    table = widgets.HTML()

    def draw(change=None):
        k = slider.value
        accs = {METHOD_LABELS.get(m, m): results.accuracies(m, k) for m in results.methods}
        fig = plot.compare(
            {n: a for n, a in accs.items() if a},
            ylabel="target test accuracy",
            title=f"{title}\n{k} labelled image(s) per class",  # two lines: not clipped
        )
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        plt.close(fig)
        image.value = buf.getvalue()
        scratch = results.accuracies("scratch", k) if "scratch" in results.methods else []
        lines = []
        for name, a in accs.items():
            line = f"{name:20s} " + "  ".join(f"{v:.1%}" for v in a)
            if scratch and len(scratch) == len(a) and name != METHOD_LABELS["scratch"]:
                gain = 100 * (np.asarray(a) - np.asarray(scratch))
                per_seed = ", ".join(f"{g:+.1f}" for g in gain)
                line += f"   vs scratch: {gain.mean():+.1f} points (per seed {per_seed})"
            lines.append(line)
        table.value = "<pre>" + escape("\n".join(lines)) + "</pre>"

    slider.observe(draw, names="value")
    draw()
    return widgets.VBox([slider, image, table])


__all__ += ["few_shot_explorer"]
