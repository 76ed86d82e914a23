"""Lesson 03's grader: one Deep CORAL training step (Sun & Saenko, ECCV workshops 2016).

The student writes ``coral_step(model, xs, ys, xt, optimizer, w)``: the features of a source
batch and of a target batch (two forward passes, so each BatchNorm normalises each domain
with its own batch statistics), the class loss on the source, ``w`` times the CORAL loss of
the two feature batches, backward, step. :func:`check_coral_step` runs it next to a
reference step on copies of one small network and says *what* differs.
"""

from __future__ import annotations

from collections.abc import Callable

from tlearn.exercises import _call, _feedback

__all__ = ["check_coral_step", "reference_coral_step"]


def reference_coral_step(model, xs, ys, xt, optimizer, w, *, joint=False, zero_grad=True):
    """The step ``fit_adapt(method="coral", bn="per_domain")`` takes, written out.

    ``joint`` and ``zero_grad=False`` are the slips the grader recognises (one concatenated
    batch; gradients left over from the previous step). Returns ``(class loss, CORAL loss)``.
    """
    import torch
    import torch.nn.functional as F

    from tlearn.adapt import coral_loss

    if joint:  # one batch: BatchNorm sees the mixture's statistics
        z = model.features(torch.cat([xs, xt]))
        zs, zt = z[: len(xs)], z[len(xs) :]
    else:  # a pass per domain: each normalised with its own batch statistics
        zs, zt = model.features(xs), model.features(xt)
    class_loss = F.cross_entropy(model.head(zs), ys)
    align = coral_loss(zs, zt)
    if zero_grad:
        optimizer.zero_grad()
    (class_loss + w * align).backward()
    optimizer.step()
    return class_loss.item(), align.item()


def _setup(seed: int):
    import torch

    from tlearn.models import DigitNet

    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = DigitNet(feature_dim=16).train()
    xs = torch.rand(24, 1, 32, 32, generator=g)
    ys = torch.randint(0, 10, (24,), generator=g)
    xt = (torch.rand(20, 1, 32, 32, generator=g) * 0.5 + 0.4).clamp(0, 1)
    return net, xs, ys, xt


def _run(step, seed: int, w: float, stale: bool):
    """``step`` on a fresh copy of the test network with plain SGD; gradients of an earlier
    batch are left in ``.grad`` when ``stale`` (a step must clear them). Returns
    (returned value, error, parameters after the step)."""
    import torch

    net, xs, ys, xt = _setup(seed)
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    if stale:
        for p in net.parameters():
            p.grad = torch.full_like(p, 0.3)
    out, err = _call(step, net, xs, ys, xt, opt, w)
    return out, err, [p.detach().clone() for p in net.parameters()], net


def _same(a, b, tol=1e-5) -> bool:
    import torch

    return all(torch.allclose(x, y, atol=tol, rtol=1e-4) for x, y in zip(a, b, strict=True))


def check_coral_step(fn: Callable) -> bool:
    """Lesson 03: ``fn(model, xs, ys, xt, optimizer, w)`` must take one Deep CORAL step
    and return ``(class_loss, coral_loss)`` as two numbers:

        z_s = model.features(xs),  z_t = model.features(xt)        (two forward passes)
        L = CE(model.head(z_s), y_s) + w · ℓ_CORAL(z_s, z_t)
        optimizer.zero_grad(); L.backward(); optimizer.step()

    Compared with :func:`reference_coral_step` on copies of one small DigitNet (train mode,
    plain SGD, so the update shows the gradient's size) for two weights w, with gradients of
    an earlier batch left in ``.grad``. Recognises: no return value, no update (no
    ``backward``/``step``), the weight ignored, gradients never cleared, one concatenated
    batch instead of a pass per domain, the CORAL loss on the logits, target labels asked for.
    """
    name = "check_coral_step"
    problems: list[str] = []
    hints: list[str] = []
    for w in (0.0, 50.0):
        want = _run(reference_coral_step, 0, w, stale=True)
        got, err, params, _ = _run(fn, 0, w, stale=True)
        case = f"w = {w:g}"
        if err:
            problems.append(f"{case}: {err}")
            if "target" in err.lower() or "label" in err.lower():
                hints.append("the target batch has no labels: only xs, ys and xt are given")
            break
        if got is None:
            problems.append(f"{case}: your function returned None")
            hints.append("end with `return class_loss.item(), align.item()`")
            break
        try:
            cl, al = (float(v) for v in got)
        except (TypeError, ValueError):
            problems.append(f"{case}: expected two numbers (class loss, CORAL loss), got {got!r}")
            hints.append("return a pair: `return class_loss.item(), align.item()`")
            break
        ref_cl, ref_al = want[0]
        before = _setup(0)[0]
        if _same(params, [p.detach() for p in before.parameters()], tol=0):
            problems.append(f"{case}: the parameters did not change")
            hints.append("call `loss.backward()` and then `optimizer.step()`")
            break
        joint = _run(lambda *a: reference_coral_step(*a, joint=True), 0, w, stale=True)
        if abs(cl - ref_cl) > 1e-4 * max(1, abs(ref_cl)):
            problems.append(f"{case}: class loss {cl:.5g}, expected {ref_cl:.5g}")
            if abs(cl - joint[0][0]) < 1e-4 * max(1, abs(ref_cl)):
                hints.append(
                    "pass the source and the target through the network separately, "
                    "`model.features(xs)` then `model.features(xt)`: in one concatenated "
                    "batch BatchNorm normalises both with the mixture's statistics"
                )
            else:
                hints.append("class loss: `F.cross_entropy(model.head(zs), ys)` on the source only")
            break
        if abs(al - ref_al) > 1e-4 * max(1e-6, abs(ref_al)) + 1e-9:
            problems.append(f"{case}: CORAL loss {al:.5g}, expected {ref_al:.5g}")
            hints.append(
                "align the *features* `zs = model.features(xs)`, `zt = model.features(xt)` "
                "with `adapt.coral_loss(zs, zt)` (not the logits)"
            )
            break
        if not _same(params, want[2]):
            fresh = _run(reference_coral_step, 0, w, stale=False)
            no_zero = _run(lambda *a: reference_coral_step(*a, zero_grad=False), 0, w, stale=True)
            unweighted = _run(
                lambda m, a, b, c, o, _w: reference_coral_step(m, a, b, c, o, 1.0), 0, w, True
            )
            problems.append(f"{case}: the loss values are right but the update is not")
            if _same(params, no_zero[2]):
                hints.append(
                    "clear the gradients of the previous step first: `optimizer.zero_grad()` "
                    "before `loss.backward()`"
                )
            elif _same(params, unweighted[2]) and w != 1.0:
                hints.append("the update ignores w: minimise `class_loss + w * align`")
            elif w == 0.0 or not _same(params, fresh[2]):
                hints.append(
                    "backpropagate the total `class_loss + w * align` once, then step once"
                )
            break
    if not problems:
        # one more case: the class loss must not change with w, the update must
        a = _run(fn, 1, 0.0, stale=False)
        b = _run(fn, 1, 50.0, stale=False)
        if a[1] is None and b[1] is None and _same(a[2], b[2]):
            problems.append("w = 0 and w = 50 give the same update")
            hints.append("the CORAL term must enter the loss you backpropagate: `+ w * align`")
    return _feedback(name, problems, hints)
