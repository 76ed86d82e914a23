"""Lesson 05's grader: CDAN+E's entropy weights (Long et al., NeurIPS 2018).

The student writes ``entropy_weights(g_s, g_t)``: for every row of the class probabilities
of a source batch ``g_s`` ``(n_s, C)`` and a target batch ``g_t`` ``(n_t, C)``

    H(g) = −Σ_c g_c log g_c            (0 · log 0 = 0: a one-hot row has H = 0)
    w    = 1 + exp(−H(g))              (2 for a one-hot row, 1 + 1/C for a uniform one)

then each domain's weights normalised to sum to that domain's share of the batch,
``w / w.sum() · n_domain / (n_s + n_t)``, returned as one vector ``(n_s + n_t,)``.
:func:`check_entropy_weights` compares with ``tlearn.adapt.cdan.entropy_weights`` and says
*what* differs.
"""

from __future__ import annotations

from collections.abc import Callable

from tlearn.exercises import _call, _feedback

__all__ = ["check_entropy_weights"]


def _cases():
    import torch

    g = torch.Generator().manual_seed(0)
    one_hot = torch.eye(4, dtype=torch.float64)[[0, 2]]  # confident rows: H = 0, 0·log 0
    uniform = torch.full((1, 4), 0.25, dtype=torch.float64)
    soft_s = torch.softmax(2 * torch.randn(5, 4, generator=g, dtype=torch.float64), 1)
    soft_t = torch.softmax(torch.randn(3, 4, generator=g, dtype=torch.float64), 1)
    return [
        (torch.cat([one_hot, soft_s]), torch.cat([uniform, soft_t])),  # 7 source, 4 target
        (soft_s[:2], soft_t),
    ]


def _raw(g):
    import torch

    h = -torch.special.xlogy(g, g).sum(1)
    return h, 1 + torch.exp(-h)


def check_entropy_weights(fn: Callable) -> bool:
    """Lesson 05: ``fn(g_s, g_t)`` must return CDAN+E's normalised example weights.

    Two cases with unequal batch sizes (one with one-hot rows, whose ``g·log g`` is NaN
    unless 0·log 0 is taken as 0). Recognises: NaN from ``0·log 0``, the weights left
    unnormalised, normalised over the whole batch instead of per domain, normalised to sum
    to 1 per domain (each domain should get its *share*), ``exp(+H)`` instead of ``exp(−H)``,
    the "1 +" missing, a base-2 logarithm, and a result of the wrong shape.
    """
    import torch

    from tlearn.adapt.cdan import entropy_weights

    name = "check_entropy_weights"
    problems: list[str] = []
    hints: list[str] = []
    for g_s, g_t in _cases():
        case = f"n_s = {len(g_s)}, n_t = {len(g_t)}"
        copies = g_s.clone(), g_t.clone()
        got, err = _call(fn, g_s, g_t)
        if err:
            problems.append(f"{case}: {err}")
            break
        if not torch.equal(g_s, copies[0]) or not torch.equal(g_t, copies[1]):
            problems.append(f"{case}: your function changed its input in place")
        want = entropy_weights(g_s, g_t).double()
        if not isinstance(got, torch.Tensor) or got.shape != want.shape:
            shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            problems.append(f"{case}: expected a tensor of shape {tuple(want.shape)}, got {shape}")
            hints.append("one weight per row of [g_s; g_t]: torch.cat of the two domains' weights")
            break
        got = got.detach().double()
        if torch.allclose(got, want, atol=1e-9):
            continue
        problems.append(
            f"{case}: weights differ (max error {(got - want).abs().nan_to_num(9).max():.3g})"
        )
        n_s, n_t = len(g_s), len(g_t)
        n = n_s + n_t
        (h_s, w_s), (h_t, w_t) = _raw(g_s), _raw(g_t)
        w = torch.cat([w_s, w_t])

        def like(x, got=got):
            return torch.allclose(got, x, atol=1e-9)

        if torch.isnan(got).any():
            hints.append(
                "0·log 0 gave NaN for a one-hot row: use torch.special.xlogy(g, g) "
                "(0 where g = 0) or g * torch.log(g.clamp_min(1e-12))"
            )
        elif like(w):
            hints.append("normalise per domain: w / w.sum() · n_domain / (n_s + n_t)")
        elif like(w / w.sum()):
            hints.append(
                "normalise each domain separately, so confident target rows cannot take the "
                "source's share of the loss: w_s / w_s.sum() · n_s / n, the same for w_t"
            )
        elif like(torch.cat([w_s / w_s.sum(), w_t / w_t.sum()])):
            hints.append("each domain's weights sum to its share n_domain / (n_s + n_t), not to 1")
        elif like(
            torch.cat(
                [
                    v / v.sum() * k / n
                    for v, k in ((1 + torch.exp(h_s), n_s), (1 + torch.exp(h_t), n_t))
                ]
            )
        ):  # noqa: E501
            hints.append("confident rows (low entropy) weigh more: w = 1 + exp(−H), not exp(+H)")
        elif like(
            torch.cat(
                [v / v.sum() * k / n for v, k in ((torch.exp(-h_s), n_s), (torch.exp(-h_t), n_t))]
            )
        ):  # noqa: E501
            hints.append("w = 1 + exp(−H): without the 1, uncertain rows get almost no weight")
        elif like(
            torch.cat(
                [
                    v / v.sum() * k / n
                    for v, k in (
                        (1 + torch.exp(-h_s / torch.log(torch.tensor(2.0))), n_s),
                        (1 + torch.exp(-h_t / torch.log(torch.tensor(2.0))), n_t),
                    )
                ]
            )
        ):  # noqa: E501
            hints.append("the entropy is in nats: natural log, torch.log, not log2")
        else:
            hints.append("H = −Σ_c g log g per row; w = 1 + exp(−H); normalise per domain")
        break
    return _feedback(name, problems, hints)
