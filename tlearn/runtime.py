"""Where code runs and how it is made repeatable: device, seeding, mixed precision, folders.

Every other module asks this one for the device (``get_device``), the autocast context
(``autocast``) and the folders it may write to (``cache_dir``, ``data_dir``), so a user
changes one environment variable, not twenty call sites:

* ``TLEARN_DEVICE`` — force a device (``cpu``, ``cuda``, ``cuda:1``, ``mps``).
* ``TLEARN_CACHE``  — where pretrained source models, feature caches and results go
  (default ``~/.cache/tlearn``). Like ``PATH`` it may list several folders, joined by
  ``os.pathsep`` (``:`` on Linux and macOS): *layers*, searched in order when reading;
  writes go to the first layer this process may write to. A class shares one cache this
  way — the teacher fills it once (``TLEARN_CACHE=/srv/tlearn-cache tlearn warm``), the
  students set ``TLEARN_CACHE=~/.cache/tlearn:/srv/tlearn-cache`` and read the teacher's
  entries, while whatever they compute themselves lands in their own folder. A layer that
  is read-only is only ever read: never written, never cleaned, never an error.
* ``TLEARN_DATA``   — where real datasets (MNIST, USPS, …) are looked for (default: the
  ``data`` folder of the first layer that has one, else ``<cache_dir()>/data``).
* ``TLEARN_THREADS`` — torch's CPU threads, and those of the BLAS numpy and scipy (so
  scikit-learn) compute with. Unset: ``import tlearn`` lowers them to the CPUs this process
  may really use (:func:`cpu_budget`) when torch would start more — a container can show
  all of the host's cores while its CPU quota allows one or two, and a thread for every
  host core then trains 2–3× slower (``benchmarks/threads.py``: 2.1× with 8 threads on 2
  CPUs, 3.4× with 16). It never raises the count, and leaves it alone when
  ``OMP_NUM_THREADS`` is set (BLAS's alone when ``OPENBLAS_NUM_THREADS`` is).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import random
import secrets
import stat
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import numpy as np
import torch

import tlearn
from tlearn import checks

__all__ = [
    "get_device", "seed_everything", "autocast", "amp_dtype", "make_grad_scaler", "eval_mode",
    "cache_dirs", "cache_dir", "cache_key", "find_cached", "load_cached", "save_cached",
    "cached_json", "data_dir", "atomic_write", "recording_writes", "cgroup_cpu_quota",
    "cpu_budget", "limit_threads", "PROGRESS_INTERVAL", "progress_bar", "restored_on_error",
]  # fmt: skip

#: Seconds between redraws of tlearn's per-batch progress bars. In a notebook every redraw
#: is a message to the front end, and a kernel that sends thousands of them during one long
#: cell overflows the channel: messages are dropped, and a runner such as nbval then fails
#: with "Timeout … waiting for output". Per-step statistics go in with ``refresh=False``.
PROGRESS_INTERVAL = 0.5


def progress_bar(iterable: Any = None, *, enabled: bool = True, **kwargs: Any):
    """tlearn's progress bar: ``tqdm.auto`` (a widget in notebooks), redrawn at most every
    :data:`PROGRESS_INTERVAL` seconds.

    ``TLEARN_PROGRESS=0`` turns every bar off: for notebooks executed to be stored and read
    later (on GitHub, on Binder before a kernel runs), where a bar's widget is shown as its
    first text frame, "0%| 0/4".
    """
    from tqdm.auto import tqdm

    off = not enabled or os.environ.get("TLEARN_PROGRESS", "1") == "0"
    return tqdm(iterable, disable=off, mininterval=PROGRESS_INTERVAL, **kwargs)


def cgroup_cpu_quota(root: str | Path = "/sys/fs/cgroup") -> float | None:
    """The CPU time this process's control group may use, in CPUs (1.5 = one and a half), or
    None when there is no limit or no control group to read.

    cgroup v2 writes ``"<quota> <period>"`` (or ``"max <period>"``) to ``cpu.max``; v1 writes
    ``cpu.cfs_quota_us`` (−1: no limit) and ``cpu.cfs_period_us``.
    """
    root = Path(root)
    v1 = [
        (f / "cpu.cfs_quota_us", f / "cpu.cfs_period_us")
        for f in (root / "cpu", root / "cpu,cpuacct", root)
    ]
    for files in [(root / "cpu.max",), *v1]:  # v2's one file holds both numbers
        try:
            quota, period = " ".join(f.read_text() for f in files).split()[:2]
            quota, period = (-1 if quota == "max" else int(quota)), int(period)
        except (OSError, ValueError):
            continue
        return None if quota <= 0 or period <= 0 else quota / period
    return None


def cpu_budget() -> int:
    """How many CPUs this process may really use: the CPUs it may be scheduled on, capped by
    its control group's CPU quota (rounded up). At least 1."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        n = os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    return max(1, n if quota is None else min(n, math.ceil(quota)))


