"""Feature extraction: a frozen network as a function image → vector, and probes that read it.

The cheapest way to transfer is to *not train the network at all*: run the pretrained
network up to some layer, keep that layer's output ``z = f(x)`` as the description of the
image, and fit a small classifier on ``z`` with the few target labels you have (Donahue et
al., "DeCAF", ICML 2014; Razavian et al., "CNN Features off-the-shelf", CVPRW 2014)::

    Z, y = features.extract(net, target_train, layer="features.conv3", pool="avg")
    Zt, yt = features.extract(net, target_test, layer="features.conv3", pool="avg")
    features.linear_probe(Z, y, Zt, yt)          # {"accuracy": 0.87, "classifier": ...}

How it works:

* **Forward hooks.** ``module.register_forward_hook(fn)`` makes PyTorch call
  ``fn(module, inputs, output)`` each time that module runs; the hook keeps ``output``. Any
  named module works (``print(model)`` shows the names; :func:`layers` lists them with their
  output shapes). Once every hooked layer has fired, the hook raises a private exception that
  stops the forward pass: the rest of the network is never computed.
* **Global pooling.** A convolutional layer outputs a ``C×H×W`` map. Global average pooling
  ``z_c = 1/(HW) Σ_{h,w} a_{c,h,w}`` (Lin et al., "Network in Network", 2014) turns it into a
  ``C``-vector that no longer depends on where in the image a pattern was; ``"max"`` keeps the
  strongest response per channel; ``"flatten"`` keeps everything (``C·H·W`` numbers).
* **Caching.** A frozen network maps the same image to the same vector, so the features are
  computed once and stored (:class:`FeatureCache`); probing at 1, 5, 10 and 30 labels per
  class then costs a logistic regression, not a pass through the network.
* **Probes.** :func:`linear_probe` (standardise, then multinomial logistic regression) is the
  standard measure of how *linearly* usable a representation is (Alain & Bengio, "Understanding
  intermediate layers using linear classifier probes", 2016; Kornblith et al., "Do Better
  ImageNet Models Transfer Better?", CVPR 2019); :func:`knn_probe` needs no training at all.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from tqdm.auto import tqdm

from tlearn import runtime
from tlearn.data.base import DigitDataset, few_shot_indices

__all__ = [
    "extract",
    "global_pool",
    "layers",
    "LayerInfo",
    "LayerTable",
    "FeatureCache",
    "model_fingerprint",
    "data_fingerprint",
    "linear_probe",
    "knn_probe",
    "few_shot_probe",
    "layer_sweep",
    "best_layer",
    "POOLS",
]

log = logging.getLogger(__name__)

#: The pooling modes :func:`extract` accepts (``None`` keeps the raw layer output).
POOLS = ("avg", "max", "flatten", None)

ArrayLike = Any  # a torch.Tensor, numpy array or nested list


# =============================================================================== pooling


def global_pool(t: torch.Tensor, pool: str | None = "avg") -> torch.Tensor:
    """Turn a layer's output ``N×C×(spatial…)`` into one vector per example.

    * ``"avg"``: global average pooling, ``z[n, c] = mean over h, w of t[n, c, h, w]`` → ``N×C``
    * ``"max"``: global max pooling, ``z[n, c] = max over h, w of t[n, c, h, w]`` → ``N×C``
    * ``"flatten"``: ``t.reshape(N, -1)`` → ``N×(C·H·W)`` (keeps *where* as well as *what*)
    * ``None``: ``t`` unchanged.

    Outputs are channels-first, as PyTorch convolutions produce. A layer that already outputs
    vectors (``N×D``, e.g. a Linear layer) is returned unchanged by ``"avg"``/``"max"``.
    """
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
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


class _StopForward(Exception):
    """Raised by a hook once every requested layer has fired: the rest is not needed."""


def _module_names(model: nn.Module) -> list[str]:
    return [n for n, _ in model.named_modules() if n]


def _default_layer(model: nn.Module) -> str:
    """``"features"`` when the model has that submodule, else ``""`` (the model's output)."""
    return "features" if isinstance(getattr(model, "features", None), nn.Module) else ""


def _check_layer(model: nn.Module, layer: str) -> str:
    """Return ``layer`` when ``model`` has a module of that name; else a helpful ValueError."""
    if not isinstance(layer, str):
        raise ValueError(f"layer must be a module name (str), got {type(layer).__name__}")
    names = dict(model.named_modules())
    if layer in names:
        return layer
    available = _module_names(model)
    close = difflib.get_close_matches(layer, available, n=3, cutoff=0.5)
    shown = (
        available if len(available) <= 40 else available[:40] + [f"… {len(available) - 40} more"]
    )
    msg = (
        f"{type(model).__name__} has no module named {layer!r}. Available layers: "
        f"{', '.join(shown)}."
    )
    if close:
        msg = msg[:-1] + f"; did you mean {' or '.join(map(repr, close))}?"
    msg += " (tlearn.features.layers(model) lists them with their output shapes; '' is the output.)"
    raise ValueError(msg)


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
        rows = [(r.name, "×".join(map(str, r.shape)), f"{r.params:,}") for r in self]
        w = [
            max(len(h), *(len(r[i]) for r in rows))
            for i, h in enumerate(("layer", "output", "params"))
        ]
        lines = [f"{'layer':<{w[0]}}  {'output':<{w[1]}}  {'params':>{w[2]}}"]
        lines += [f"{a:<{w[0]}}  {b:<{w[1]}}  {c:>{w[2]}}" for a, b, c in rows]
        return "\n".join(lines)

    __str__ = __repr__


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Put every submodule in eval mode; restore each one's own mode afterwards (a model may
    deliberately keep some modules in eval, e.g. frozen BatchNorm, while training)."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, was_training in modes:
            m.training = was_training


