"""Graders for the lessons' "Your turn" cells.

Each ``check_*`` function runs a student's implementation against tlearn's own on a few
inputs and prints friendly feedback: what was expected, what came back, and a hint. It
returns True when everything passed, so a notebook can also ``assert`` it.
"""

from __future__ import annotations

from collections.abc import Callable

__all__: list[str] = []


def _feedback(name: str, problems: list[str], hints: list[str] | None = None) -> bool:
    """Print a pass/fail report for exercise ``name``; return True when ``problems`` is empty."""
    if not problems:
        print(f"✅ {name}: all checks passed. Well done!")
        return True
    print(f"❌ {name}: {len(problems)} check(s) failed")
    for p in problems:
        print(f"   • {p}")
    for h in hints or []:
        print(f"   hint: {h}")
    return False


def _call(fn: Callable, *args, **kwargs):
    """Call the student's function; turn an exception into a readable problem string."""
    try:
        return fn(*args, **kwargs), None
    except Exception as e:  # noqa: BLE001 - we report any error to the student
        return None, f"your function raised {type(e).__name__}: {e}"


# --- exercises are added below, one section per lesson ---------------------------------


# --- lesson 02: feature extraction (tlearn.features) -------------------------------------


def check_global_avg_pool(fn: Callable) -> bool:
    """Lesson 02: ``fn(t)`` must turn a conv output ``N×C×H×W`` into ``N×C`` by averaging
    over the spatial positions, ``z[n, c] = 1/(HW) Σ_{h,w} t[n, c, h, w]``, as
    ``tlearn.features.global_pool(t, "avg")`` does (Lin et al., Network in Network, 2014).

    Checks several shapes (non-square maps, a batch of one, one channel), that the input is
    left unchanged, and recognises the usual mistakes: averaging over the wrong dimensions,
    keeping the 1×1 dimensions, squeezing away a batch of one, or max instead of mean.
    """
    import torch

    name = "check_global_avg_pool"
    problems: list[str] = []
    hints: list[str] = []
    gen = torch.Generator().manual_seed(0)
    for shape in [(4, 8, 5, 5), (2, 3, 4, 7), (1, 16, 3, 3), (3, 1, 6, 2)]:
        t = torch.randn(*shape, generator=gen)
        original = t.clone()
        out, err = _call(fn, t)
        if err:
            problems.append(f"input {tuple(shape)}: {err}")
            continue
        if not torch.equal(t, original):
            problems.append(f"input {tuple(shape)}: your function changed its input in place")
            hints.append("compute a new tensor; do not write into `t` (no t.mean_(), t[...] = …)")
        if not isinstance(out, torch.Tensor):
            problems.append(f"input {tuple(shape)}: expected a tensor, got {type(out).__name__}")
            continue
        n, c, h, w = shape
        want = t.mean(dim=(2, 3))
        if tuple(out.shape) != (n, c):
            problems.append(
                f"input {tuple(shape)}: expected shape {(n, c)} (N×C), got {tuple(out.shape)}"
            )
            if tuple(out.shape) == (n, c, 1, 1):
                hints.append("drop the 1×1 dimensions: keepdim=False, or .flatten(1)")
            elif out.numel() == n * c:
                hints.append("keep both N and C even when one is 1: avoid .squeeze() without a dim")
            elif tuple(out.shape) in ((n, h, w), (c, h, w), (n, c, h), (n, c, w)):
                hints.append("average over the spatial dimensions only: dim=(2, 3) (H and W)")
            continue
        if torch.allclose(out, want, atol=1e-5):
            continue
        if torch.allclose(out, t.amax(dim=(2, 3)), atol=1e-5):
            problems.append(f"input {tuple(shape)}: you computed the max, not the mean")
            hints.append("global *average* pooling: .mean(dim=(2, 3))")
        elif torch.allclose(out, t.sum(dim=(2, 3)), atol=1e-4):
            problems.append(f"input {tuple(shape)}: you summed; divide by H×W = {h * w}")
        else:
            diff = (out - want).abs().max().item()
            problems.append(
                f"input {tuple(shape)}: values differ from the mean (max error {diff:.3g})"
            )
            hints.append("z[n, c] is the mean of t[n, c, :, :] — one number per image and channel")
    return _feedback(name, problems, list(dict.fromkeys(hints)))


