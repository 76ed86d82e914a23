"""Caches a class can share: files follow the umask, TLEARN_CACHE lists layers, read-only
layers are read and never touched, and one user's entry is readable by another."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import tlearn
from tlearn import runtime


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under ``folder`` with its (mode, size, mtime in ns): what "unchanged" means."""
    return {
        str(p.relative_to(folder)): (p.stat().st_mode, p.stat().st_size, p.stat().st_mtime_ns)
        for p in [folder, *folder.rglob("*")]
    }


@pytest.fixture
def umask():
    """Set the process umask for one test (``umask(0o077)``); the old one is put back after."""
    before = os.umask(0o022)
    os.umask(before)
    yield os.umask
    os.umask(before)


@pytest.fixture
def layers(tmp_path, monkeypatch):
    """``TLEARN_CACHE=ro:rw``: ``ro`` holds ``models/net.bin`` and is made read-only (0555)."""
    ro, rw = tmp_path / "ro", tmp_path / "rw"
    (ro / "models").mkdir(parents=True)
    (ro / "models" / "net.bin").write_bytes(b"teacher's weights")
    for folder in (ro / "models", ro):
        folder.chmod(0o555)
    monkeypatch.setenv("TLEARN_CACHE", os.pathsep.join([str(ro), str(rw)]))
    yield ro, rw
    for folder in (ro, ro / "models"):  # let pytest clean up
        folder.chmod(0o755)


# --- atomic_write: permissions follow the umask ---------------------------------------------


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_atomic_write_files_and_folders_follow_the_umask(tmp_path, umask, mask):
    umask(mask)
    path = runtime.atomic_write(tmp_path / "a" / "b" / "entry.bin", lambda f: f.write(b"x"))
    assert path.read_bytes() == b"x"
    assert _mode(path) == 0o666 & ~mask
    assert _mode(tmp_path / "a") == _mode(tmp_path / "a" / "b") == 0o777 & ~mask
    # replacing a private file gives the replacement the umask's mode, not the old one
    path.chmod(0o600)
    runtime.atomic_write(path, lambda f: f.write(b"y"))
    assert path.read_bytes() == b"y" and _mode(path) == 0o666 & ~mask
    assert sorted(p.name for p in path.parent.iterdir()) == ["entry.bin"]  # no temp file left


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_save_cached_creates_the_cache_folder_with_the_umask(tmp_path, monkeypatch, umask, mask):
    umask(mask)
    monkeypatch.setenv("TLEARN_CACHE", str(tmp_path / "cache"))
    path = runtime.save_cached("results/run.json", lambda f: f.write(b"{}"))
    assert path == tmp_path / "cache" / "results" / "run.json"
    assert _mode(path) == 0o666 & ~mask
    assert _mode(tmp_path / "cache") == _mode(tmp_path / "cache" / "results") == 0o777 & ~mask


def test_atomic_write_keeps_the_old_file_and_no_temp_file_on_error(tmp_path):
    path = runtime.atomic_write(tmp_path / "entry.bin", lambda f: f.write(b"old"))

    def fail(f):
        f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        runtime.atomic_write(path, fail)
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entry.bin"]


# --- layers ---------------------------------------------------------------------------------