def _model_device(model: nn.Module) -> torch.device | None:
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return None


@contextlib.contextmanager
def _on_device(model: nn.Module, device: torch.device) -> Iterator[None]:
    """Run with ``model`` on ``device``; move it back to where it was afterwards."""
    original = _model_device(model)
    moved = original is not None and original != device
    if moved:
        model.to(device)
    try:
        yield
    finally:
        if moved:
            model.to(original)


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
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if depth is not None and depth < 1:
        raise ValueError(f"depth must be >= 1 or None, got {depth}")
    if not input_size or any(int(s) < 1 for s in input_size):
        raise ValueError(f"input_size must be positive ints like (1, 32, 32), got {input_size!r}")
    dev = (
        torch.device(device)
        if device is not None
        else (_model_device(model) or torch.device("cpu"))
    )
    seen: dict[str, LayerInfo] = {}

    def hook_for(name: str, module: nn.Module) -> Callable:
        def hook(_mod, _inp, out):
            t = out[0] if isinstance(out, (tuple, list)) else out
            if name not in seen and isinstance(t, torch.Tensor):
                n_params = sum(p.numel() for p in module.parameters())
                seen[name] = LayerInfo(name, tuple(t.shape[1:]), n_params)

        return hook

    handles = [
        m.register_forward_hook(hook_for(n, m))
        for n, m in model.named_modules()
        if n and (depth is None or n.count(".") < depth)
    ]
    try:
        with _on_device(model, dev), _eval_mode(model), torch.inference_mode():
            model(torch.zeros(1, *map(int, input_size), device=dev))
    finally:
        for h in handles:
            h.remove()
    return LayerTable(seen.values())


# =============================================================================== data


