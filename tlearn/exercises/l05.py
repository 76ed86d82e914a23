"""Lesson 05's grader: CDAN+E's entropy weights (Long et al., NeurIPS 2018).

The student writes ``entropy_weights(g_s, g_t)``: for every row of the class probabilities
of a source batch ``g_s`` ``(n_s, C)`` and a target batch ``g_t`` ``(n_t, C)``

    H(g) = −Σ_c g_c log g_c            (0 · log 0 = 0: a one-hot row has H = 0)
    w    = 1 + exp(−H(g))              (2 for a one-hot row, 1 + 1/C for a uniform one)

then each domain's weights normalised to sum to that domain's share of the batch,
``w / w.sum() · n_domain / (n_s + n_t)``, returned as one vector ``(n_s + n_t,)``.
:func:`check_entropy_weights` compares with ``tlearn.adapt.cdan.entropy_weights`` and says
*what* differs.

Before that, the student writes DANN's gradient reversal layer (Ganin et al., JMLR 2016):
identity forward, ``−λ · grad`` backward; :func:`check_gradient_reversal` grades it.
"""

from __future__ import annotations

from collections.abc import Callable

from tlearn.exercises import _call, _feedback

__all__ = ["check_entropy_weights", "check_gradient_reversal"]


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


def check_gradient_reversal(fn: Callable) -> bool:
    """Lesson 05: ``fn(x, lambda_)`` must be the gradient reversal layer of DANN
    (Ganin et al., JMLR 2016): the identity going forward, ``−λ · grad`` going back.

    ``fn`` may also be a ``torch.autograd.Function`` subclass (its ``apply`` is used).
    Checks values, shapes, that the input is untouched, and the gradient for several λ
    (including λ = 0) through a non-trivial loss, against ``−λ`` times the plain gradient.
    """
    import torch

    name = "check_gradient_reversal"
    if isinstance(fn, type) and issubclass(fn, torch.autograd.Function):
        fn = fn.apply
    problems: list[str] = []
    hints: list[str] = []
    gen = torch.Generator().manual_seed(0)
    for shape, lam in [((5, 3), 1.0), ((4, 6), 0.25), ((2, 3, 4), 2.5), ((7,), 0.0)]:
        x0 = torch.randn(*shape, generator=gen, dtype=torch.float64)
        w = torch.randn(*shape, generator=gen, dtype=torch.float64)
        x = x0.clone().requires_grad_()
        out, err = _call(fn, x, lam)
        label = f"shape {shape}, λ={lam}"
        if err:
            problems.append(f"{label}: {err}")
            continue
        if not isinstance(out, torch.Tensor) or out.shape != x.shape:
            problems.append(
                f"{label}: expected a tensor of shape {tuple(shape)}, got "
                f"{type(out).__name__} {tuple(getattr(out, 'shape', ()))}"
            )
            continue
        if not torch.equal(out.detach(), x0):
            problems.append(f"{label}: the forward pass changed the values")
            hints.append("forward is the identity: return x.view_as(x) (do not scale by λ here)")
            continue
        if not torch.equal(x.detach(), x0):
            problems.append(f"{label}: your function changed its input in place")
        if not out.requires_grad:
            problems.append(f"{label}: the output has no gradient path to x")
            hints.append("subclass torch.autograd.Function and call it with .apply(x, lambda_)")
            continue
        loss = (out * w).sum() + (out**2).sum()  # d loss / d out = w + 2·out
        grads, err = _call(torch.autograd.grad, loss, (x,))
        if err:
            problems.append(f"{label}: backward failed — {err}")
            hints.append(
                "backward must return one value per forward input: (grad, None) for (x, lambda_)"
            )
            continue
        grad = grads[0]
        plain = w + 2 * x0
        want = -lam * plain
        if torch.allclose(grad, want, atol=1e-10):
            continue
        problems.append(f"{label}: gradient is wrong (max error {(grad - want).abs().max():.3g})")
        if torch.allclose(grad, lam * plain, atol=1e-10):
            hints.append("reverse the sign: return -lambda_ * grad_output")
        elif torch.allclose(grad, plain, atol=1e-10):
            hints.append("the gradient came back unchanged: multiply it by −λ in backward")
        elif torch.allclose(grad, -plain, atol=1e-10):
            hints.append("scale by λ as well as flipping the sign: -lambda_ * grad_output")
        else:
            hints.append(
                "backward(ctx, grad_output) should return (-ctx.lambda_ * grad_output, None)"
            )
    return _feedback(name, problems, list(dict.fromkeys(hints)))
