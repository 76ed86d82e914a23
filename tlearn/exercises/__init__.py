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