def _split_batch(batch: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A loader's batch → (images, labels or None)."""
    if isinstance(batch, torch.Tensor):
        return batch, None
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
        y = batch[1] if len(batch) > 1 else None
        if y is not None:
            y = torch.as_tensor(y)
        return batch[0], y
    raise ValueError(
        "each batch must be an image tensor or a tuple (images, labels, …); got "
        f"{type(batch).__name__}"
    )


class _Batches:
    """Uniform access to what :func:`extract` accepts: an image tensor, a Dataset of
    ``(x, y)`` or a DataLoader. In-memory datasets (``DigitDataset``, ``TensorDataset``) are
    sliced directly, which is much faster than collating item by item."""

    def __init__(self, data: Any, batch_size: int):
        self.batch_size = batch_size
        self.tensors: tuple[torch.Tensor, torch.Tensor | None] | None = None
        self.loader: Iterable | None = None
        self._materialised: list[tuple[torch.Tensor, torch.Tensor | None]] | None = None
        if isinstance(data, torch.Tensor):
            if data.dim() < 2:
                raise ValueError(
                    f"an image tensor must be N×C×H×W (or N×D), got {tuple(data.shape)}"
                )
            self.tensors = (data, None)
        elif isinstance(data, DigitDataset) and type(data).__getitem__ is DigitDataset.__getitem__:
            self.tensors = (data.images, data.labels)
        elif isinstance(data, TensorDataset) and len(data.tensors) in (1, 2):
            self.tensors = (data.tensors[0], data.tensors[1] if len(data.tensors) == 2 else None)
        elif isinstance(data, DataLoader):
            self.loader = data  # its own order, batch size and transforms
        elif isinstance(data, Dataset):
            self.loader = DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=0)
        else:
            raise ValueError(
                "data must be a torch Dataset of (image, label), a DataLoader or an image "
                f"tensor N×C×H×W, got {type(data).__name__}"
            )
        if self.tensors is not None and self.tensors[1] is not None:
            if len(self.tensors[1]) != len(self.tensors[0]):
                raise ValueError(
                    f"{len(self.tensors[0])} images but {len(self.tensors[1])} labels in data"
                )

    def num_batches(self) -> int | None:
        """How many batches there will be (None for a loader without a length)."""
        if self._materialised is not None:
            return len(self._materialised)
        if self.tensors is not None:
            return -(-len(self.tensors[0]) // self.batch_size)
        try:
            return len(self.loader)  # type: ignore[arg-type]
        except TypeError:  # e.g. an IterableDataset
            return None

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        if self._materialised is not None:
            yield from self._materialised
        elif self.tensors is not None:
            x, y = self.tensors
            for i in range(0, len(x), self.batch_size):
                yield x[i : i + self.batch_size], None if y is None else y[i : i + self.batch_size]
        else:
            for batch in self.loader:  # type: ignore[union-attr]
                yield _split_batch(batch)

    def fingerprint(self) -> str:
        """SHA-256 of the images' and labels' bytes (and shapes/dtypes), in iteration order.

        A DataLoader is read once and its batches kept, so a shuffled or augmenting loader
        is fingerprinted on exactly the batches that are then extracted.
        """
        h = hashlib.sha256(b"tlearn-data-v1")
        if self.tensors is not None:
            for t in self.tensors:
                _update_hash(h, t)
            return h.hexdigest()
        self._materialised = [(x.cpu(), None if y is None else y.cpu()) for x, y in self]
        for x, y in self._materialised:
            _update_hash(h, x)
            _update_hash(h, y)
        return h.hexdigest()


def _update_hash(h: Any, t: torch.Tensor | None) -> None:
    if t is None:
        h.update(b"<none>")
        return
    t = t.detach()
    h.update(f"{t.dtype}{tuple(t.shape)}".encode())
    if t.numel():
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


def data_fingerprint(data: Any, batch_size: int = 256) -> str:
    """SHA-256 of a dataset's content (images and labels, in order); see :func:`extract`."""
    return _Batches(data, batch_size).fingerprint()


# =============================================================================== cache


class FeatureCache:
    """Features on disk, reused only when the exact same computation produced them.

    Each entry is one file ``<root>/<key>.pt``; ``key`` is a SHA-256 of

    * the model's fingerprint (class, architecture repr, every weight and buffer),
    * the layer name and the pooling,
    * the data's fingerprint (bytes of every image and label, in order),
    * the autocast dtype (reduced precision gives slightly different features).

    So changing one weight, one pixel, the layer or the pooling gives a different key: a
    *miss*, and the features are computed again. The key is also stored *inside* the file and
    checked on load, together with the tensors' types and shapes; a truncated, corrupt or
    foreign file is recomputed and overwritten, never silently reused. Files are loaded with
    ``torch.load(weights_only=True)`` (no pickled code runs) and written atomically
    (temporary file + ``os.replace``), so an interrupted run never leaves half a file.

    Args:
        root: folder; default ``tlearn.runtime.cache_dir() / "features"`` (``TLEARN_CACHE``).
        verbose: print one line per hit / miss.

    Attributes:
        hits, misses: counters since creation (a corrupt file counts as a miss).
    """

    VERSION = 1

    def __init__(self, root: str | os.PathLike | None = None, *, verbose: bool = False):
        self.root = Path(root) if root is not None else runtime.cache_dir() / "features"
        self.root.mkdir(parents=True, exist_ok=True)
        self.verbose = verbose
        self.hits = 0
        self.misses = 0

    # -- keys and files
    @staticmethod
    def make_key(model_fp: str, layer: str, pool: str | None, data_fp: str, amp: str) -> str:
        spec = {
            "v": FeatureCache.VERSION,
            "model": model_fp,
            "layer": layer,
            "pool": pool,
            "data": data_fp,
            "amp": amp,
        }
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.root / f"{key}.pt"

    def _say(self, msg: str) -> None:
        log.info(msg)
        if self.verbose:
            print(msg)

    def load(self, key: str) -> tuple[torch.Tensor, torch.Tensor | None] | None:
        """The stored ``(Z, y)`` for ``key``, or None (no file, corrupt, or not this key)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            entry = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unreadable file is recomputed
            self._say(f"feature cache: {path.name} is unreadable ({type(e).__name__}); recomputing")
            return None
        ok = (
            isinstance(entry, dict)
            and entry.get("key") == key
            and entry.get("version") == self.VERSION
            and isinstance(entry.get("Z"), torch.Tensor)
            and entry["Z"].dtype == torch.float32
            and entry["Z"].dim() >= 1
            and (
                entry.get("y") is None
                or (
                    isinstance(entry["y"], torch.Tensor)
                    and entry["y"].dtype == torch.int64
                    and len(entry["y"]) == len(entry["Z"])
                )
            )
        )
        if not ok:
            self._say(f"feature cache: {path.name} does not hold this key's features; recomputing")
            return None
        return entry["Z"], entry.get("y")

    def save(self, key: str, Z: torch.Tensor, y: torch.Tensor | None, **meta: Any) -> Path:
        """Write ``(Z, y)`` under ``key`` atomically; ``meta`` (strings/numbers) is stored too."""
        path = self.path(key)
        entry = {"version": self.VERSION, "key": key, "Z": Z.contiguous(), "y": y, "meta": meta}
        return runtime.atomic_write(path, lambda f: torch.save(entry, f))

    def get_or_compute(
        self,
        key: str,
        compute: Callable[[], tuple[torch.Tensor, torch.Tensor | None]],
        *,
        what: str = "",
        **meta: Any,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Load ``key``'s features (a hit) or call ``compute()`` and store them (a miss)."""
        found = self.load(key)
        if found is not None:
            self.hits += 1
            self._say(f"feature cache hit: {what or key[:12]}")
            return found
        self.misses += 1
        t0 = time.perf_counter()
        Z, y = compute()
        self.save(key, Z, y, **meta)
        self._say(
            f"feature cache miss: {what or key[:12]} computed in {time.perf_counter() - t0:.1f}s"
        )
        return Z, y

    # -- housekeeping
    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("*.pt"))

    def clear(self) -> int:
        """Delete every cached entry; return how many files were removed."""
        n = 0
        for p in self.root.glob("*.pt"):
            p.unlink(missing_ok=True)
            n += 1
        return n

    def __repr__(self) -> str:
        return (
            f"FeatureCache({str(self.root)!r}, entries={len(self)}, "
            f"hits={self.hits}, misses={self.misses})"
        )