def limit_threads(n: int | None = None) -> int:
    """Cap torch's CPU threads at ``n`` — default ``TLEARN_THREADS``, else :func:`cpu_budget`
    — and numpy's and scipy's BLAS threads at the same count.

    With ``n`` or ``TLEARN_THREADS`` given the count is set to it; otherwise it is only ever
    lowered, and left alone when ``OMP_NUM_THREADS`` is set (the user chose). Returns
    torch's thread count now in force. ``import tlearn`` calls it once.
    """
    env = os.environ.get("TLEARN_THREADS", "").strip()
    if n is None and env:
        n = checks.positive_int("TLEARN_THREADS", int(env) if env.isdigit() else env)
    if n is not None:
        torch.set_num_threads(checks.positive_int("threads", n))
    elif os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    elif torch.get_num_threads() > cpu_budget():
        torch.set_num_threads(cpu_budget())
    _limit_blas(torch.get_num_threads())
    return torch.get_num_threads()


def _limit_blas(n: int) -> None:
    """``n`` threads for the BLAS numpy and scipy (so scikit-learn's solvers) compute with,
    through threadpoolctl, unless the user set ``OPENBLAS_NUM_THREADS``. scipy brings its own
    OpenBLAS, loaded here so that the cap reaches it too. (No environment variable is set:
    child processes would inherit it as if the user had chosen.) OpenBLAS starts a thread
    per visible core, and its spinning threads on a busy or quota-limited CPU make a small
    fit several times slower (``benchmarks/threads.py``)."""
    import scipy.linalg  # noqa: F401 — loads scipy's OpenBLAS, for threadpoolctl to find
    from threadpoolctl import threadpool_limits

    if not os.environ.get("OPENBLAS_NUM_THREADS"):
        threadpool_limits(limits=n, user_api="blas")


def get_device(device: torch.device | str | None = None) -> torch.device:
    """The one place a device is chosen: ``device`` if given, else ``TLEARN_DEVICE``, else
    cuda > mps > cpu.

    Every function of tlearn that takes ``device=None`` calls this, so one environment
    variable moves the whole library (``TLEARN_DEVICE=cpu`` forces the CPU).

    >>> get_device("cpu")
    device(type='cpu')
    """
    name = device if device is not None else os.environ.get("TLEARN_DEVICE")
    if not name:
        return torch.device(next(kind for kind in ("cuda", "mps", "cpu") if _available(kind)))
    chosen = parse_device(name, "device" if device is not None else "TLEARN_DEVICE")
    if not _available(chosen.type):
        backend = _BACKENDS[chosen.type]
        raise RuntimeError(
            f"the device {str(name)!r} (argument or TLEARN_DEVICE) is {backend}, but {backend} is "
            "not available here; unset TLEARN_DEVICE or use 'cpu'."
        )
    return chosen


#: The accelerators whose presence :func:`get_device` checks, and their names in its messages.
_BACKENDS = {"cuda": "CUDA", "mps": "Apple's MPS"}


def _available(kind: str) -> bool:
    """Can this machine run on a device of type ``kind``? (cpu and unchecked types: yes.)"""
    if kind == "cuda":
        return torch.cuda.is_available()
    return kind != "mps" or torch.backends.mps.is_available()


#: The device names a user types most; torch knows more (``xpu``, ``meta`` …) and takes them too.
DEVICE_NAMES = ("cpu", "cuda", "cuda:0", "mps")


def parse_device(name: Any, what: str = "device") -> torch.device:
    """``torch.device(name)``, with a message that lists the valid names when it is not one.

    >>> parse_device("gpu")
    Traceback (most recent call last):
    ...
    ValueError: device 'gpu' is not a device name; use one of cpu, cuda, cuda:0, mps (a GPU is "cuda")
    """
    if isinstance(name, torch.device):
        return name
    try:
        if not isinstance(name, (str, int)) or isinstance(name, bool):
            raise TypeError
        return torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        hint = ' (a GPU is "cuda")' if str(name).lower().startswith("gpu") else ""
        raise ValueError(
            f"{what} {name!r} is not a device name; use one of {', '.join(DEVICE_NAMES)}{hint}"
        ) from None