__all__ += ["check_global_avg_pool"]


# --- lesson 00: accuracy ----------------------------------------------------------------


def check_accuracy(accuracy_fn: Callable) -> bool:
    """Lesson 00: ``accuracy_fn(logits, labels)`` must return the fraction of correct argmaxes.

    ``logits`` is N×K (one score per class), ``labels`` is N ints; the answer is a float in [0, 1].
    """
    import torch

    name = "accuracy"
    problems, hints = [], []
    gen = torch.Generator().manual_seed(0)
    cases = [(torch.randn(20, 10, generator=gen), torch.randint(0, 10, (20,), generator=gen))]
    perfect = torch.eye(4) * 5
    cases.append((perfect, torch.arange(4)))  # all right → 1.0
    cases.append((perfect, torch.tensor([1, 2, 3, 0])))  # all wrong → 0.0
    for logits, labels in cases:
        want = (logits.argmax(1) == labels).float().mean().item()
        got, err = _call(accuracy_fn, logits.clone(), labels.clone())
        if err:
            problems.append(err)
            break
        if got is None:
            problems.append("your function returned None")
            hints.append("did you forget the `return` statement?")
            break
        try:
            got = float(got)
        except (TypeError, ValueError):
            problems.append(f"expected a number, got {type(got).__name__}")
            hints.append("reduce to one number: .mean() over the batch, then .item()")
            break
        if abs(got - want) > 1e-6:
            problems.append(f"on {len(labels)} examples expected {want:.3f}, got {got:.3f}")
            if abs(got - want * len(labels)) < 1e-6:
                hints.append("you counted correct answers; divide by the number of examples")
            elif abs(got - 100 * want) < 1e-4:
                hints.append("return a fraction in [0, 1], not a percentage")
            else:
                hints.append("the prediction is logits.argmax(dim=1): the class with the top score")
    return _feedback(name, problems, list(dict.fromkeys(hints)))


__all__ += ["check_accuracy"]


# --- lessons 03/04: domain adaptation (tlearn.adapt) -------------------------------------


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


