"""The lessons with widgets, opened in a real browser as a student opens them.

For each lesson that uses ``tlearn.widgets`` this starts JupyterLab on localhost (a free port,
a token, fresh settings and workspace folders, the lessons copied to a temporary folder),
opens the lesson in headless Chromium driven by Playwright, clicks Run → Run All Cells, waits
for the kernel, and checks what a student would see:

* no cell shows an error (read from the notebook JupyterLab saves, not guessed from colours);
* every widget rendered: nowhere "Loading widget…" or "Error displaying widget";
* moving a slider with the keyboard changes the plot it drives (the image's bytes differ).

It saves a screenshot of the widget after the move in pytest's tmp folder (and to
``benchmarks/results/browser_<lesson>.png`` when ``TLEARN_SAVE_SCREENSHOT=1``).

**Browser.** Debian's ``chromium`` package (``/usr/bin/chromium``, or ``TLEARN_CHROMIUM``) and
the ``playwright`` Python package (in the ``dev`` extras); Playwright's own browser download is
not used. Without either the tests are skipped, saying which is missing. ``.ci/run`` installs
Chromium with apt when it is missing.

**Caches.** JupyterLab's kernels use ``TLEARN_BROWSER_CACHE``, or else the ``TLEARN_CACHE``
pytest was started with, as a student's Run All would (reading and writing it; with neither, a
fresh temporary folder). Warm that cache first (``tlearn warm --lessons 01 03``) and a lesson
takes about a minute here; cold, the kernel trains what the lesson needs (several minutes on 2
cores; ``TLEARN_BROWSER_TIMEOUT`` seconds per lesson, default 1800). In CI (``.ci/run``) it is
``.ci-cache``: what the browser run trains, the lessons' nbval run then reads.

Marked ``slow``: ``pytest -m "not slow"`` skips it; ``pytest tests/test_browser.py`` runs it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LESSONS = ROOT / "lessons"
CHROMIUM = os.environ.get("TLEARN_CHROMIUM", "/usr/bin/chromium")
TIMEOUT = float(os.environ.get("TLEARN_BROWSER_TIMEOUT", "1800"))
# Read now, before tests/conftest.py points TLEARN_CACHE at each test's private folder.
READ_CACHE = os.environ.get("TLEARN_BROWSER_CACHE") or os.environ.get("TLEARN_CACHE") or ""

LOADING = re.compile(r"Loading widget(\.\.\.|…)")
WIDGET_ERROR = "Error displaying widget"


def _code(path: Path) -> list[str]:
    cells = json.loads(path.read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def widget_lessons() -> list[str]:
    """The lessons whose code uses ``widgets.`` (an explorer a student moves)."""
    found = LESSONS.glob("[0-9][0-9]_*.ipynb")
    return sorted(p.name for p in found if any("widgets." in src for src in _code(p)))


def _why_no_browser() -> str | None:
    if not Path(CHROMIUM).is_file():
        return (
            f"no Chromium at {CHROMIUM}: install Debian's package (apt-get install chromium) "
            "or set TLEARN_CHROMIUM"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed: pip install playwright (in the dev extras)"
    return None


NO_BROWSER = _why_no_browser()
needs_browser = pytest.mark.skipif(NO_BROWSER is not None, reason=str(NO_BROWSER))


# --- JupyterLab on localhost -----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A JupyterLab server in its own process group; :meth:`stop` ends it and its kernels."""

    def __init__(self, root: Path, home: Path):
        self.root = root
        self.port = _free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        settings = home / "settings"
        # Render every cell (no windowing) and ask no news questions over the screenshot.
        for name, value in {
            "notebook-extension/tracker": {"windowingMode": "none"},
            "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
        }.items():
            file = settings / "@jupyterlab" / f"{name}.jupyterlab-settings"
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text(json.dumps(value))
        layer = home / "cache"
        env = dict(os.environ)
        env.pop("MPLBACKEND", None)  # the kernel's inline backend, as a student gets it
        env.update(
            TLEARN_CACHE=READ_CACHE or str(layer),
            TLEARN_PROGRESS="0",
            JUPYTER_CONFIG_DIR=str(home / "config"),
            JUPYTER_RUNTIME_DIR=str(home / "runtime"),
            IPYTHONDIR=str(home / "ipython"),
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        )
        self.log = home / "jupyterlab.log"
        cmd = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--allow-root",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={root}",
            f"--LabApp.user_settings_dir={settings}",
            f"--LabApp.workspaces_dir={home / 'workspaces'}",
        ]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def api(self, path: str, method: str = "GET"):
        req = urllib.request.Request(
            f"{self.url}/api/{path}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None

    def wait_ready(self, timeout: float = 180) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited:\n{self.log.read_text()[-3000:]}")
            with contextlib.suppress(OSError, ValueError):
                self.api("status")
                return
            time.sleep(0.5)
        raise TimeoutError(f"JupyterLab did not answer in {timeout} s:\n{self.log.read_text()}")

    def kernel(self, notebook: str) -> dict:
        """The notebook's kernel as the server reports it (``execution_state``,
        ``last_activity``), or ``{}`` while it has none or the server is busy answering."""
        with contextlib.suppress(OSError, ValueError):
            for session in self.api("sessions"):
                if session["path"] == notebook and session.get("kernel"):
                    return session["kernel"]
        return {}

    def stop(self) -> None:
        """Shut the kernels and the server down; whatever is left of the group is killed."""
        with contextlib.suppress(OSError, ValueError):
            for kernel in self.api("kernels"):
                self.api(f"kernels/{kernel['id']}", method="DELETE")
        with contextlib.suppress(OSError):
            self.api("shutdown", method="POST")
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


@pytest.fixture
def lab(tmp_path):
    root = tmp_path / "lessons"
    shutil.copytree(LESSONS, root)
    server = Lab(root, tmp_path / "home")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture
def page(tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage"],
        )
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            yield context.new_page()
        finally:
            browser.close()


# --- what a student does, and what they should see -------------------------------------------

PROMPTS = ".jp-Notebook .jp-CodeCell .jp-InputArea-prompt"
# The SHA-256 of each image's bytes (the src of an ipywidgets Image is a fresh blob: URL on
# every update, so comparing src alone would call an identical redraw a change).
IMAGE_DIGESTS = """async (root) => {
  const out = [];
  for (const img of root.querySelectorAll('img')) {
    try {
      const bytes = await (await fetch(img.src)).arrayBuffer();
      const digest = await crypto.subtle.digest('SHA-256', bytes);
      out.push(Array.from(new Uint8Array(digest), b => b.toString(16).padStart(2, '0')).join(''));
    } catch (e) {
      out.push('unreadable ' + img.src);
    }
  }
  return out;
}"""


def _wait(condition, timeout: float, what: str, poll: float = 1.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _menu(page, menu: str, item: str) -> None:
    """Click ``menu`` in JupyterLab's menu bar, then its entry labelled ``item``."""
    page.locator("#jp-MainMenu .lm-MenuBar-item", has_text=re.compile(f"^{menu}$")).click()
    page.locator(f'.lm-Menu .lm-Menu-item:has(.lm-Menu-itemLabel:text-is("{item}"))').click()


def run_all_as_a_student(page, lab: Lab, notebook: str, timeout: float = TIMEOUT) -> None:
    page.goto(f"{lab.url}/lab/tree/{notebook}?token={lab.token}&reset")
    page.locator(".jp-NotebookPanel .jp-Notebook").first.wait_for(timeout=120_000)

    def idle() -> bool:
        return lab.kernel(notebook).get("execution_state") == "idle"

    _wait(idle, 120, "the kernel to start")
    last = lab.kernel(notebook)["last_activity"]
    _menu(page, "Run", "Run All Cells")

    def running() -> bool:
        return "[*]" in "".join(page.locator(PROMPTS).all_inner_texts())

    # The stored notebook already shows [n]: prompts, so first see the run begin (a cell
    # queued, or the kernel heard from) …
    _wait(lambda: running() or lab.kernel(notebook).get("last_activity") != last, 60, "Run All")
    # … then wait until no cell is queued or running and the kernel is idle, twice in a row.
    quiet = 0

    def finished() -> bool:
        nonlocal quiet
        quiet = 0 if running() or not idle() else quiet + 1
        return quiet >= 2

    _wait(finished, timeout, f"{notebook} to finish", poll=2.0)


def error_outputs(page, lab: Lab, notebook: str) -> list[str]:
    """Save through the menu and read the saved notebook: each error output, summarised."""
    path = lab.root / notebook
    stored = path.stat().st_mtime_ns
    _menu(page, "File", "Save Notebook")
    _wait(lambda: path.stat().st_mtime_ns != stored, 60, "the save")
    time.sleep(1)  # the server writes a temporary file and renames it: let it land
    errors = []
    for i, cell in enumerate(json.loads(path.read_text())["cells"]):
        for out in cell.get("outputs", []):
            if out["output_type"] == "error":
                errors.append(f"cell {i}: {out['ename']}: {out['evalue']}")
    return errors


def unrendered_widgets(page, timeout: float = 60) -> list[str]:
    """Wait for "Loading widget…" to go away; what still loads or failed, by output area."""

    def problems() -> list[str]:
        texts = page.locator(".jp-Notebook .jp-OutputArea-output").all_inner_texts()
        return [t.strip()[:200] for t in texts if LOADING.search(t) or WIDGET_ERROR in t]

    end = time.monotonic() + timeout
    while (found := problems()) and time.monotonic() < end:
        time.sleep(1)
    return found


def slider_moves_its_plot(page, output, timeout: float = 120) -> tuple[str, str]:
    """Move the slider in this output one step with the keyboard; the images must change.

    Returns the slider's readout before and after."""
    readout = output.locator(".widget-readout").first
    handle = output.locator(".noUi-handle").first
    before_images = output.evaluate(IMAGE_DIGESTS)
    assert before_images, "the widget shows no image"
    before = readout.inner_text()
    handle.scroll_into_view_if_needed()
    for key in ("ArrowRight", "ArrowLeft", "ArrowLeft"):  # at the right end, go left
        handle.focus()
        page.keyboard.press(key)
        time.sleep(0.5)
        if readout.inner_text() != before:
            break
    after = readout.inner_text()
    assert after != before, f"the slider did not move with the keyboard (readout {before!r})"
    try:
        _wait(
            lambda: output.evaluate(IMAGE_DIGESTS) != before_images,
            timeout,
            "the plot to change",
        )
    except AssertionError:
        raise AssertionError(
            f"moving the slider from {before} to {after} changed no image of its plot"
        ) from None
    return before, after


def check_in_browser(page, lab: Lab, notebook: str, shot: Path, timeout: float = TIMEOUT):
    """Run ``notebook`` as a student would and assert what they should see. Returns the
    slider moves ``[(widget's first line, readout before, after), …]``."""
    run_all_as_a_student(page, lab, notebook, timeout)
    errors = error_outputs(page, lab, notebook)
    assert not errors, f"{notebook}: cells show errors:\n" + "\n".join(errors)
    broken = unrendered_widgets(page)
    assert not broken, f"{notebook}: widgets not rendered:\n" + "\n".join(broken)
    outputs = page.locator(".jp-Notebook .jp-OutputArea-output").filter(
        has=page.locator(".widget-slider")
    )
    assert outputs.count(), f"{notebook}: no slider rendered"
    moves = []
    for i in range(outputs.count()):
        output = outputs.nth(i)
        before, after = slider_moves_its_plot(page, output)
        moves.append((output.inner_text().splitlines()[0], before, after))
    # Let the redraws finish (the first image changes before the last one is drawn), so the
    # screenshot shows the settled widget: the kernel idle and the images unchanged, twice.
    previous, quiet = None, 0

    def settled() -> bool:
        nonlocal previous, quiet
        idle = lab.kernel(notebook).get("execution_state") == "idle"
        images = [outputs.nth(i).evaluate(IMAGE_DIGESTS) for i in range(outputs.count())]
        quiet = quiet + 1 if idle and images == previous else 0
        previous = images
        return quiet >= 2

    _wait(settled, 120, "the widgets to settle", poll=2.0)
    outputs.last.scroll_into_view_if_needed()
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot))
    return moves


