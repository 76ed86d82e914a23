"""Feature extraction: a frozen network as a function image → vector.

The cheapest way to transfer is to *not train the network at all*: run the pretrained
network up to some layer, keep that layer's output ``z = f(x)`` as the description of the
image, and fit a small classifier on ``z`` with the few target labels you have (Donahue et
al., "DeCAF", ICML 2014; Razavian et al., "CNN Features off-the-shelf", CVPRW 2014)::

    Z, y = features.extract(net, target_train, layer="features.conv3", pool="avg")
    Zt, yt = features.extract(net, target_test, layer="features.conv3", pool="avg")
    probes.linear_probe(Z, y, Zt, yt)            # {"accuracy": 0.87, "classifier": ...}

How it works:

* **The forward hook.** ``module.register_forward_hook(fn)`` makes PyTorch call
  ``fn(module, inputs, output)`` each time that module runs. :class:`FeatureHook` is the one
  such hook in tlearn: it keeps the named layer's (pooled) output. Any named module works
  (``print(model)`` shows the names; :func:`layers` lists them with their output shapes).
  :func:`extract` stops the forward pass once every hooked layer has fired: the rest of the
  network is never computed.
* **Global pooling.** A convolutional layer outputs a ``C×H×W`` map. Global average pooling
  ``z_c = 1/(HW) Σ_{h,w} a_{c,h,w}`` (Lin et al., "Network in Network", 2014) turns it into a
  ``C``-vector that no longer depends on where in the image a pattern was; ``"max"`` keeps the
  strongest response per channel; ``"flatten"`` keeps everything (``C·H·W`` numbers).
* **Caching.** A frozen network maps the same image to the same vector, so the features are
  computed once and stored (:class:`FeatureCache`); probing at 1, 5, 10 and 30 labels per
  class then costs a logistic regression, not a pass through the network.

What reads the features — linear, k-NN and few-shot probes — lives in :mod:`tlearn.probes`.

>>> import torch
>>> from torch import nn
>>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))
>>> Z, y = extract(net, torch.rand(5, 1, 8, 8), layer="1", device="cpu", progress=False)
>>> Z.shape, y
(torch.Size([5, 4]), None)
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tlearn import checks, runtime
from tlearn.data.base import DigitDataset, batches, data_length

__all__ = [
    "extract", "extract_layers", "FeatureHook", "StopForward", "global_pool", "layers",
    "LayerInfo", "LayerTable", "FeatureCache", "model_fingerprint", "POOLS",
]  # fmt: skip

log = logging.getLogger(__name__)

#: The pooling modes :func:`extract` accepts (``None`` keeps the raw layer output).
POOLS = ("avg", "max", "flatten", None)
#: Images per forward pass when extracting. The features do not depend on it (eval mode);
#: the memory does: a 64-px EfficientNet-Lite0 pass over 256 images peaks about 390 MB above
#: the model, over 64 images about 180 MB, at the same speed on a CPU.
EXTRACT_BATCH = 64

# =============================================================================== pooling


def global_pool(t: torch.Tensor, pool: str | None = "avg") -> torch.Tensor:
    """Turn a layer's output ``N×C×(spatial…)`` into one vector per example.

    * ``"avg"``: global average pooling, ``z[n, c] = mean over h, w of t[n, c, h, w]`` → ``N×C``
    * ``"max"``: global max pooling, ``z[n, c] = max over h, w of t[n, c, h, w]`` → ``N×C``
    * ``"flatten"``: ``t.reshape(N, -1)`` → ``N×(C·H·W)`` (keeps *where* as well as *what*)
    * ``None``: ``t`` unchanged.

    Outputs are channels-first, as PyTorch convolutions produce. A layer that already outputs
    vectors (``N×D``, e.g. a Linear layer) is returned unchanged by ``"avg"``/``"max"``.

    >>> t = torch.arange(8.0).reshape(1, 2, 2, 2)
    >>> global_pool(t, "avg"), global_pool(t, "max"), global_pool(t, "flatten").shape
    (tensor([[1.5000, 5.5000]]), tensor([[3., 7.]]), torch.Size([1, 8]))
    """
    checks.one_of("pool", pool, POOLS)
    if t.dim() < 2:
        raise ValueError(f"a layer output must be at least N×D, got shape {tuple(t.shape)}")
    if pool is None:
        return t
    if pool == "flatten":
        return t.flatten(1)
    if t.dim() == 2:
        return t
    spatial = tuple(range(2, t.dim()))
    return t.mean(dim=spatial) if pool == "avg" else t.amax(dim=spatial)


# =============================================================================== layer names


def _module_names(model: nn.Module) -> list[str]:
    return [n for n, _ in model.named_modules() if n]


def _check_layer(model: nn.Module, layer: str) -> str:
    """Return ``layer`` when ``model`` has a module of that name; else a helpful ValueError."""
    if not isinstance(layer, str):
        raise ValueError(f"layer must be a module name (str), got {type(layer).__name__}")
    available = _module_names(model)
    if layer in ("", *available):
        return layer
    close = difflib.get_close_matches(layer, available, n=3, cutoff=0.5)
    shown = ", ".join(available[:40]) + (
        f", … {len(available) - 40} more" if len(available) > 40 else ""
    )
    msg = f"{type(model).__name__} has no module named {layer!r}. Available layers: {shown}."
    if close:
        msg = msg[:-1] + f"; did you mean {' or '.join(map(repr, close))}?"
    msg += " (tlearn.features.layers(model) lists them with their output shapes; '' is the output.)"
    raise ValueError(msg)


# =============================================================================== the forward hook


class StopForward(Exception):
    """Raised by a :class:`FeatureHook` whose ``stop()`` says the rest of the forward pass is
    not needed; catch it around ``model(x)``."""


class FeatureHook:
    """Record what the layer named ``layer`` outputs in each forward pass: tlearn's one hook.

    A context manager: entering registers a forward hook on ``model.get_submodule(layer)``,
    leaving removes it. Each forward pass stores the layer's output, pooled with
    :func:`global_pool` (``pool``; low-precision outputs under autocast are pooled in float32);
    :meth:`take` returns it and clears it. If the layer runs twice in one pass, its first
    output is kept. Gradients flow through the stored tensor, so a training loop can put a
    loss on it (e.g. an alignment loss on the features ``z``).

    Args:
        model: the network.
        layer: a module name as in ``model.named_modules()``; ``""`` is the model itself.
        pool: ``"avg"``, ``"max"``, ``"flatten"`` or ``None`` (see :func:`global_pool`).

    ``stop`` (an attribute, default None) may be set to a ``stop() -> bool``, asked after each
    recording; when it says True the hook raises :class:`StopForward`, so the layers after it
    are never computed.

    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(12, 2))
    >>> with FeatureHook(net, "1", pool="avg") as hook:
    ...     logits = net(torch.rand(5, 1, 4, 4))
    ...     z = hook.take()
    >>> logits.shape, z.shape
    (torch.Size([5, 2]), torch.Size([5, 3]))
    """

    def __init__(self, model: nn.Module, layer: str, pool: str | None = "avg"):
        checks.module("model", model)
        self.layer = _check_layer(model, layer)
        self.module = model.get_submodule(layer)
        self.pool = checks.one_of("pool", pool, POOLS)
        self.stop: Callable[[], bool] | None = None
        self.output: Any = None
        self._handle: Any = None

    def _record(self, module: nn.Module, inputs: Any, output: Any) -> None:
        if self.output is not None:  # a module called twice: its first call is the feature
            return
        t = output[0] if isinstance(output, (tuple, list)) else output
        if isinstance(t, torch.Tensor):
            low_precision = t.is_floating_point() and t.element_size() < 4
            t = global_pool(t.float() if low_precision else t, self.pool)
        self.output = t
        if self.stop is not None and self.stop():
            raise StopForward

    def take(self) -> torch.Tensor:
        """The recorded output (``N×D`` once pooled); cleared, ready for the next pass."""
        out, self.output = self.output, None
        if out is None:
            raise RuntimeError(
                f"layer {self.layer!r} was not called in the forward pass; "
                "tlearn.features.layers(model) lists the ones that are."
            )
        if not isinstance(out, torch.Tensor):
            raise ValueError(f"layer {self.layer!r} returned {type(out).__name__}, not a tensor")
        return out

    def __enter__(self) -> FeatureHook:
        self.output = None
        self._handle = self.module.register_forward_hook(self._record)
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.remove()
        self._handle = None


class LayerInfo(NamedTuple):
    """One row of :func:`layers`: a module name, its output shape (without the batch
    dimension) and the number of parameters in that module (including its children)."""

    name: str
    shape: tuple[int, ...]
    params: int


class LayerTable(list):
    """A list of :class:`LayerInfo` that prints as a table."""

    def names(self) -> list[str]:
        return [row.name for row in self]

    def __repr__(self) -> str:
        if not self:
            return "LayerTable([])"
        rows = [("layer", "output", "params")]
        rows += [(r.name, "×".join(map(str, r.shape)), f"{r.params:,}") for r in self]
        w = [max(len(row[i]) for row in rows) for i in range(3)]
        return "\n".join(f"{a:<{w[0]}}  {b:<{w[1]}}  {c:>{w[2]}}" for a, b, c in rows)


def _model_device(model: nn.Module) -> torch.device | None:
    return next((t.device for t in (*model.parameters(), *model.buffers())), None)


@contextlib.contextmanager
def _hooked(
    model: nn.Module, names: Sequence[str], pool: str | None, device: torch.device
) -> Iterator[dict[str, FeatureHook]]:
    """A :class:`FeatureHook` on each of ``names`` while ``model`` runs on ``device`` in eval
    mode under ``torch.inference_mode``; hooks removed, device and modes restored afterwards."""
    original = _model_device(model)
    with contextlib.ExitStack() as stack:
        hooks = {n: stack.enter_context(FeatureHook(model, n, pool)) for n in names}
        if original is not None and original != device:
            model.to(device)
            stack.callback(model.to, original)
        stack.enter_context(runtime.eval_mode(model))
        stack.enter_context(torch.inference_mode())
        yield hooks


def layers(
    model: nn.Module,
    input_size: Sequence[int] = (1, 32, 32),
    *,
    depth: int | None = None,
    device: str | torch.device | None = None,
) -> LayerTable:
    """The layer names :func:`extract` accepts, with each one's output shape.

    Runs one forward pass of a zero batch of shape ``(1, *input_size)`` with a hook on every
    module, in eval mode (restored after). Rows follow execution order; modules the forward
    pass never calls are left out.

    Args:
        model: any ``nn.Module``.
        input_size: one input's shape, e.g. ``(1, 32, 32)`` for DigitNet, ``(3, 224, 224)``.
        depth: keep only names with at most this many dots + 1 (``depth=2`` keeps
            ``features.conv1`` but not ``features.conv1.0``).
        device: where to run; default: where the model's parameters are.

    Returns:
        A :class:`LayerTable` (a list of ``LayerInfo(name, shape, params)`` that prints as a table).
    """
    checks.module("model", model)
    if depth is not None:
        checks.positive_int("depth", depth, why=" or None")
    if not input_size or any(int(s) < 1 for s in input_size):
        raise ValueError(f"input_size must be positive ints like (1, 32, 32), got {input_size!r}")
    dev = torch.device(device or _model_device(model) or "cpu")
    names = [n for n in _module_names(model) if depth is None or n.count(".") < depth]
    fired: list[str] = []  # layer names in the order they ran
    with _hooked(model, names, None, dev) as hooks:
        for n, hook in hooks.items():
            hook.stop = lambda n=n: fired.append(n)  # note the order; None: never stop
        model(torch.zeros(1, *map(int, input_size), device=dev))
    rows = []
    for n in fired:
        if isinstance(hooks[n].output, torch.Tensor):
            n_params = sum(p.numel() for p in hooks[n].module.parameters())
            rows.append(LayerInfo(n, tuple(hooks[n].output.shape[1:]), n_params))
    return LayerTable(rows)


# =============================================================================== data


def _read_data(data: Any, batch_size: int) -> tuple[str, Iterable]:
    """``(fingerprint, batches)``: a SHA-256 of the images' and labels' bytes (and shapes and
    dtypes), in order, and the ``(x, y)`` batches to extract from (:func:`tlearn.data.base.batches`).

    Data held in memory (a tensor, a ``DigitDataset``, a ``TensorDataset``) is hashed whole.
    Anything else is read once and its batches kept, so a shuffled or augmenting DataLoader is
    fingerprinted on exactly the batches that are then extracted.
    """
    h = hashlib.sha256(b"tlearn-data-v1")
    whole = _in_memory(data)
    stream = batches(data, batch_size, labels=None)
    if whole is None:  # read once and kept: the hash is of exactly the batches extracted
        stream = [(x.cpu(), y if y is None else y.cpu()) for x, y in stream]
    for t in whole or [t for batch in stream for t in batch]:  # images, labels in that order
        _update_hash(h, t)
    return h.hexdigest(), stream


def _in_memory(data: Any) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """``(images, labels or None)`` when ``data`` holds them as whole tensors, else None."""
    if isinstance(data, torch.Tensor):
        return data, None
    if isinstance(data, TensorDataset) and len(data.tensors) in (1, 2):
        return data.tensors[0], data.tensors[1] if len(data.tensors) == 2 else None
    if isinstance(data, DigitDataset):
        return data.images, data.labels
    return None


def _update_hash(h: Any, t: torch.Tensor | None) -> None:
    if t is None:
        h.update(b"<none>")
        return
    t = t.detach()
    h.update(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(t.cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())


def model_fingerprint(model: nn.Module) -> str:
    """SHA-256 of a model: its class, its ``repr`` (architecture and module arguments, e.g. a
    resize size) and every ``state_dict`` entry's name, dtype, shape and bytes.

    Changing any weight or buffer (BatchNorm statistics included) changes the fingerprint.
    """
    h = hashlib.sha256(b"tlearn-model-v1")
    h.update(f"{type(model).__module__}.{type(model).__qualname__}\n{model!r}".encode())
    for name, t in model.state_dict().items():
        h.update(name.encode())
        _update_hash(h, t if isinstance(t, torch.Tensor) else torch.as_tensor(t))
    return h.hexdigest()


# =============================================================================== cache


class FeatureCache:
    """Features on disk, reused only when the exact same computation produced them.

    Each entry is one file ``<root>/<key>.pt``; ``key`` is :func:`tlearn.runtime.cache_key` of

    * the model's fingerprint (class, architecture repr, every weight and buffer),
    * the layer name and the pooling,
    * the data's fingerprint (bytes of every image and label, in order),
    * the autocast dtype (reduced precision gives slightly different features).

    So changing one weight, one pixel, the layer or the pooling gives a different key: a
    *miss*, and the features are computed again. The key is also stored *inside* the file and
    checked on load: a truncated, corrupt or foreign file is skipped with a warning (the next
    folder is searched) and recomputed into ``root``, never silently reused. Files are loaded with
    ``torch.load(weights_only=True)`` (no pickled code runs) and written atomically
    (temporary file + ``os.replace``), so an interrupted run never leaves half a file.

    Args:
        root: one folder that is read and written. Default: the layered cache of
            ``TLEARN_CACHE`` — ``features/`` in every layer is searched in order, and new
            entries go to ``features/`` of the first writable layer
            (``tlearn.runtime.cache_dir()``), so a class reads a teacher's read-only cache.
        verbose: print one line per hit / miss.

    Attributes:
        root: the folder entries are written to (and the only one :meth:`clear` empties).
        folders: the folders searched, in order (``[root]`` when ``root`` was given).
        hits, misses: counters since creation (a corrupt file counts as a miss).
    """

    VERSION = 1

    def __init__(self, root: str | os.PathLike | None = None, *, verbose: bool = False):
        layered = root is None  # read every layer's features/, write to the first writable one
        self.folders = [d / "features" for d in runtime.cache_dirs()] if layered else [Path(root)]
        self.root = runtime.cache_dir() / "features" if layered else self.folders[0]
        self.root.mkdir(parents=True, exist_ok=True)
        self.verbose = verbose
        self.hits = self.misses = 0

    def _say(self, msg: str) -> None:
        log.info(msg)
        if self.verbose:
            print(msg)

    def load(self, key: str) -> tuple[torch.Tensor, torch.Tensor | None] | None:
        """The stored ``(Z, y)`` for ``key`` from the first of :attr:`folders` whose file holds
        them, or None (no file, or each one corrupt or not this key's: skipped with a warning,
        by :func:`tlearn.runtime.load_cached`)."""

        def read(path: Path) -> tuple[torch.Tensor, torch.Tensor | None]:
            entry = torch.load(path, map_location="cpu", weights_only=True)
            if not (isinstance(entry, dict) and entry.get("key") == key):  # (key holds VERSION)
                raise ValueError("it does not hold this key's features")
            return entry["Z"], entry.get("y")

        return runtime.load_cached(f"{key}.pt", read, folders=self.folders)

    def save(self, key: str, Z: torch.Tensor, y: torch.Tensor | None, what: str = "") -> Path:
        """Write ``(Z, y)`` under ``key`` atomically, with ``what`` they are (for whoever opens
        the file: e.g. ``"DigitNet @ features pool=avg"``)."""
        entry = {"version": self.VERSION, "key": key, "Z": Z.contiguous(), "y": y, "what": what}
        return runtime.atomic_write(self.root / f"{key}.pt", lambda f: torch.save(entry, f))

    def get_or_compute_many(
        self,
        keys: dict[str, str],
        compute: Callable[[list[str]], tuple[dict[str, torch.Tensor], torch.Tensor | None]],
        *,
        what: dict[str, str] | None = None,
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """Features for several entries (``keys``: name → key) that one computation gives at
        once, e.g. several layers of one forward pass: each stored one is loaded (a hit);
        ``compute(missing names)`` runs once for all the others, which are then stored (a miss
        each). ``what`` names each entry in messages and files (default: its key's start).
        Returns ``({name: Z}, y)`` in the order of ``keys``."""
        label = {name: (what or {}).get(name) or key[:12] for name, key in keys.items()}
        result: dict[str, torch.Tensor] = {}
        y: torch.Tensor | None = None
        missing = []
        for name, key in keys.items():
            found = self.load(key)
            if found is None:
                missing.append(name)
                continue
            self.hits += 1
            self._say(f"feature cache hit: {label[name]}")
            result[name], y = found
        if missing:
            t0 = time.perf_counter()
            computed, y = compute(missing)
            secs = time.perf_counter() - t0
            for name in missing:
                self.misses += 1
                self.save(keys[name], computed[name], y, what=label[name])
                self._say(f"feature cache miss: {label[name]} computed in {secs:.1f}s")
                result[name] = computed[name]
        return {name: result[name] for name in keys}, y

    # -- housekeeping
    def __len__(self) -> int:
        """Entries stored in all of :attr:`folders` (a key in two layers counts once)."""
        return len({p.name for folder in self.folders for p in folder.glob("*.pt")})

    def clear(self) -> int:
        """Delete every entry in :attr:`root`, the folder this cache writes to; return how many
        files were removed. Other layers (a teacher's shared cache) are never touched."""
        files = list(self.root.glob("*.pt"))
        for p in files:
            p.unlink(missing_ok=True)
        return len(files)

    def __repr__(self) -> str:
        return (
            f"FeatureCache({str(self.root)!r}, entries={len(self)}, "
            f"hits={self.hits}, misses={self.misses})"
        )


# =============================================================================== extraction


def _forward_collect(
    model: nn.Module,
    data: Iterable,
    layer_names: Sequence[str],
    pool: str | None,
    device: torch.device,
    amp: bool | None,
) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """One pass over the ``(x, y)`` batches of ``data`` with a :class:`FeatureHook` on each of
    ``layer_names``; pooled float32 CPU features per layer, and the labels (None if it has none)."""
    outs: dict[str, list[torch.Tensor]] = {n: [] for n in layer_names}
    ys: list[torch.Tensor | None] = []
    with _hooked(model, list(outs), pool, device) as hooks:

        def all_recorded() -> bool:  # then the rest of the network is not needed
            return all(h.output is not None for h in hooks.values())

        for hook in hooks.values():
            hook.stop = all_recorded
        for x, y in data:
            checks.images(x, "extract")
            checks.channels_match(model, x, "extract")
            x = x.to(device, non_blocking=True)
            with runtime.autocast(device, enabled=amp), contextlib.suppress(StopForward):
                model(x)
            for n, hook in hooks.items():
                outs[n].append(hook.take().cpu())
            ys.append(y if y is None else y.reshape(-1).cpu())
    # Concatenate outside inference mode so the results are ordinary tensors that can be
    # used in autograd later (e.g. to train a linear head on them).
    Z = {n: torch.cat(v).float() for n, v in outs.items()}
    labels = None if not ys or any(y is None for y in ys) else torch.cat(ys).long()
    return Z, labels


def _num_batches(data: Any, batch_size: int) -> int | None:
    """How many batches :func:`batches` gives (None for a loader without a length); a
    ValueError for data that is empty or not data."""
    if isinstance(data, DataLoader) and not isinstance(data.dataset, Sized):
        return None  # a loader of an IterableDataset
    n = data_length(data, "extract: the data")
    return len(data) if isinstance(data, DataLoader) else -(-n // batch_size)


def extract_layers(
    model: nn.Module,
    data: Any,
    layer_names: Sequence[str],
    *,
    pool: str | None = "avg",
    batch_size: int = EXTRACT_BATCH,
    device: str | torch.device | None = None,
    amp: bool | None = None,
    progress: bool = True,
    cache: FeatureCache | None = None,
) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """:func:`extract` at several layers at once: one forward pass per batch hooks them all.

    Returns ``({layer: Z}, y)``, in the order of ``layer_names``; each ``Z`` is what
    ``extract(model, data, layer, ...)`` returns (cached per layer when ``cache`` is given).
    """
    checks.module("model", model)
    checks.one_of("pool", pool, POOLS)
    checks.positive_int("batch_size", batch_size)
    for n in layer_names:
        _check_layer(model, n)
    dev = runtime.get_device(device) if not isinstance(device, torch.device) else device
    total = _num_batches(data, batch_size)

    def compute(names: Sequence[str], stream: Iterable) -> tuple[dict, torch.Tensor | None]:
        desc = f"extract {type(model).__name__}"
        bar = runtime.progress_bar(stream, total=total, desc=desc, enabled=progress, leave=False)
        return _forward_collect(model, bar, names, pool, dev, amp)

    if cache is None:
        return compute(layer_names, batches(data, batch_size, labels=None))
    data_fp, stream = _read_data(data, batch_size)
    amp_tag = str(runtime.amp_dtype(dev)) if amp is not False and runtime.amp_dtype(dev) else "fp32"
    spec = dict(
        v=cache.VERSION, model=model_fingerprint(model), pool=pool, data=data_fp, amp=amp_tag
    )
    return cache.get_or_compute_many(
        {n: runtime.cache_key({**spec, "layer": n}, versioned=False) for n in layer_names},
        lambda missing: compute(missing, stream),
        what={n: f"{type(model).__name__} @ {n or '(output)'} pool={pool}" for n in layer_names},
    )


def extract(
    model: nn.Module,
    data: Any,
    layer: str | None = None,
    *,
    pool: str | None = "avg",
    batch_size: int = EXTRACT_BATCH,
    device: str | torch.device | None = None,
    amp: bool | None = None,
    progress: bool = True,
    cache: FeatureCache | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run ``model`` on ``data`` and return the (pooled) output of the module ``layer``.

    A forward hook on ``layer`` records its output; the forward pass stops right after it,
    so later layers cost nothing. Runs under ``torch.inference_mode`` in eval mode (each
    module's own train/eval mode is restored afterwards), on ``device`` (default
    :func:`tlearn.runtime.get_device`: a GPU when there is one; the model is moved back
    afterwards) and with autocast where the device supports it.

    Args:
        model: any ``nn.Module``; it is not modified.
        data: a Dataset of ``(image, label)``, a DataLoader, or an image tensor ``N×C×H×W``.
            Rows come out in the data's order; a DataLoader is used as it is, so with
            ``shuffle=True`` the rows follow *that* loader's order (and ``y`` tells which
            label each row has).
        layer: a module name as in ``model.named_modules()`` (``"features"``,
            ``"features.conv2"``, ``"features.4"``, …; see :func:`layers`); ``""`` is the
            model's output. Default: ``"features"`` when the model has it, else ``""``.
        pool: ``"avg"``, ``"max"``, ``"flatten"`` or ``None`` (see :func:`global_pool`).
        batch_size: images per forward pass (ignored for a DataLoader, which has its own);
            it does not change the features (eval mode), only the memory a pass needs.
        device, amp: where to run and whether to use autocast (None: on where supported).
        progress: show a tqdm progress bar.
        cache: a :class:`FeatureCache`; features are then loaded when the same model,
            layer, pooling and data were extracted before, and stored otherwise.

    Returns:
        ``(Z, y)``: ``Z`` a float32 CPU tensor ``N×D`` (or the raw layer shape when
        ``pool=None``), ``y`` the int64 labels (``None`` when ``data`` is a bare tensor).
    """
    if layer is None:  # "features" when the model has that submodule, else its output
        layer = "features" if isinstance(getattr(model, "features", None), nn.Module) else ""
    Z, y = extract_layers(
        model,
        data,
        [layer],
        pool=pool,
        batch_size=batch_size,
        device=device,
        amp=amp,
        progress=progress,
        cache=cache,
    )
    return Z[layer], y
