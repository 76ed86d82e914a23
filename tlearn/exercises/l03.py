"""Lesson 03's grader: the Deep CORAL loss, written from its definition (Sun & Saenko, 2016).

The lesson shows the training step and calls ``adapt.coral_loss`` in it; the student writes
that loss: the unbiased covariance of each feature batch, the squared Frobenius norm of their
difference, divided by 4d². :func:`check_coral_loss` compares it with ``np.cov`` and with the
library's gradient, and names the usual slips.
"""

from __future__ import annotations

from collections.abc import Callable

from tlearn.exercises import _call, _feedback

__all__ = ["check_coral_loss"]


def check_coral_loss(fn: Callable) -> bool:
    """Lesson 03: ``fn(zs, zt)`` must return the Deep CORAL loss (Sun & Saenko, 2016)

        ℓ = ‖C_S − C_T‖²_F / (4 d²),   C = (X − X̄)ᵀ(X − X̄) / (n − 1)

    as a differentiable scalar tensor. Compared with an independent NumPy computation
    (``np.cov``) on several shapes — different source and target batch sizes, d = 1 — and
    its gradient with ``tlearn.adapt.coral_loss``'s. Recognises the usual slips: the biased
    covariance (÷ n), no centring, the norm not squared, ÷ 4d instead of ÷ 4d².
    """
    import numpy as np
    import torch

    from tlearn.adapt.coral import coral_loss

    name = "check_coral_loss"
    problems: list[str] = []
    hints: list[str] = []
    gen = torch.Generator().manual_seed(0)

    def cov(x, ddof=1, centre=True):
        x = x - x.mean(0) if centre else x
        return x.T @ x / (len(x) - ddof)

    for ns, nt, d in [(16, 16, 4), (20, 11, 6), (9, 30, 1), (50, 40, 8)]:
        zs = torch.randn(ns, d, generator=gen, dtype=torch.float64) * 2 + 1
        zt = (
            torch.randn(nt, d, generator=gen, dtype=torch.float64)
            @ torch.randn(d, d, generator=gen, dtype=torch.float64)
            - 0.5
        )
        xs, xt = zs.numpy(), zt.numpy()
        cs = np.atleast_2d(np.cov(xs, rowvar=False))
        ct = np.atleast_2d(np.cov(xt, rowvar=False))
        want = float(((cs - ct) ** 2).sum() / (4 * d * d))
        a, b = zs.clone().requires_grad_(), zt.clone().requires_grad_()
        out, err = _call(fn, a, b)
        shape = f"zs {ns}×{d}, zt {nt}×{d}"
        if err:
            problems.append(f"{shape}: {err}")
            continue
        if out is None:
            problems.append(f"{shape}: your function returned None")
            hints.append("compute the loss and `return` it (a scalar tensor)")
            continue
        if not isinstance(out, torch.Tensor) or out.numel() != 1:
            problems.append(
                f"{shape}: expected a scalar tensor, got {type(out).__name__} "
                f"{tuple(getattr(out, 'shape', ()))}"
            )
            hints.append(
                "sum the squared differences into one number: (diff ** 2).sum() / (4 * d * d)"
            )
            continue
        got = float(out.detach().reshape(()))
        if not np.isclose(got, want, rtol=1e-6, atol=1e-9):
            problems.append(f"{shape}: expected {want:.6g}, got {got:.6g}")
            frob = float(torch.linalg.matrix_norm(torch.from_numpy(cs - ct)))

            def alt(ddof=1, centre=True, power=2, denom=4 * d * d, zs=zs, zt=zt):
                c1, c2 = cov(zs.detach(), ddof, centre), cov(zt.detach(), ddof, centre)
                return float(torch.linalg.matrix_norm(c1 - c2) ** power / denom)

            if np.isclose(got, alt(ddof=0), rtol=1e-6):
                hints.append("use the unbiased covariance: divide by n − 1, not n (like np.cov)")
            elif np.isclose(got, alt(centre=False), rtol=1e-6):
                hints.append("centre the features first: X − X.mean(dim=0)")
            elif np.isclose(got, frob / (4 * d * d), rtol=1e-6):
                hints.append("square the Frobenius norm: ‖C_S − C_T‖²")
            elif np.isclose(got, frob**2, rtol=1e-6):
                hints.append("divide by 4·d² (d = number of features)")
            elif np.isclose(got, frob**2 / (4 * d), rtol=1e-6) and d > 1:
                hints.append("the normaliser is 4·d², not 4·d")
            else:
                hints.append(
                    "C = (X − X̄)ᵀ(X − X̄) / (n − 1) for each domain separately; "
                    "then ((C_S − C_T) ** 2).sum() / (4 * d * d)"
                )
            continue
        if not out.requires_grad:
            problems.append(f"{shape}: the loss is not differentiable (no gradient can flow)")
            hints.append("stay in torch: no .numpy(), .item() or .detach() inside the loss")
            continue
        out.reshape(()).backward()
        ref_a, ref_b = zs.clone().requires_grad_(), zt.clone().requires_grad_()
        coral_loss(ref_a, ref_b).backward()
        if a.grad is None or not torch.allclose(a.grad, ref_a.grad, atol=1e-8, rtol=1e-5):
            problems.append(f"{shape}: the value is right but the gradient w.r.t. zs is not")
            hints.append("compute everything from the input tensors, without in-place tricks")
    return _feedback(name, problems, list(dict.fromkeys(hints)))