# =============================================================================== extraction


def _forward_collect(
    model: nn.Module,
    batches: _Batches,
    layer_names: Sequence[str],
    pool: str | None,
    device: torch.device,
    amp: bool | None,
    progress: bool,
    desc: str,
) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """One pass over ``batches`` with a hook on each of ``layer_names``; pooled float32 CPU
    features per layer, and the labels (None when the data has none)."""
    modules = dict(model.named_modules())
    wanted = list(dict.fromkeys(layer_names))
    captured: dict[str, torch.Tensor] = {}

    def hook_for(name: str) -> Callable:
        def hook(_mod, _inp, out):
            if name in captured:  # a module called twice: its first call is the feature
                return
            t = out[0] if isinstance(out, (tuple, list)) else out
            if not isinstance(t, torch.Tensor):
                raise ValueError(f"layer {name!r} returned {type(t).__name__}, not a tensor")
            captured[name] = global_pool(t.float(), pool)  # pool in fp32 under autocast
            if len(captured) == len(wanted):
                raise _StopForward

        return hook

    outs: dict[str, list[torch.Tensor]] = {n: [] for n in wanted}
    ys: list[torch.Tensor] = []
    has_labels = True
    handles = [modules[n].register_forward_hook(hook_for(n)) for n in wanted]
    try:
        with _on_device(model, device), _eval_mode(model), torch.inference_mode():
            for x, y in tqdm(
                batches, total=batches.num_batches(), desc=desc, disable=not progress, leave=False
            ):
                captured.clear()
                x = x.to(device, non_blocking=True)
                with runtime.autocast(device, enabled=amp):
                    try:
                        model(x)
                    except _StopForward:
                        pass
                missing = [n for n in wanted if n not in captured]
                if missing:
                    raise RuntimeError(
                        f"layer(s) {missing} were not called in the forward pass; "
                        "tlearn.features.layers(model) lists the ones that are."
                    )
                for n in wanted:
                    outs[n].append(captured[n].cpu())
                if y is None:
                    has_labels = False
                elif has_labels:
                    ys.append(y.reshape(-1).cpu())
    finally:
        for h in handles:
            h.remove()
    # Concatenate outside inference mode so the results are ordinary tensors that can be
    # used in autograd later (e.g. to train a linear head on them).
    Z = {n: torch.cat(v).float() for n, v in outs.items()}
    labels = torch.cat(ys).long() if has_labels and ys else None
    return Z, labels