def test_cache_dirs_reads_a_path_like_list(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    monkeypatch.setenv("TLEARN_CACHE", os.pathsep.join([str(a), "", str(b), ""]))
    assert runtime.cache_dirs() == [a, b]  # empty entries skipped
    monkeypatch.setenv("TLEARN_CACHE", f"~{os.sep}c")
    assert runtime.cache_dirs() == [Path.home() / "c"]
    for unset in ("", None):
        if unset is None:
            monkeypatch.delenv("TLEARN_CACHE")
        else:
            monkeypatch.setenv("TLEARN_CACHE", unset)
        assert runtime.cache_dirs() == [Path.home() / ".cache" / "tlearn"]
    assert tlearn.cache_dir is runtime.cache_dir


def test_cache_dir_creates_the_first_layer_that_can_be(tmp_path, monkeypatch):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    first, second = tmp_path / "first", tmp_path / "second"
    monkeypatch.setenv(
        "TLEARN_CACHE", os.pathsep.join([str(blocked / "x"), str(first), str(second)])
    )
    assert runtime.cache_dir() == first and first.is_dir()
    assert not second.exists()  # only the layer written to is created


def test_read_only_layer_is_read_never_written(layers):
    ro, rw = layers
    before = _snapshot(ro)
    assert runtime.cache_dir() == rw
    assert runtime.find_cached("models/net.bin") == ro / "models" / "net.bin"
    assert runtime.load_cached("models/net.bin", Path.read_bytes) == b"teacher's weights"
    assert runtime.find_cached("models/other.bin") is None
    assert runtime.load_cached("models/other.bin", Path.read_bytes) is None

    saved = runtime.save_cached("models/other.bin", lambda f: f.write(b"student's"))
    assert saved == rw / "models" / "other.bin"
    assert runtime.load_cached("models/other.bin", Path.read_bytes) == b"student's"
    # the same name saved again goes to rw too; the read-only copy still wins the lookup
    assert runtime.save_cached("models/net.bin", lambda f: f.write(b"mine")).parent == rw / "models"
    assert runtime.load_cached("models/net.bin", Path.read_bytes) == b"teacher's weights"
    assert _snapshot(ro) == before
    # given folders are searched instead of the layers: rw's copy, and none of [] at all
    assert runtime.load_cached("models/net.bin", Path.read_bytes, folders=[rw]) == b"mine"
    assert runtime.load_cached("models/net.bin", Path.read_bytes, folders=[]) is None


def test_corrupt_entry_in_a_read_only_layer_is_skipped_with_a_warning(tmp_path, monkeypatch):
    ro, rw = tmp_path / "ro", tmp_path / "rw"
    (ro / "f").mkdir(parents=True)
    (ro / "f" / "x.json").write_text('{"trunc')
    (rw / "f").mkdir(parents=True)
    (rw / "f" / "x.json").write_text('{"ok": 1}')
    for folder in (ro / "f", ro):
        folder.chmod(0o555)
    monkeypatch.setenv("TLEARN_CACHE", os.pathsep.join([str(ro), str(rw)]))
    before = _snapshot(ro)

    def read(path: Path) -> dict:
        return json.loads(path.read_text())

    try:
        with pytest.warns(RuntimeWarning, match=str(ro / "f" / "x.json")):
            assert runtime.load_cached("f/x.json", read) == {"ok": 1}  # the next layer's copy
        (rw / "f" / "x.json").unlink()
        with pytest.warns(RuntimeWarning, match="unreadable"):
            assert runtime.load_cached("f/x.json", read) is None
        assert _snapshot(ro) == before  # not deleted, not rewritten
    finally:
        for folder in (ro, ro / "f"):
            folder.chmod(0o755)


def test_no_writable_layer_is_a_clear_error(layers, monkeypatch):
    ro, _ = layers
    monkeypatch.setenv("TLEARN_CACHE", str(ro))
    with pytest.raises(PermissionError, match="TLEARN_CACHE") as err:
        runtime.cache_dir()
    assert "~/.cache/tlearn" in str(err.value)  # says what to do
    with pytest.raises(PermissionError, match="TLEARN_CACHE"):
        runtime.save_cached("x.bin", lambda f: f.write(b"x"))
    # reading a read-only-only cache works, and is never an error
    assert runtime.load_cached("models/net.bin", Path.read_bytes) == b"teacher's weights"


def test_entry_names_must_stay_inside_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TLEARN_CACHE", str(tmp_path))
    for bad in ("/etc/passwd", "../outside", "a/../../b"):
        with pytest.raises(ValueError, match="relative path"):
            runtime.find_cached(bad)
        with pytest.raises(ValueError, match="relative path"):
            runtime.save_cached(bad, lambda f: f.write(b""))
    for bad in ("", 3):
        with pytest.raises(TypeError, match="str or Path"):
            runtime.load_cached(bad, Path.read_bytes)


def test_data_dir_prefers_a_layer_that_has_data(layers, monkeypatch, tmp_path):
    ro, rw = layers
    monkeypatch.delenv("TLEARN_DATA", raising=False)
    assert runtime.data_dir() == rw / "data"  # no layer has data yet: the writable one
    ro.chmod(0o755)
    (ro / "data").mkdir()
    ro.chmod(0o555)
    assert runtime.data_dir() == ro / "data"  # the teacher's downloads
    monkeypatch.setenv("TLEARN_DATA", str(tmp_path / "mine"))
    assert runtime.data_dir() == tmp_path / "mine"


# --- one user writes, another reads ---------------------------------------------------------

_STUDENT = """
import json
from pathlib import Path
from tlearn import runtime
print(json.dumps({
    "read": runtime.load_cached("models/net.bin", lambda p: p.read_bytes().decode()),
    "found": str(runtime.find_cached("models/net.bin")),
    "cache_dir": str(runtime.cache_dir()),
    "saved": str(runtime.save_cached("models/mine.bin", lambda f: f.write(b"student"))),
}))
"""


def _as_user(user: pwd.struct_passwd, code: str, env: dict[str, str]):
    """Run ``python -c code`` (this interpreter) as ``user``, with only ``env`` set."""
    command = [
        "setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups",
        sys.executable, "-c", code,
    ]  # fmt: skip
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.slow  # a subprocess or a long run: the inner loop skips it
def test_an_entry_one_user_writes_another_user_reads(umask):
    """The teacher (root, umask 022) fills a shared cache; a student (``nobody``) lists it
    before a folder of their own: they read the entry, and their writes go to their folder —
    here the kernel, not the mode bits, is what makes the shared layer read-only for them."""
    if os.geteuid() != 0:
        pytest.skip(f"switching to another user needs root; this test runs as uid {os.geteuid()}")
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed, so the test cannot switch users")
    try:
        student = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("there is no unprivileged user 'nobody' to read as")

    umask(0o022)
    base = Path(tempfile.mkdtemp(prefix="tlearn-class-"))  # not under pytest's 0700 tmp folder
    try:
        base.chmod(0o755)
        shared, own = base / "shared", base / "student"
        own.mkdir()
        os.chown(own, student.pw_uid, student.pw_gid)
        repo = Path(tlearn.__file__).resolve().parents[1]
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": str(repo),
            "HOME": str(own),
            "TLEARN_CACHE": os.pathsep.join([str(shared), str(own)]),
            "TLEARN_DEVICE": "cpu",
            "TLEARN_THREADS": "1",
        }
        probe = _as_user(student, "import tlearn.runtime", env)
        if probe.returncode != 0:
            pytest.skip(
                f"user 'nobody' cannot run {sys.executable} with tlearn from {repo}: "
                f"{probe.stderr.strip().splitlines()[-1:]}"
            )

        with pytest.MonkeyPatch.context() as mp:  # the teacher's run
            mp.setenv("TLEARN_CACHE", str(shared))
            entry = runtime.save_cached("models/net.bin", lambda f: f.write(b"teacher"))
        assert entry == shared / "models" / "net.bin"
        assert _mode(entry) == 0o644 and _mode(shared) == _mode(shared / "models") == 0o755
        before = _snapshot(shared)

        run = _as_user(student, _STUDENT, env)
        assert run.returncode == 0, run.stderr
        seen = json.loads(run.stdout.strip().splitlines()[-1])
        assert seen == {
            "read": "teacher",
            "found": str(entry),
            "cache_dir": str(own),
            "saved": str(own / "models" / "mine.bin"),
        }
        assert (own / "models" / "mine.bin").stat().st_uid == student.pw_uid
        assert _snapshot(shared) == before
    finally:
        shutil.rmtree(base)