def check_gradient_reversal(fn: Callable) -> bool:
    """Lesson 04: ``fn(x, lambda_)`` must be the gradient reversal layer of DANN
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


__all__ += ["check_coral_loss", "check_gradient_reversal"]


# --- lesson 01: fine-tuning (tlearn.freeze) ---------------------------------------------


def check_freeze(student_fn: Callable) -> bool:
    """Grade ``student_fn(model, name)``: freeze the module called ``name`` and all below it.

    What "frozen" must mean (what :func:`tlearn.freeze.freeze` does):

    1. every parameter under ``name`` — and only those — has ``requires_grad=False``
       (``"conv1"`` selects ``conv1`` and ``conv1.*``, not ``conv10``);
    2. their stale ``.grad`` is cleared (``None``), so ``optimizer.step()`` skips them;
    3. after a training loop that calls ``model.train()`` and uses SGD with momentum and
       weight decay over *all* parameters, the block's weights **and BatchNorm running
       statistics** are bit-identical;
    4. the frozen block computes the same function in train and eval mode;
    5. an unknown name raises ``ValueError``.

    The function may change the model in place (return None) or return the frozen model.
    """
    import copy
    from collections import OrderedDict

    import torch
    from torch import nn

    from tlearn.models import DigitNet

    name = "check_freeze"
    problems: list[str] = []
    hints: list[str] = []

    def run(model: nn.Module, target: str):
        out, err = _call(student_fn, model, target)
        if err:
            return None, err
        return (out if isinstance(out, nn.Module) else model), None

    torch.manual_seed(0)
    net = DigitNet()
    x, y = torch.rand(16, 1, 32, 32), torch.randint(0, 10, (16,))
    nn.functional.cross_entropy(net(x), y).backward()  # every parameter now has a .grad
    net, err = run(net, "features.conv2")
    if err:
        return _feedback(name, [err], ["freeze(model, name) gets a DigitNet and 'features.conv2'"])

    block = "features.conv2."
    for pname, p in net.named_parameters():
        inside = pname.startswith(block)
        if inside and p.requires_grad:
            problems.append(f"{pname} is still trainable (requires_grad=True)")
            hints.append("loop over model.named_parameters() and call p.requires_grad_(False)")
        elif not inside and not p.requires_grad:
            problems.append(f"{pname} was frozen, but it is not under 'features.conv2'")
        if inside and p.grad is not None:
            problems.append(f"{pname}.grad still holds an old gradient")
            hints.append(
                "set p.grad = None: an optimizer applies a stale gradient (and momentum and "
                "weight decay) to any parameter whose .grad is not None"
            )

    conv2 = net.get_submodule("features.conv2")
    before = {k: v.clone() for k, v in conv2.state_dict().items()}
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-2)
    for step in range(3):
        net.train()
        xb = torch.rand(8, 1, 32, 32) * (1 + step)
        opt.zero_grad()
        nn.functional.cross_entropy(net(xb), torch.randint(0, 10, (8,))).backward()
        opt.step()
    after = conv2.state_dict()
    moved = [k for k, v in before.items() if k not in after or not torch.equal(v, after[k])]
    stats = [k for k in moved if "running" in k or "num_batches" in k]
    weights = [k for k in moved if k not in stats]
    if weights:
        problems.append(f"training changed frozen weights: {', '.join(block + k for k in weights)}")
    if stats:
        problems.append(
            f"training changed BatchNorm statistics: {', '.join(block + k for k in stats)}"
        )
        hints.append(
            "requires_grad=False does not stop BatchNorm: in train mode it normalises with the "
            "batch's statistics and updates running_mean/var. Swap each BatchNorm under the "
            "block for tlearn.freeze.FrozenBatchNorm(bn) (setattr on its parent module)"
        )
    with torch.no_grad():
        z = torch.rand(8, 16, 16, 16)
        conv2.train()
        out_train = conv2(z)
        conv2.eval()
        out_eval = conv2(z)
    if not torch.allclose(out_train, out_eval, atol=1e-6):
        problems.append("the frozen block computes something else in train mode than in eval mode")
        hints.append(
            "momentum=0 keeps the statistics fixed, but train-mode BatchNorm still normalises "
            "with the batch's statistics; use the running ones always (FrozenBatchNorm)"
        )

    toy = nn.Sequential(OrderedDict(conv1=nn.Conv2d(1, 2, 3), conv10=nn.Conv2d(2, 2, 3)))
    toy, err = run(copy.deepcopy(toy), "conv1")
    if err:
        problems.append(f"on a model with layers conv1 and conv10: {err}")
    elif not all(p.requires_grad for p in toy.conv10.parameters()):
        problems.append("freezing 'conv1' also froze 'conv10'")
        hints.append("match whole names: n == name or n.startswith(name + '.')")

    _, err = run(DigitNet(), "features.conv9")
    if err is None:
        problems.append("an unknown name ('features.conv9') was silently accepted")
        hints.append("raise ValueError when no module has that name — typos should not pass")
    elif "ValueError" not in err:
        problems.append(f"an unknown name should raise ValueError; {err}")
    return _feedback(name, problems, list(dict.fromkeys(hints)))


__all__ += ["check_freeze"]


# --------------------------------------------------------------------------- cell order
class RunFromTheTop(RuntimeError):
    """A cell was run before the cells it builds on (e.g. a claims cell first)."""


def run_from_top(namespace: dict, *names: str) -> None:
    """Raise a clear :class:`RunFromTheTop` unless every one of ``names`` was computed above.

    The first line of each lesson's claims cell, so a student who runs it first reads what
    to do instead of a ``NameError``:

    >>> run_from_top({"accs": [0.9]}, "accs")
    >>> run_from_top({}, "accs", "gaps")
    Traceback (most recent call last):
    ...
    tlearn.exercises.RunFromTheTop: this cell uses accs, gaps, computed by the cells above it. Run the lesson from the top: Run → Run All Cells (or Kernel → Restart Kernel and Run All Cells).
    """
    missing = [n for n in names if n not in namespace]
    if missing:
        raise RunFromTheTop(
            f"this cell uses {', '.join(missing)}, computed by the cells above it. Run the lesson "
            "from the top: Run → Run All Cells (or Kernel → Restart Kernel and Run All Cells)."
        )


__all__ += ["run_from_top", "RunFromTheTop"]