def _prepare(model, data, layer_names, pool, batch_size, device, amp):
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    for n in layer_names:
        _check_layer(model, n)
    dev = runtime.get_device(device) if not isinstance(device, torch.device) else device
    batches = _Batches(data, batch_size)
    amp_tag = str(runtime.amp_dtype(dev)) if amp is not False and runtime.amp_dtype(dev) else "fp32"
    return dev, batches, amp_tag


def _extract_layers(
    model: nn.Module,
    data: Any,
    layer_names: Sequence[str],
    *,
    pool: str | None,
    batch_size: int,
    device: Any,
    amp: bool | None,
    progress: bool,
    cache: FeatureCache | None,
) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """Features at several layers from one forward pass per batch (cached per layer)."""
    dev, batches, amp_tag = _prepare(model, data, layer_names, pool, batch_size, device, amp)
    name = type(model).__name__
    if cache is None:
        return _forward_collect(
            model, batches, layer_names, pool, dev, amp, progress, f"extract {name}"
        )
    model_fp, data_fp = model_fingerprint(model), batches.fingerprint()
    keys = {n: cache.make_key(model_fp, n, pool, data_fp, amp_tag) for n in layer_names}
    found = {n: cache.load(k) for n, k in keys.items()}
    missing = [n for n, v in found.items() if v is None]
    result: dict[str, torch.Tensor] = {}
    y: torch.Tensor | None = None
    for n, v in found.items():
        if v is not None:
            cache.hits += 1
            cache._say(f"feature cache hit: {name} @ {n or '(output)'} pool={pool}")
            result[n], y = v
    if missing:
        t0 = time.perf_counter()
        Z, y_new = _forward_collect(
            model, batches, missing, pool, dev, amp, progress, f"extract {name}"
        )
        secs = time.perf_counter() - t0
        for n in missing:
            cache.misses += 1
            cache.save(keys[n], Z[n], y_new, model=name, layer=n, pool=str(pool), n=len(Z[n]))
            cache._say(
                f"feature cache miss: {name} @ {n or '(output)'} pool={pool} "
                f"computed in {secs:.1f}s"
            )
            result[n] = Z[n]
        y = y_new
    return {n: result[n] for n in layer_names}, y


def extract(
    model: nn.Module,
    data: Any,
    layer: str | None = None,
    *,
    pool: str | None = "avg",
    batch_size: int = 256,
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
        batch_size: images per forward pass (ignored for a DataLoader, which has its own).
        device, amp: where to run and whether to use autocast (None: on where supported).
        progress: show a tqdm progress bar.
        cache: a :class:`FeatureCache`; features are then loaded when the same model,
            layer, pooling and data were extracted before, and stored otherwise.

    Returns:
        ``(Z, y)``: ``Z`` a float32 CPU tensor ``N×D`` (or the raw layer shape when
        ``pool=None``), ``y`` the int64 labels (``None`` when ``data`` is a bare tensor).
    """
    layer = _default_layer(model) if layer is None else layer
    Z, y = _extract_layers(
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


# =============================================================================== probes


def _as_numpy(x: ArrayLike, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _check_probe_inputs(
    Z_train: ArrayLike, y_train: ArrayLike, Z_test: ArrayLike, y_test: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validate probe inputs and return them as float64 / int64 numpy arrays."""
    out = []
    for zname, yname, Z, y in (
        ("Z_train", "y_train", Z_train, y_train),
        ("Z_test", "y_test", Z_test, y_test),
    ):
        if Z is None or y is None:
            raise ValueError(f"{zname} and {yname} are required (got None); labelled data needed")
        Z, y = _as_numpy(Z, zname), _as_numpy(y, yname)
        if Z.ndim != 2:
            raise ValueError(
                f"{zname} must be N×D features, got shape {Z.shape}; extract with pool='avg' or "
                "'flatten' to get one vector per image"
            )
        y = y.reshape(-1) if y.ndim > 1 and y.size == len(y) else y
        if y.ndim != 1:
            raise ValueError(f"{yname} must be a vector of N labels, got shape {y.shape}")
        if len(Z) != len(y):
            raise ValueError(f"{zname} has {len(Z)} rows but {yname} has {len(y)} labels")
        if len(Z) == 0:
            raise ValueError(f"{zname} is empty")
        if not np.issubdtype(Z.dtype, np.number):
            raise ValueError(f"{zname} must be numeric, got dtype {Z.dtype}")
        Z = Z.astype(np.float64)
        if not np.isfinite(Z).all():
            bad = int((~np.isfinite(Z)).any(axis=1).sum())
            raise ValueError(f"{zname} contains NaN or Inf in {bad} row(s); check the model/inputs")
        if not np.issubdtype(y.dtype, np.integer):
            if np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y)):
                y = y.astype(np.int64)
            else:
                raise ValueError(f"{yname} must hold integer class labels, got dtype {y.dtype}")
        out += [Z, y.astype(np.int64)]
    Ztr, ytr, Zte, yte = out
    if Ztr.shape[1] != Zte.shape[1]:
        raise ValueError(
            f"Z_train has {Ztr.shape[1]} features per row but Z_test has {Zte.shape[1]}"
        )
    if len(np.unique(ytr)) < 2:
        raise ValueError(
            f"y_train holds a single class ({int(ytr[0])}); a classifier needs at least two"
        )
    return Ztr, ytr, Zte, yte