@pytest.mark.parametrize("notebook", widget_lessons())
@pytest.mark.slow
@needs_browser
def test_lesson_in_browser(notebook, lab, page, tmp_path):
    stem = Path(notebook).stem
    shot = tmp_path / f"browser_{stem}.png"
    start = time.monotonic()
    moves = check_in_browser(page, lab, notebook, shot)
    print(f"{notebook}: {time.monotonic() - start:.0f} s, slider moves {moves}, screenshot {shot}")
    if os.environ.get("TLEARN_SAVE_SCREENSHOT") == "1":
        shutil.copyfile(shot, ROOT / "benchmarks" / "results" / shot.name)


# The checks themselves, on three tiny notebooks: a working explorer passes; an explorer whose
# callback raises (the slider moves, the plot stays) and a cell that raises both fail.
EXPLORER = """import io

import ipywidgets as widgets
import matplotlib.pyplot as plt

slider = widgets.IntSlider(value=1, min=0, max=3, description="k", continuous_update=False)
image = widgets.Image(format="png")


def draw(change=None):
    if change is not None and BROKEN:
        raise RuntimeError("a broken callback")
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.bar(range(4), [i == slider.value for i in range(4)])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    image.value = buf.getvalue()


slider.observe(draw, names="value")
draw()
widgets.VBox([slider, image])"""