def seed_everything(seed: int) -> int:
    """Seed Python, NumPy and PyTorch (CPU and every CUDA device).

    cuDNN then picks deterministic kernels, so the same seed gives the same weights on the
    same machine and library versions. Returns the seed.
    """
    seed = checks.nonnegative_int("seed", seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - seeding the legacy global RNG is the point
    torch.manual_seed(seed)  # every device's generator: the CPU's and each CUDA device's
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    return seed


def amp_dtype(device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype for ``device``: bf16 on CUDA that supports it, else fp16; None on CPU/MPS."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device | str, enabled: bool | None = None):
    """Mixed-precision context for ``device``; a no-op on CPU (and MPS) or when disabled.

    ``enabled=None`` means: on when the device supports it (CUDA).
    """
    dtype = amp_dtype(device)  # None unless CUDA
    if enabled is False or dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=dtype)


def make_grad_scaler(device: torch.device | str, enabled: bool | None = None):
    """A GradScaler when training in fp16 on CUDA (bf16 needs none); else a disabled one."""
    use = enabled is not False and amp_dtype(device) == torch.float16
    return torch.amp.GradScaler("cuda", enabled=use)


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Run a block with every module of ``model`` in eval mode; afterwards give **each**
    module back its own mode.

    ``model.train(was)`` would not do: it sets every submodule to the one mode ``was``, so a
    BatchNorm a user put in eval mode inside a training model (the usual way to keep its
    statistics fixed) would come back in train mode, and the next training step would move
    the statistics the user froze. Each ``.training`` flag is saved and written back as it
    was (assigned, not through ``train()``, so no module's own ``train`` override runs).

    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)).train()
    >>> _ = net[1].eval()  # statistics kept fixed by hand
    >>> with eval_mode(net):
    ...     net.training, net[1].training
    (False, False)
    >>> net.training, net[0].training, net[1].training
    (True, True, False)
    """
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, was_training in modes:
            m.training = was_training


@contextlib.contextmanager
def restored_on_error(modules: Iterable[torch.nn.Module]) -> Iterator[None]:
    """Run a block; if it raises, put each of ``modules`` back in the state (``state_dict``) it
    had before, so that a batch refused half-way leaves, say, BatchNorm statistics untouched."""
    saved = {m: {k: v.clone() for k, v in m.state_dict().items()} for m in modules}
    try:
        yield
    except BaseException:
        for m, state in saved.items():
            m.load_state_dict(state)
        raise


# --- Caches: layers read in order, written to the first writable one ------------------------
#
# A cache entry is named by a relative path ("models/digitnet-synth-3f2a.pt"). Reading looks
# for it in every layer of TLEARN_CACHE in turn; writing puts it in the first layer this
# process may write to. Every file is written atomically and with the usual permissions
# (0644 under umask 022), so the other users of a shared cache can read it.

T = TypeVar("T")


def cache_dirs() -> list[Path]:
    """The cache layers, in search order: the folders of ``TLEARN_CACHE`` (joined by
    ``os.pathsep``, like ``PATH``; empty entries are skipped), default ``~/.cache/tlearn``.

    Nothing is created or checked here; :func:`cache_dir` picks the layer writes go to.

    >>> import os
    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, TLEARN_CACHE=os.pathsep.join(["/srv/class", "/tmp/me"])):
    ...     [str(p) for p in cache_dirs()]
    ['/srv/class', '/tmp/me']
    """
    env = os.environ.get("TLEARN_CACHE") or ""
    layers = [Path(entry).expanduser() for entry in env.split(os.pathsep) if entry.strip()]
    return layers or [Path.home() / ".cache" / "tlearn"]


def _may_write(folder: Path) -> bool:
    """May this process add files to ``folder``? Two checks, both needed:

    * ``os.access`` asks the kernel, which knows owners, groups, ACLs and read-only mounts;
    * the mode must grant *someone* write (``chmod a-w`` clears every bit). The kernel lets
      root write into any folder, so for root the bits are the only sign that the owner
      meant the folder to be read-only; we respect it.
    """
    mode = folder.stat().st_mode  # the folder exists: _first_writable_layer has just made it
    effective = os.access in os.supports_effective_ids  # setuid programs: ask as who we act
    kernel_allows = os.access(folder, os.W_OK | os.X_OK, effective_ids=effective)
    return stat.S_ISDIR(mode) and bool(mode & 0o222) and kernel_allows


def _first_writable_layer() -> Path | None:
    """The first layer that exists or can be created, and that this process may write to."""
    for folder in cache_dirs():
        try:
            folder.mkdir(parents=True, exist_ok=True)  # 0777 & ~umask, like every folder
        except OSError:  # no permission, a read-only disk, a file in the way: not this one
            continue
        if _may_write(folder):
            return folder
    return None


def cache_dir() -> Path:
    """The folder cache entries are written to: the first layer of :func:`cache_dirs` that
    this process may write to (created if missing). A layer that exists read-only, or cannot
    be created, is skipped — that is how a class shares a teacher's read-only cache.

    Raises PermissionError, naming ``TLEARN_CACHE``, when no layer is writable.
    """
    folder = _first_writable_layer()
    if folder is None:
        layers = os.pathsep.join(str(p) for p in cache_dirs())
        raise PermissionError(
            f"no writable cache folder: every layer of TLEARN_CACHE ({layers}) is read-only "
            "or cannot be created. Add a folder you may write to after them, e.g. "
            f"TLEARN_CACHE={layers}{os.pathsep}~/.cache/tlearn"
        )
    return folder


def _entry_name(relpath: str | Path) -> Path:
    """``relpath`` checked to name a place inside a cache layer (relative, no ``..``)."""
    if not isinstance(relpath, str | Path) or not str(relpath):
        raise TypeError(f"a cache entry is named by a non-empty str or Path, got {relpath!r}")
    path = Path(relpath)
    if path.is_absolute() or ".." in path.parts:
        raise ValueError(
            f"a cache entry is named by a relative path inside the cache, like "
            f"'models/net.pt'; got {relpath!r}"
        )
    return path


def _copies(relpath: str | Path, folders: Iterable[Path] | None = None) -> Iterator[Path]:
    """Every layer's copy of the entry ``relpath`` (a file or folder), in search order."""
    name = _entry_name(relpath)
    search = cache_dirs() if folders is None else folders  # [] searches nothing
    return (folder / name for folder in search if (folder / name).exists())