def _small_problem_threads(n_values: int):
    """Single-threaded BLAS for small problems: a probe's matrices are tiny, threads do not
    pay off, and on a busy machine OpenBLAS's spinning threads can make a fit 50× slower."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1) if n_values < 20_000_000 else contextlib.nullcontext()


def linear_probe(
    Z_train: ArrayLike,
    y_train: ArrayLike,
    Z_test: ArrayLike,
    y_test: ArrayLike,
    *,
    C: float = 1.0,
    max_iter: int = 1000,
    seed: int = 0,
    unlabeled: ArrayLike | None = None,
) -> dict[str, Any]:
    """Fit a linear classifier on frozen features; report its test accuracy.

    Each feature is standardised (``(z − mean) / std``), then a multinomial logistic
    regression minimises

        − Σ_i log softmax(W z_i + b)[y_i]  +  ‖W‖² / (2C)

    Why this and not a few epochs of SGD on an ``nn.Linear``: the problem is convex, so
    scikit-learn's L-BFGS reaches *the* optimum — no learning rate, epoch count or seed to
    tune, and the number measures the features, not the optimiser. Standardising makes one
    ``C`` sensible for every layer (their activations differ in scale by orders of magnitude).

    The mean and std come from ``Z_train``, or from ``unlabeled`` when given: features of
    unlabelled examples from the same distribution (e.g. the whole target training pool, of
    which only a few are labelled; no labels are used). With 1 label per class and 1280
    features, 10 examples estimate 1280 means and stds poorly; the pool estimates them well.

    Args:
        Z_train, y_train: training features ``N×D`` and integer labels (tensors or arrays).
        Z_test, y_test: test features and labels.
        C: inverse L2 strength (smaller = stronger regularisation).
        max_iter: L-BFGS iterations.
        seed: ``random_state`` of the solver (L-BFGS itself is deterministic).
        unlabeled: optional ``M×D`` features to compute the standardisation from.

    Returns:
        ``{"accuracy": test accuracy in [0, 1], "train_accuracy": …, "classifier": the fitted
        scikit-learn Pipeline (``.predict(Z)`` works on raw features)}``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if not C > 0:
        raise ValueError(f"C must be > 0, got {C!r}")
    if not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive int, got {max_iter!r}")
    Ztr, ytr, Zte, yte = _check_probe_inputs(Z_train, y_train, Z_test, y_test)
    if unlabeled is not None:
        U = _as_numpy(unlabeled, "unlabeled")
        if U.ndim != 2 or U.shape[1] != Ztr.shape[1] or len(U) < 2:
            raise ValueError(
                f"unlabeled must be M×{Ztr.shape[1]} features with M >= 2, got shape {U.shape}"
            )
        U = U.astype(np.float64)
        if not np.isfinite(U).all():
            raise ValueError("unlabeled contains NaN or Inf")
    else:
        U = Ztr
    with _small_problem_threads(Ztr.size + U.size):
        scaler = StandardScaler().fit(U)
        logreg = LogisticRegression(C=C, max_iter=max_iter, random_state=seed)
        logreg.fit(scaler.transform(Ztr), ytr)
        clf = Pipeline([("standardscaler", scaler), ("logisticregression", logreg)])
        acc = float((clf.predict(Zte) == yte).mean())
        train_acc = float((clf.predict(Ztr) == ytr).mean())
    return {"accuracy": acc, "train_accuracy": train_acc, "classifier": clf}