def _notebook(path: Path, *sources: str) -> str:
    cells = [
        {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": s}
        for s in sources
    ]
    meta = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}}
    path.write_text(
        json.dumps({"cells": cells, "metadata": meta, "nbformat": 4, "nbformat_minor": 5})
    )
    return path.name


@pytest.mark.slow
@needs_browser
def test_browser_checks_fail_on_broken_notebooks(lab, page, tmp_path):
    works = _notebook(lab.root / "works.ipynb", "BROKEN = False", EXPLORER)
    check_in_browser(page, lab, works, tmp_path / "works.png", timeout=300)
    callback = _notebook(lab.root / "callback.ipynb", "BROKEN = True", EXPLORER)
    with pytest.raises(AssertionError, match="changed no image"):
        check_in_browser(page, lab, callback, tmp_path / "callback.png", timeout=300)
    cell = _notebook(lab.root / "cell.ipynb", "BROKEN = False", "1 / 0", EXPLORER)
    with pytest.raises(AssertionError, match="ZeroDivisionError"):
        check_in_browser(page, lab, cell, tmp_path / "cell.png", timeout=300)


def test_widget_lessons_found():
    """The browser test's list is read from the notebooks; it must find the explorers."""
    assert widget_lessons(), "no lesson uses widgets: the browser test would check nothing"