def find_cached(relpath: str | Path) -> Path | None:
    """The first layer's copy of the entry ``relpath`` (a file or folder), or None."""
    return next(_copies(relpath), None)


def load_cached(
    relpath: str | Path, read: Callable[[Path], T], *, folders: Iterable[Path] | None = None
) -> T | None:
    """``read(file)`` of the first copy of entry ``relpath`` that reads, searching the layers
    in order (or the given ``folders``); None when no layer has one that reads.

    A copy that ``read`` rejects (it raises: truncated, corrupt, from another version) is
    skipped with a warning naming the file, and the next layer is tried. Nothing is ever
    deleted or rewritten here — a shared layer belongs to someone else; a broken entry in
    your own layer is replaced by the next :func:`save_cached`.

    A teacher fills a cache; a student lists it before their own and reads the entry:

    >>> import os, tempfile
    >>> from unittest import mock
    >>> teacher, student = tempfile.mkdtemp(), tempfile.mkdtemp()
    >>> with mock.patch.dict(os.environ, TLEARN_CACHE=teacher):
    ...     saved = save_cached("notes/hello.txt", lambda f: f.write(b"hello"))
    >>> with mock.patch.dict(os.environ, TLEARN_CACHE=os.pathsep.join([teacher, student])):
    ...     print(load_cached("notes/hello.txt", Path.read_bytes))
    ...     print(load_cached("notes/other.txt", Path.read_bytes))  # in no layer
    b'hello'
    None
    """
    for path in _copies(relpath, folders):
        try:
            return read(path)
        except Exception as err:  # noqa: BLE001 - any failure to read means: try the next layer
            warnings.warn(
                f"skipping the unreadable cache entry {path} ({type(err).__name__}: {err}); "
                "trying the next layer of TLEARN_CACHE",
                RuntimeWarning,
                stacklevel=2,
            )
    return None


def rank_and_world() -> tuple[int, int]:
    """``(rank, world_size)`` of this process when a torchrun process group is up, else
    ``(0, 1)``. (Joining the group is :func:`tlearn.distributed.distributed`'s job.)"""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main_process() -> bool:
    """True unless this is a torchrun process of rank > 0 (which must not write files)."""
    return rank_and_world()[0] == 0