def knn_probe(
    Z_train: ArrayLike,
    y_train: ArrayLike,
    Z_test: ArrayLike,
    y_test: ArrayLike,
    *,
    k: int = 5,
    metric: str = "cosine",
) -> dict[str, Any]:
    """k-nearest-neighbour probe: each test vector takes the majority label of its ``k``
    closest training vectors (cosine distance ``1 − z·z'/(‖z‖‖z'‖)`` by default, as in
    DINO's k-NN evaluation, Caron et al. 2021). Nothing is trained, so it measures how well
    the feature space *clusters* by class rather than whether classes are linearly separable.

    Returns:
        ``{"accuracy": …, "classifier": the fitted KNeighborsClassifier}``.
    """
    from sklearn.neighbors import KNeighborsClassifier

    Ztr, ytr, Zte, yte = _check_probe_inputs(Z_train, y_train, Z_test, y_test)
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    if k > len(Ztr):
        raise ValueError(f"k={k} is more than the {len(Ztr)} training examples")
    with _small_problem_threads(Ztr.size + Zte.size):
        clf = KNeighborsClassifier(n_neighbors=k, metric=metric, algorithm="brute").fit(Ztr, ytr)
        acc = float((clf.predict(Zte) == yte).mean())
    return {"accuracy": acc, "classifier": clf}


_PROBES: dict[str, Callable[..., dict[str, Any]]] = {"linear": linear_probe, "knn": knn_probe}


def _probe_fn(probe: str) -> Callable[..., dict[str, Any]]:
    if probe not in _PROBES:
        raise ValueError(f"probe must be one of {sorted(_PROBES)}, got {probe!r}")
    return _PROBES[probe]


def few_shot_probe(
    Z_train: ArrayLike,
    y_train: ArrayLike,
    Z_test: ArrayLike,
    y_test: ArrayLike,
    *,
    per_class: Sequence[int] = (1, 5, 10, 30),
    seeds: Sequence[int] = (0, 1, 2),
    probe: str = "linear",
    pool_statistics: bool = True,
    progress: bool = False,
    **probe_kwargs: Any,
) -> dict[str, Any]:
    """Probe accuracy when only ``per_class`` labelled examples per class are available.

    For each seed and each ``k`` in ``per_class`` the probe is trained on ``k`` rows per
    class of ``(Z_train, y_train)`` — the same rows ``tlearn.data.few_shot(ds, k, seed)``
    would pick from the dataset the features came from — and tested on all of ``Z_test``.
    Features are computed once; this is where :class:`FeatureCache` pays off.

    With ``pool_statistics`` (default) the linear probe standardises with the mean and std
    of *all* rows of ``Z_train`` — the unlabelled pool; its labels are not used — rather than
    of the few labelled rows (see :func:`linear_probe`'s ``unlabeled``).

    Returns:
        ``{"per_class": [...], "seeds": [...], "accuracy": seeds × len(per_class) list}``,
        ready for ``tlearn.plot.curves(r["per_class"], {"name": r["accuracy"]})``.
    """
    fn = _probe_fn(probe)
    Ztr, ytr, Zte, yte = _check_probe_inputs(Z_train, y_train, Z_test, y_test)
    if probe == "linear" and pool_statistics:
        probe_kwargs = {"unlabeled": Ztr, **probe_kwargs}
    if not per_class or any(not isinstance(k, (int, np.integer)) or k < 1 for k in per_class):
        raise ValueError(f"per_class must be positive ints, got {per_class!r}")
    if not seeds:
        raise ValueError("seeds must hold at least one seed")
    acc = []
    total = len(seeds) * len(per_class)
    with tqdm(total=total, desc=f"{probe} probes", disable=not progress, leave=False) as bar:
        for s in seeds:
            row = []
            for k in per_class:
                idx = few_shot_indices(ytr, int(k), int(s))
                row.append(fn(Ztr[idx], ytr[idx], Zte, yte, **probe_kwargs)["accuracy"])
                bar.update()
            acc.append(row)
    return {
        "per_class": [int(k) for k in per_class],
        "seeds": [int(s) for s in seeds],
        "accuracy": acc,
    }


def _default_sweep_layers(model: nn.Module) -> list[str]:
    """The model's blocks: the children of ``.features`` (``features.conv1`` …), else the
    model's top-level children; ``tlearn.models.blocks`` when it exists."""
    from tlearn import models

    blocks_fn = getattr(models, "blocks", None)
    if blocks_fn is not None:
        try:
            return [n for n, _ in blocks_fn(model)]
        except Exception:  # noqa: BLE001 - fall back to the structural rule below
            pass
    feats = getattr(model, "features", None)
    if isinstance(feats, nn.Module) and len(list(feats.children())) > 0:
        return [f"features.{n}" for n, _ in feats.named_children()]
    return [n for n, _ in model.named_children()]