def save_cached(relpath: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """Write entry ``relpath`` into :func:`cache_dir` with :func:`atomic_write`; its path.

    ``write(f)`` writes the bytes to the open binary file ``f``, e.g.
    ``save_cached("models/net.pt", lambda f: torch.save(state, f))``. Under torchrun only
    rank 0 writes (every rank computed the same entry).
    """
    path = cache_dir() / _entry_name(relpath)
    return atomic_write(path, write) if is_main_process() else path


def cache_key(spec: Mapping[str, Any], *, versioned: bool = True) -> str:
    """The name of the cache entry that holds what ``spec`` describes: the first 24 hex digits
    of the SHA-256 of ``spec`` written as JSON with sorted keys (one text per spec, so one name),
    with ``"tlearn": tlearn.__version__`` added when ``versioned`` — a new version recomputes.

    Any change to ``spec`` names a new entry, so a stale result is never read for a new
    question; put into ``spec`` everything the result depends on.

    >>> cache_key({"seed": 0, "epochs": 4}) == cache_key({"epochs": 4, "seed": 0})
    True
    >>> cache_key({"seed": 0}) == cache_key({"seed": 1}), len(cache_key({"seed": 0}))
    (False, 24)
    """
    if versioned:
        spec = {**spec, "tlearn": tlearn.__version__}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:24]


def cached_json(
    relpath: str | Path,
    compute: Callable[[], T],
    *,
    valid: Callable[[Any], bool] = lambda value: True,
    recompute: bool = False,
) -> T:
    """The JSON entry ``relpath``: read from the first layer whose copy parses and is
    ``valid`` (:func:`load_cached`), else ``compute()``, saved (:func:`save_cached`) and returned.

    ``valid(value)`` says whether a copy holds what is asked for (say, its stored config is
    the caller's); ``recompute=True`` skips the reading. ``compute`` returns JSON's types.
    """

    def read(path: Path) -> Any:
        value = json.loads(path.read_text())
        if not valid(value):
            raise ValueError("it holds another configuration's result")
        return value

    found = None if recompute else load_cached(relpath, read)
    if found is not None:
        return found
    value = compute()
    save_cached(relpath, lambda f: f.write(json.dumps(value, indent=1).encode()))
    return value


def data_dir() -> Path:
    """Where real datasets are looked for (and downloaded to): ``TLEARN_DATA``, else the
    ``data`` folder of the first cache layer that has one (a teacher's shared downloads),
    else ``<cache_dir()>/data`` — or ``<first layer>/data`` when no layer is writable.
    Not created here: the dataset loaders do that when they download."""
    env = os.environ.get("TLEARN_DATA")
    if env:
        return Path(env).expanduser()
    return find_cached("data") or (_first_writable_layer() or cache_dirs()[0]) / "data"


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """Create or replace ``path`` all at once: ``write(f)`` fills a temporary file beside it,
    which is flushed to disk and renamed over ``path`` (``os.replace`` is atomic).

    An interruption (error, Ctrl-C) leaves the old file, or none — never half a file — and
    removes the temporary one. Every cache and checkpoint in tlearn is written this way.
    Permissions follow the umask, as for any file a program creates: 0644 files and 0755
    folders under the usual umask 022, so others sharing the cache can read them.

    >>> import tempfile
    >>> path = atomic_write(Path(tempfile.mkdtemp()) / "a" / "b.txt", lambda f: f.write(b"hi"))
    >>> path.read_bytes()
    b'hi'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)  # 0777 & ~umask
    fd, tmp = _create_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # the file keeps the temporary file's mode
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    for log in _WRITE_LOGS:
        log.append(path)
    return path


_WRITE_LOGS: list[list[Path]] = []


@contextlib.contextmanager
def recording_writes() -> Iterator[list[Path]]:
    """A list that collects every path :func:`atomic_write` writes in this process while the
    block runs (``tlearn warm`` reports what each of its steps built with it)."""
    log: list[Path] = []
    _WRITE_LOGS.append(log)
    try:
        yield log
    finally:
        _WRITE_LOGS.remove(log)


def _create_beside(path: Path) -> tuple[int, Path]:
    """A new, empty hidden file next to ``path``, open for writing: ``(descriptor, path)``.

    ``os.open(…, 0o666)`` lets the kernel apply the umask (and a folder's default ACL), as
    for any file a program creates. ``tempfile.mkstemp`` would make it 0600 — private to
    its owner, so nobody else could read a shared cache.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")  # 64 random bits: unique
    return os.open(tmp, flags, 0o666), tmp


limit_threads()