def layer_sweep(
    model: nn.Module,
    train: Any,
    test: Any,
    layers: Sequence[str] | None = None,
    *,
    pool: str | None = "avg",
    probe: str = "linear",
    batch_size: int = 256,
    device: str | torch.device | None = None,
    amp: bool | None = None,
    progress: bool = True,
    cache: FeatureCache | None = None,
    unlabeled: Any = None,
    cv: int | None = None,
    **probe_kwargs: Any,
) -> list[dict[str, Any]]:
    """Probe accuracy at each layer: which depth of the network transfers best?

    Early layers compute generic edges and strokes, late layers specialise to the source
    task (Yosinski et al., "How transferable are features in deep neural networks?",
    NeurIPS 2014). One forward pass per dataset hooks all ``layers`` at once.

    Choosing the layer by its *test* accuracy would report an optimistic number. With
    ``cv=k`` each row also gets ``cv_accuracy``: the probe's mean accuracy in stratified
    k-fold cross-validation on ``train`` alone; pick the layer with the best ``cv_accuracy``
    (:func:`best_layer`) and its ``accuracy`` is an honest test number.

    Args:
        train, test: labelled data (Dataset / DataLoader) for the probe.
        layers: module names; default the model's blocks (``features.conv1`` …, ``head``).
        pool: pooling applied at every layer.
        probe: ``"linear"`` or ``"knn"``; ``probe_kwargs`` go to it (e.g. ``C=0.1``, ``k=3``).
        unlabeled: optional data (labels ignored) whose features at each layer give the
            linear probe's standardisation, e.g. the whole target training pool when
            ``train`` is a few-shot subset of it (see :func:`linear_probe`).

        cv: number of cross-validation folds on ``train`` (≤ the smallest class count).

    Returns:
        One dict per layer, input → output order: ``{"layer", "dim", "accuracy"}`` (and
        ``"cv_accuracy"`` with ``cv``).
    """
    fn = _probe_fn(probe)
    if cv is not None and (not isinstance(cv, int) or cv < 2):
        raise ValueError(f"cv must be an int >= 2 (folds) or None, got {cv!r}")
    names = list(layers) if layers is not None else _default_sweep_layers(model)
    if not names:
        raise ValueError("layers is empty: nothing to probe")
    kw = dict(
        pool=pool, batch_size=batch_size, device=device, amp=amp, progress=progress, cache=cache
    )
    Ztr, ytr = _extract_layers(model, train, names, **kw)
    Zte, yte = _extract_layers(model, test, names, **kw)
    if ytr is None or yte is None:
        raise ValueError("layer_sweep needs labelled train and test data (got unlabelled tensors)")
    Zun: dict[str, torch.Tensor] | None = None
    if unlabeled is not None:
        if probe != "linear":
            raise ValueError("unlabeled is only used by the linear probe")
        Zun, _ = _extract_layers(model, unlabeled, names, **kw)
    rows = []
    for n in names:
        a, b = Ztr[n].flatten(1), Zte[n].flatten(1)
        if Zun is not None:
            probe_kwargs = {**probe_kwargs, "unlabeled": Zun[n].flatten(1)}
        row = {
            "layer": n,
            "dim": int(a.shape[1]),
            "accuracy": fn(a, ytr, b, yte, **probe_kwargs)["accuracy"],
        }
        if cv is not None:
            row["cv_accuracy"] = _cv_accuracy(fn, a, ytr, cv, probe_kwargs)
        rows.append(row)
    return rows


def _cv_accuracy(
    fn: Callable[..., dict[str, Any]], Z: torch.Tensor, y: torch.Tensor, folds: int, kw: dict
) -> float:
    """Mean probe accuracy over stratified ``folds``-fold cross-validation on (Z, y)."""
    from sklearn.model_selection import StratifiedKFold

    counts = torch.bincount(y)
    smallest = int(counts[counts > 0].min())
    if folds > smallest:
        raise ValueError(
            f"cv={folds} folds need >= {folds} training examples per class; the smallest "
            f"class has {smallest}"
        )
    Zn, yn = Z.numpy(), y.numpy()
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    accs = [fn(Zn[a], yn[a], Zn[b], yn[b], **kw)["accuracy"] for a, b in splitter.split(Zn, yn)]
    return float(np.mean(accs))


def best_layer(rows: Sequence[dict[str, Any]], key: str = "cv_accuracy") -> dict[str, Any]:
    """The row of :func:`layer_sweep` with the highest ``key`` (default: cross-validated
    accuracy on the training labels, so the choice never looks at test labels)."""
    if not rows:
        raise ValueError("rows is empty")
    if any(key not in r for r in rows):
        raise ValueError(f"rows have no {key!r}; run layer_sweep(..., cv=5) first")
    return max(rows, key=lambda r: r[key])
