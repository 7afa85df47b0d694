"""Helpers for the real-browser notebook test (``tests/test_browser.py``).

They start a throw-away JupyterLab server on 127.0.0.1 (random free port, a token, every
``JUPYTER_*`` folder inside a temporary directory), and drive Debian's Chromium through
Playwright's sync API: open a notebook, run all cells from the *Run* menu, wait for the
kernel to settle, look for ipywidgets controls and plotly figures with points in the DOM,
move a slider with the keyboard and check that a figure re-rendered, and save screenshots.

Playwright's own browser download cannot work on the machines this kit targets, so the
browser is always the system Chromium, passed as ``executable_path``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # playwright is optional: the test skips without it
    from playwright.sync_api import Browser, ConsoleMessage, Locator, Page

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts" / "browser"

#: Flags that let Debian's Chromium run headless as root on a machine with a closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]

#: JupyterLab user settings for the test: no news/update toasts over the notebook.
LAB_SETTINGS: dict[str, dict[str, Any]] = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}

#: The *Run* menu entry that runs the whole notebook (command ``runmenu:run-all``).
RUN_ALL_LABEL = re.compile(r"^\s*Run All Cells\s*$")

#: JavaScript: a fingerprint of every plotly figure on the page (what it draws and holds).
#: ``_fullData`` holds decoded arrays; plotly >= 6 sends numpy arrays base64-encoded, so
#: ``gd.data`` may hold ``{dtype, bdata}`` objects instead of numbers.
_PLOT_SIGNATURES_JS = """
() => Array.from(document.querySelectorAll('.js-plotly-plot')).map((gd) => {
    const svg = Array.from(gd.querySelectorAll('svg.main-svg'))
        .map((s) => s.innerHTML).join('');
    let data = '';
    try {
        data = JSON.stringify((gd._fullData || gd.data || []).map((t) => [
            t.type, t.x && Array.from(t.x), t.y && Array.from(t.y),
            t.z && Array.from(t.z, (r) => (r && r.length !== undefined ? Array.from(r) : r)),
            t.marker && t.marker.color && Array.from([].concat(t.marker.color)),
        ]));
    } catch (e) { data = String(e); }
    return svg + '|' + data;
})
"""

#: JavaScript: what each plotly figure shows: points, traces, canvases, heatmap images.
_PLOT_STATS_JS = """
() => Array.from(document.querySelectorAll('.js-plotly-plot')).map((gd) => {
    const box = gd.getBoundingClientRect();
    return {
        width: box.width, height: box.height,
        ntraces: (gd._fullData || gd.data || []).length,
        points: gd.querySelectorAll('.scatterlayer .point').length,
        traces: gd.querySelectorAll('.trace').length,
        paths: gd.querySelectorAll('.scatterlayer .trace path.js-line, .barlayer path').length,
        canvases: gd.querySelectorAll('canvas').length,
        images: gd.querySelectorAll('.heatmaplayer image, .imagelayer image, image').length,
        datapoints: (gd._fullData || gd.data || []).reduce((n, t) => n + ((t.x && t.x.length)
            || (t.z && t.z.length) || (t.values && t.values.length) || 0), 0),
    };
})
"""


def browser_skip_reason() -> str | None:
    """Why the browser test cannot run here (no playwright / no chromium), or ``None``."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed (pip install playwright)"
    if chromium_path() is None:
        return "no chromium executable found (Debian: apt-get install chromium; ./dev test does)"
    return None


def chromium_path() -> str | None:
    """The system Chromium: ``$DML_KIT_CHROMIUM``, else ``chromium`` on PATH or usual spots."""
    env = os.environ.get("DML_KIT_CHROMIUM")
    if env and Path(env).is_file():
        return env
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    for candidate in ("/usr/bin/chromium", "/usr/lib/chromium/chromium"):
        if Path(candidate).is_file():
            return candidate
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def copy_notebooks(src: Path, dst: Path) -> Path:
    """Copy the ``notebooks/`` folder to ``dst`` (no checkpoints, caches) and return ``dst``."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(
        ".ipynb_checkpoints", "__pycache__", "*.pyc"))
    return dst


def save_notebook(cells: list[Any], path: Path) -> Path:
    """Write ``cells`` (nbformat v4 cells) as a python3 notebook at ``path``: what every
    browser test's own small notebook goes through."""
    import nbformat

    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def write_demo_notebook(path: Path) -> Path:
    """Write a small notebook with an IntSlider driving a plotly FigureWidget scatter.

    It is the harness's own proof: if this one does not render and react in the browser,
    the failure is in the test set-up, not in a course notebook.
    """
    import nbformat

    cells = [
        nbformat.v4.new_markdown_cell("# Browser harness check\nA slider moves a scatter."),
        nbformat.v4.new_code_cell(
            "import numpy as np\n"
            "import ipywidgets as widgets\n"
            "import plotly.graph_objects as go\n"
            "rng = np.random.default_rng(0)\n"
            "base = rng.normal(size=(40, 2))"
        ),
        nbformat.v4.new_code_cell(
            "slider = widgets.IntSlider(value=1, min=1, max=10, description='spread')\n"
            "fig = go.FigureWidget(data=[go.Scatter(x=base[:, 0], y=base[:, 1],\n"
            "                                       mode='markers')],\n"
            "                      layout=dict(width=480, height=360,\n"
            "                                  margin=dict(l=30, r=10, t=30, b=30),\n"
            "                                  title='spread = 1'))\n"
            "\n"
            "def redraw(change):\n"
            "    s = change['new']\n"
            "    with fig.batch_update():\n"
            "        fig.data[0].x = base[:, 0] * s\n"
            "        fig.data[0].y = base[:, 1] * s\n"
            "        fig.layout.title.text = f'spread = {s}'\n"
            "\n"
            "slider.observe(redraw, names='value')\n"
            "widgets.VBox([slider, fig])"
        ),
        nbformat.v4.new_code_cell("print('done', slider.value)"),
    ]
    return save_notebook(cells, path)


@dataclass
class LabServer:
    """A JupyterLab server on 127.0.0.1 serving ``root``, with its state under ``home``."""

    root: Path
    home: Path
    port: int = field(default_factory=free_port)
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        """The server's combined stdout/stderr."""
        return self.home / "jupyter-lab.log"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def url(self, notebook: str) -> str:
        """The address that opens ``notebook`` (relative to the root) in JupyterLab, in a
        reset workspace (so tabs of an earlier test do not come back and hide it)."""
        return f"{self.base_url}/lab/tree/{notebook}?reset&token={self.token}"

    def environment(self) -> dict[str, str]:
        """The server's environment: every Jupyter folder isolated, fast notebooks."""
        env = dict(os.environ)
        dirs = {
            "JUPYTER_CONFIG_DIR": "config", "JUPYTER_DATA_DIR": "data",
            "JUPYTER_RUNTIME_DIR": "runtime", "JUPYTERLAB_SETTINGS_DIR": "lab-settings",
            "JUPYTERLAB_WORKSPACES_DIR": "lab-workspaces", "IPYTHONDIR": "ipython",
        }
        for var, sub in dirs.items():
            (self.home / sub).mkdir(parents=True, exist_ok=True)
            env[var] = str(self.home / sub)
        env["JUPYTER_PLATFORM_DIRS"] = "1"
        env["DML_KIT_FAST"] = "1"
        env.pop("MPLBACKEND", None)  # the kernel picks its inline backend
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _write_settings(self) -> None:
        for rel, values in LAB_SETTINGS.items():
            target = self.home / "lab-settings" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(values, indent=2))

    def start(self, timeout: float = 90.0) -> None:
        """Start the server and wait until its REST API answers."""
        self.home.mkdir(parents=True, exist_ok=True)
        env = self.environment()
        self._write_settings()
        cmd = [
            sys.executable, "-m", "jupyterlab",
            "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
            "--ServerApp.open_browser=False",
            "--LabApp.expose_app_in_browser=True",
            "--LabApp.news_url=",
            "--ServerApp.terminals_enabled=False",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")  # CI containers run as root
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(cmd, cwd=self.root, env=env, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        status = f"{self.base_url}/api/status?token={self.token}"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.proc.returncode}:\n"
                                   + self.log_tail())
            try:
                with urllib.request.urlopen(status, timeout=5) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        raise TimeoutError(f"jupyter lab did not answer within {timeout:.0f} s:\n"
                           + self.log_tail())

    def stop(self) -> None:
        """Shut the server (and its kernels) down; kill it if it does not go in time."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:  # the API shutdown also ends the kernels the server started
            req = urllib.request.Request(f"{self.base_url}/api/shutdown?token={self.token}",
                                         method="POST")
            urllib.request.urlopen(req, timeout=5).close()
            self.proc.wait(timeout=15)
        except (urllib.error.URLError, OSError, subprocess.TimeoutExpired):
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the server log."""
        return file_tail(self.log_path, lines, missing="(no jupyter lab log)")


@contextmanager
def running_lab(root: Path, home: Path) -> Iterator[LabServer]:
    """A started :class:`LabServer`, stopped on exit."""
    lab = LabServer(root=root, home=home)
    try:
        lab.start()
        yield lab
    finally:
        lab.stop()


def file_tail(path: Path, lines: int = 40, *, missing: str = "(no log)") -> str:
    """The last ``lines`` lines of a server's log file, or ``missing`` if it cannot be read."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return missing
    return "\n".join(text.splitlines()[-lines:])


@contextmanager
def explained_failure(page_session: Any, what: str) -> Iterator[None]:
    """Turn any exception in the block into an AssertionError that says ``what`` failed,
    with ``page_session.diagnostics()``, after a best-effort "failure" screenshot (the
    page may be gone). ``page_session`` is a NotebookSession or a Voila app session."""
    try:
        yield
    except Exception as exc:
        try:
            page_session.screenshot("failure")
        except Exception:  # noqa: BLE001 - the page may be gone
            pass
        raise AssertionError(f"{what}: {type(exc).__name__}: {exc}"
                             + page_session.diagnostics()) from exc


@contextmanager
def chromium_browser() -> Iterator[Browser]:
    """Headless Debian Chromium driven by Playwright.

    ``launch`` gives every browser a fresh, empty profile in a temporary folder of its own
    (Playwright refuses an explicit ``--user-data-dir`` here).
    """
    from playwright.sync_api import sync_playwright

    exe = chromium_path()
    assert exe is not None, browser_skip_reason()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class NotebookSession:
    """One notebook open in JupyterLab in a Playwright page, with its console recorded."""

    def __init__(self, page: Page, lab: LabServer, name: str, label: str) -> None:
        self.page = page
        self.lab = lab
        self.name = name
        self.label = label
        self.console: list[str] = []
        self.shots: list[Path] = []
        self.steps: list[str] = []
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self.console.append(f"[pageerror] {exc}"))

    def _on_console(self, msg: ConsoleMessage) -> None:
        self.console.append(f"[{msg.type}] {msg.text}")

    def log(self, text: str) -> None:
        """Record a step (printed by the test, quoted on failure)."""
        self.steps.append(text)
        print(f"[browser:{self.label}] {text}", flush=True)

    # --- opening and running -------------------------------------------------------------
    def open(self, timeout: float = 90.0) -> None:
        """Load JupyterLab on the notebook and wait for its kernel to be ready."""
        self.page.goto(self.lab.url(self.name), wait_until="domcontentloaded",
                       timeout=timeout * 1000)
        self.page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell",
                                    timeout=timeout * 1000)
        self._dismiss_kernel_dialog()
        self.wait_kernel_idle(timeout)
        self.log("notebook open, kernel idle")

    def _dismiss_kernel_dialog(self) -> None:
        """Accept JupyterLab's "Select Kernel" dialog when the notebook names no kernel."""
        dialog = self.page.locator(".jp-Dialog")
        try:
            dialog.wait_for(state="visible", timeout=2000)
        except Exception:  # noqa: BLE001 - no dialog is the usual case
            return
        self.log("dismissing a dialog: " + dialog.inner_text()[:200].replace("\n", " "))
        self.page.locator(".jp-Dialog .jp-mod-accept").first.click()

    def kernel_status(self) -> str:
        """The notebook's kernel status as JupyterLab knows it ("idle", "busy", ...)."""
        status = self.page.evaluate(
            """() => {
                const app = window.jupyterapp;
                const w = app && app.shell.currentWidget;
                const k = w && w.sessionContext && w.sessionContext.session
                    && w.sessionContext.session.kernel;
                return k ? k.status : 'none';
            }"""
        )
        return str(status)

    def wait_kernel_idle(self, timeout: float) -> None:
        """Wait until the kernel reports "idle" twice in a row, one second apart."""
        deadline = time.monotonic() + timeout
        idle_seen = 0
        while time.monotonic() < deadline:
            idle_seen = idle_seen + 1 if self.kernel_status() == "idle" else 0
            if idle_seen >= 2:
                return
            time.sleep(1.0)
        raise TimeoutError(f"kernel not idle after {timeout:.0f} s "
                           f"(status {self.kernel_status()!r})")

    def prompts(self) -> list[str]:
        """The input prompts of the code cells ("[3]", "[*]", "[ ]"), read from the notebook
        model: JupyterLab 4 windows long notebooks, so off-screen prompts are not in the
        DOM's rendered text."""
        prompts = self.page.evaluate(
            """() => {
                const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
                const cells = w && w.content && w.content.model ? w.content.model.cells : [];
                const out = [];
                for (let i = 0; i < cells.length; i++) {
                    const c = cells.get(i);
                    if (c.type !== 'code') continue;
                    if (c.executionState === 'running') { out.push('[*]'); continue; }
                    const n = c.executionCount;
                    out.push(n === null || n === undefined ? '[ ]' : '[' + n + ']');
                }
                return out;
            }"""
        )
        return [str(p) for p in prompts]

    def run_all(self, timeout: float) -> float:
        """Run all cells from the *Run* menu and wait until every code cell has run.

        Returns the seconds it took. Fails if a cell raised (Run All stops there).
        """
        start = time.monotonic()
        self.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook").first.click(
            position={"x": 5, "y": 5})
        try:
            self.page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            item = self.page.locator(".lm-Menu .lm-Menu-item").filter(
                has=self.page.locator(".lm-Menu-itemLabel", has_text=RUN_ALL_LABEL)).first
            item.wait_for(state="visible", timeout=10000)
            item.click()
            self.log("Run > Run All Cells clicked")
        except Exception as exc:  # noqa: BLE001 - fall back on the command itself
            self.log(f"menu failed ({type(exc).__name__}); running the command directly")
            self.page.keyboard.press("Escape")
            self.page.evaluate(
                "() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        deadline = start + timeout
        n_code = self.page.locator(".jp-CodeCell").count()
        time.sleep(1.0)
        while time.monotonic() < deadline:
            prompts = self.prompts()
            busy = any("*" in p for p in prompts)
            if not busy and self.kernel_status() == "idle":
                time.sleep(1.0)  # let the last outputs and widget views attach
                prompts = self.prompts()
                if not any("*" in p for p in prompts) and self.kernel_status() == "idle":
                    break
            time.sleep(1.0)
        else:
            raise TimeoutError(f"cells still running after {timeout:.0f} s: {self.prompts()}")
        elapsed = time.monotonic() - start
        unrun = [i for i, p in enumerate(self.prompts()) if not any(c.isdigit() for c in p)]
        errors = self.error_outputs()
        assert not errors and not unrun, (
            f"{self.name}: {len(unrun)} of {n_code} code cells did not run "
            f"(first unrun cell index {unrun[:1]}); errors:\n" + "\n---\n".join(errors))
        self.log(f"ran {n_code} code cells in {elapsed:.1f} s")
        return elapsed

    def error_outputs(self) -> list[str]:
        """The text of every traceback shown in the notebook."""
        texts = self.page.locator(
            ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
        ).all_inner_texts()
        return [t[-1500:] for t in texts if "Traceback" in t or "Error" in t.split("\n")[0]]

    # --- what rendered -------------------------------------------------------------------
    def widget_counts(self) -> dict[str, int]:
        """How many ipywidgets views of each kind the page shows."""
        sel = {
            "widgets": ".jupyter-widgets",
            "sliders": ".widget-slider",
            "dropdowns": ".widget-dropdown",
            "buttons": ".jupyter-widgets.jupyter-button, .widget-button",
            "widget_errors": ".jupyter-widgets .jp-RenderedText, .widget-error",
        }
        return {k: self.page.locator(v).count() for k, v in sel.items()}

    def plot_stats(self) -> list[dict[str, float]]:
        """Per plotly figure: size, SVG points, traces, canvases, images, data points."""
        return list(self.page.evaluate(_PLOT_STATS_JS))

    def plot_signatures(self) -> list[str]:
        """A short hash per plotly figure of what it draws and the data it holds."""
        raw = self.page.evaluate(_PLOT_SIGNATURES_JS)
        return [hashlib.sha1(s.encode()).hexdigest()[:12] for s in raw]

    def blank_figures(self) -> list[int]:
        """Indices of visible plotly figures that hold no trace at all (drawn empty).

        A FigureWidget whose view was created before its data reached the browser stays
        an empty 700 x 360 grid; a hidden one (in a closed Tab) has zero size and is fine.
        """
        return [i for i, st in enumerate(self.plot_stats())
                if st["width"] > 0 and st["height"] > 0 and not st["ntraces"]]

    @staticmethod
    def plot_has_marks(stats: dict[str, float]) -> bool:
        """Whether one figure drew something with data in it."""
        drawn = stats["points"] or stats["paths"] or stats["canvases"] or stats["images"]
        return bool(stats["width"] > 0 and stats["height"] > 0 and drawn
                    and stats["datapoints"] > 0)

    def wait_for_render(self, timeout: float) -> tuple[dict[str, int], list[dict[str, float]]]:
        """Wait until at least one widget control and one plotly figure with marks show.

        Scrolls through the notebook so that lazily rendered cells get drawn.
        """
        deadline = time.monotonic() + timeout
        widgets: dict[str, int] = {}
        stats: list[dict[str, float]] = []
        while time.monotonic() < deadline:
            self.scroll_through()
            widgets = self.widget_counts()
            stats = self.plot_stats()
            if widgets["widgets"] and any(self.plot_has_marks(s) for s in stats):
                return widgets, stats
            time.sleep(2.0)
        raise AssertionError(f"no rendered widget + plot within {timeout:.0f} s: "
                             f"widgets {widgets}, plots {stats}")

    def scroll_through(self) -> None:
        """Scroll each output area into view once (JupyterLab renders lazily)."""
        outputs = self.page.locator(".jp-Cell .jp-OutputArea-output")
        for i in range(outputs.count()):
            try:
                outputs.nth(i).scroll_into_view_if_needed(timeout=2000)
            except Exception:  # noqa: BLE001 - a detached output is fine to skip
                continue

    # --- interaction ---------------------------------------------------------------------
    def sliders(self) -> Locator:
        """The visible ipywidgets slider handles."""
        return self.page.locator(".widget-slider .slider-container .noUi-handle")

    def move_slider_until_replot(self, wait_each: float, max_sliders: int = 6
                                 ) -> tuple[int, list[str], list[str]]:
        """Press ArrowRight on slider handles, one after another, until a figure changes.

        Returns (slider index, signatures before, after). Raises when none changes a plot.
        """
        handles = self.sliders()
        count = handles.count()
        assert count, "no ipywidgets slider handle (.noUi-handle) on the page"
        tried: list[str] = []
        for i in range(min(count, max_sliders)):
            handle = handles.nth(i)
            if not handle.is_visible():
                continue
            handle.scroll_into_view_if_needed(timeout=5000)
            before = self.plot_signatures()
            readout_sel = ".widget-readout"
            slider = self.page.locator(".widget-slider").nth(i)
            value_before = _first_text(slider.locator(readout_sel))
            handle.focus()
            handle.press("ArrowRight")
            if _first_text(slider.locator(readout_sel)) == value_before:
                handle.press("ArrowLeft")  # at its maximum: go the other way
                handle.press("ArrowLeft")
            value_after = _first_text(slider.locator(readout_sel))
            tried.append(f"slider {i}: {value_before!r} -> {value_after!r}")
            if _wait_until(lambda b=before: self.plot_signatures() != b, wait_each):
                self.wait_kernel_idle(60)
                after = self.plot_signatures()
                changed = sum(a != b for a, b in zip(after, before, strict=False))
                self.log(f"slider {i} moved {value_before!r} -> {value_after!r}; "
                         f"figures changed: {changed}")
                return i, before, after
        raise AssertionError("moving sliders re-rendered no plotly figure; tried "
                             + "; ".join(tried))

    # --- evidence ------------------------------------------------------------------------
    def screenshot(self, tag: str, focus: Locator | None = None) -> Path:
        """A full-page PNG in ``test-artifacts/browser/``, with ``focus`` scrolled into view."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        if focus is not None:
            try:
                focus.scroll_into_view_if_needed(timeout=3000)
            except Exception:  # noqa: BLE001 - a shot without scrolling still helps
                pass
        path = ARTIFACTS / f"{self.label}-{tag}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.shots.append(path)
        print(f"[browser:{self.label}] screenshot {path}", flush=True)
        return path

    def diagnostics(self) -> str:
        """Steps taken, browser console and server log tail, for an assertion message."""
        console = "\n".join(self.console[-60:]) or "(empty)"
        return ("\n--- steps ---\n" + "\n".join(self.steps)
                + f"\n--- browser console (last 60) ---\n{console}"
                + f"\n--- jupyter lab log (tail) ---\n{self.lab.log_tail()}"
                + "\n--- screenshots ---\n" + "\n".join(map(str, self.shots)))


def _first_text(loc: Locator) -> str:
    """The text (or input value) of the first match, or "" when none."""
    if not loc.count():
        return ""
    el = loc.first
    tag = el.evaluate("(e) => e.tagName")
    return el.input_value() if tag in ("INPUT", "TEXTAREA") else el.inner_text()


def _wait_until(check: Callable[[], bool], timeout: float, every: float = 0.5) -> bool:
    """Poll ``check`` until it is true (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(every)
    return False


def shutdown_kernels(lab: LabServer) -> None:
    """Shut down every kernel the server runs (between notebooks, to free CPU and memory)."""
    base = f"{lab.base_url}/api/kernels"
    try:
        with urllib.request.urlopen(f"{base}?token={lab.token}", timeout=10) as reply:
            kernels = json.load(reply)
        for kernel in kernels:
            req = urllib.request.Request(f"{base}/{kernel['id']}?token={lab.token}",
                                         method="DELETE")
            urllib.request.urlopen(req, timeout=20).close()
    except (urllib.error.URLError, OSError, ValueError):
        pass


# --- the course test's page checks (tests/test_browser_course.py) ---------------------------

#: The output of a cell that shows an ipywidget (a panel, a FigureWidget, a progress bar):
#: JupyterLab marks widget views with ``jupyter-widgets`` (the output has no mime attribute).
WIDGET_OUTPUT = ".jp-Cell .jp-OutputArea-output:has(.jupyter-widgets)"

#: JavaScript: like ``_PLOT_SIGNATURES_JS``, for the plotly figures under one element.
_ROOT_SIGNATURES_JS = _PLOT_SIGNATURES_JS.replace(
    "() => Array.from(document.querySelectorAll", "(root) => Array.from(root.querySelectorAll")

#: JavaScript: per plotly figure under ``root``, its visible class traces: scatter traces
#: drawn as markers only (no lines), visible, holding points, not transparent, one colour
#: each (a per-point colour array is not a class trace), listed in the legend under a name
#: of their own (a helper mark such as a slider's position, unnamed and out of the legend,
#: is not a class). Colours are normalised by a canvas context ("#rrggbb", or
#: "rgba(r, g, b, a)" when translucent).
_CLASS_COLOURS_JS = """
(root) => {
    const ctx = document.createElement('canvas').getContext('2d');
    const norm = (c) => { ctx.fillStyle = '#000000'; ctx.fillStyle = c; return ctx.fillStyle; };
    const opaque = (v) => (typeof v === 'number' ? v > 0 : true);
    return Array.from(root.querySelectorAll('.js-plotly-plot')).map((gd) => {
        const box = gd.getBoundingClientRect();
        const layout = gd._fullLayout || {};
        const title = (layout.title && layout.title.text) || '';
        const traces = (gd._fullData || []).filter((t) =>
            (t.type === 'scatter' || t.type === 'scattergl') && t.visible === true
            && typeof t.mode === 'string' && t.mode.includes('markers')
            && !t.mode.includes('lines') && t.marker && typeof t.marker.color === 'string'
            && opaque(t.opacity) && opaque(t.marker.opacity) && t.x && t.x.length > 0
            && t.showlegend !== false && t._input && t._input.name !== undefined
        ).map((t) => ({name: String(t.name === undefined ? '' : t.name),
                       group: String(t.legendgroup || t.name || ''),
                       color: norm(t.marker.color), points: t.x.length}));
        return {title: String(title), shown: box.width > 0 && box.height > 0, traces};
    });
}
"""

#: JavaScript: per plotly figure under ``root``: the images its image traces draw (the
#: ``href`` of each ``<image>`` in the trace layer), the ``source`` of its image traces as
#: the browser's copy of the figure holds them, its ``layout.meta`` and title.
_IMAGES_JS = """
(root) => Array.from(root.querySelectorAll('.js-plotly-plot')).map((gd) => {
    const XLINK = 'http://www.w3.org/1999/xlink';
    const drawn = Array.from(gd.querySelectorAll('.imagelayer image')).map((im) =>
        im.getAttribute('href') || im.getAttributeNS(XLINK, 'href') || '');
    const held = (gd.data || []).filter((t) => t.type === 'image').map((t) => t.source || '');
    const layout = gd._fullLayout || {};
    return {drawn, held, meta: layout.meta || null,
            title: String((layout.title && layout.title.text) || '')};
})
"""

#: JavaScript: evaluate a Python expression in the notebook's kernel, out of band (a
#: silent execute request with a ``user_expressions`` entry: nothing shows in the
#: notebook, no execution count is used). Resolves to the expression's ``text/plain``.
_KERNEL_EXPRESSION_JS = """
async (expression) => {
    const w = window.jupyterapp.shell.currentWidget;
    const kernel = w.sessionContext.session.kernel;
    const future = kernel.requestExecute({code: '', silent: true, store_history: false,
                                          user_expressions: {r: expression}});
    const reply = await future.done;
    const r = reply.content.user_expressions.r;
    if (r.status !== 'ok') { return 'ERROR ' + r.ename + ': ' + r.evalue; }
    return r.data['text/plain'];
}
"""

#: Python (one expression, run in the kernel): the sha1 of the ``source`` of every image
#: trace that a live plotly FigureWidget holds, as a JSON list.
KERNEL_IMAGE_SOURCES = (
    "__import__('json').dumps(sorted({__import__('hashlib').sha1(t.source.encode())"
    ".hexdigest() for w in list(__import__('ipywidgets').widgets.widget._instances.values())"
    " if type(w).__name__ == 'FigureWidget' for t in w.data"
    " if t.type == 'image' and t.source}))")


def root_signatures(root: Locator) -> list[str]:
    """A short hash per plotly figure under ``root`` (see ``_PLOT_SIGNATURES_JS``)."""
    return [hashlib.sha1(s.encode()).hexdigest()[:12]
            for s in root.evaluate(_ROOT_SIGNATURES_JS)]


def class_colours(root: Locator) -> list[dict[str, Any]]:
    """Per plotly figure under ``root``: ``title``, ``shown`` and its visible class
    ``traces`` (``name``, ``group``, ``color``, ``points``); see ``_CLASS_COLOURS_JS``."""
    return list(root.evaluate(_CLASS_COLOURS_JS))


def figure_images(root: Locator) -> list[dict[str, Any]]:
    """Per plotly figure under ``root``: ``drawn`` (image hrefs in the DOM), ``held``
    (image-trace sources of the browser's figure), ``meta`` and ``title``."""
    return list(root.evaluate(_IMAGES_JS))


def parse_colour(text: str) -> tuple[float, float, float]:
    """``"#rrggbb"``, ``"#rgb"``, ``"rgb(r, g, b)"`` or ``"rgba(r, g, b, a)"`` -> (r, g, b)
    in 0..255 (alpha dropped)."""
    s = text.strip().lower()
    if s.startswith("#"):
        h = s[1:]
        if len(h) == 3:
            h = "".join(c * 2 for c in h)
        if len(h) not in (6, 8):
            raise ValueError(f"colour {text!r}: expected #rgb or #rrggbb")
        return (float(int(h[0:2], 16)), float(int(h[2:4], 16)), float(int(h[4:6], 16)))
    match = re.fullmatch(r"rgba?\(([^)]*)\)", s)
    if not match:
        raise ValueError(f"colour {text!r}: expected #rrggbb, rgb(...) or rgba(...)")
    parts = [float(p) for p in match.group(1).replace("/", ",").replace(" ", ",").split(",")
             if p]
    if len(parts) < 3:
        raise ValueError(f"colour {text!r}: fewer than three channels")
    return parts[0], parts[1], parts[2]


def srgb_to_lab(rgb: tuple[float, float, float]) -> tuple[float, float, float]:
    """CIE L*a*b* (D65) of an sRGB colour given in 0..255."""
    lin = []
    for v in rgb:
        c = v / 255.0
        lin.append(((c + 0.055) / 1.055) ** 2.4 if c > 0.04045 else c / 12.92)
    r, g, b = lin
    xyz = (0.4124 * r + 0.3576 * g + 0.1805 * b, 0.2126 * r + 0.7152 * g + 0.0722 * b,
           0.0193 * r + 0.1192 * g + 0.9505 * b)
    white = (0.95047, 1.0, 1.08883)
    f = [(t / w) ** (1 / 3) if t / w > 216 / 24389 else (24389 / 27 * t / w + 16) / 116
         for t, w in zip(xyz, white, strict=True)]
    return 116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])


def delta_e(a: str, b: str) -> float:
    """The CIE76 colour difference (Euclidean distance in L*a*b*) of two CSS colours:
    about 2.3 is just noticeable side by side, 10 and more reads as another colour."""
    la, lb = srgb_to_lab(parse_colour(a)), srgb_to_lab(parse_colour(b))
    return sum((x - y) ** 2 for x, y in zip(la, lb, strict=True)) ** 0.5


def close_class_colours(traces: list[dict[str, Any]], min_delta_e: float
                        ) -> list[tuple[str, str, float]]:
    """Pairs of *different* classes whose colours differ by less than ``min_delta_e``
    (CIE76): ``(class a, class b, delta E)``, closest first. Traces of one class (the same
    legend group, e.g. its queries and its support drawn apart) count once."""
    colour_of: dict[str, str] = {}
    for t in traces:
        colour_of.setdefault(t["group"], t["color"])
    groups = sorted(colour_of)
    close = []
    for i, a in enumerate(groups):
        for b in groups[:i]:
            d = delta_e(colour_of[a], colour_of[b])
            if d < min_delta_e:
                close.append((b, a, round(d, 1)))
    return sorted(close, key=lambda c: c[2])


def png_size(data_uri: str) -> tuple[int, int] | None:
    """``(width, height)`` of a ``data:image/png;base64,...`` URI read from its IHDR chunk,
    or ``None`` when it is not a base64 PNG."""
    import base64

    head, _, body = data_uri.partition(",")
    if not head.startswith("data:image/png") or ";base64" not in head:
        return None
    raw = base64.b64decode(body[:64] + "=" * (-len(body[:64]) % 4))
    if raw[:8] != b"\x89PNG\r\n\x1a\n" or raw[12:16] != b"IHDR":
        return None
    return int.from_bytes(raw[16:20], "big"), int.from_bytes(raw[20:24], "big")


def short_hash(text: str) -> str:
    """The sha1 hex digest of ``text`` (how images are compared with the kernel's)."""
    return hashlib.sha1(text.encode()).hexdigest()


def kernel_expression(page: Page, expression: str, timeout: float = 60.0) -> str:
    """The ``text/plain`` value of a Python ``expression`` evaluated in the kernel of the
    notebook open in ``page``, out of band (see ``_KERNEL_EXPRESSION_JS``); an error comes
    back as ``"ERROR name: value"``."""
    page.set_default_timeout(timeout * 1000)
    return str(page.evaluate(_KERNEL_EXPRESSION_JS, expression))


def console_errors(lines: list[str], ignore: tuple[str, ...] = ()) -> list[str]:
    """The recorded console lines of type error and the page errors, except those that
    contain one of ``ignore`` (each a known, explained message)."""
    return [line for line in lines
            if line.startswith(("[error]", "[pageerror]"))
            and not any(part in line for part in ignore)]


# --- Voila: `./dev present NN` (tests/test_browser_course.py) ----------------------------

VOILA_START_TIMEOUT = 300.0  # seconds for ./dev present to listen (it may reinstall the venv)

#: What Voila writes into the page when a cell fails or times out.
VOILA_ERROR_MARKERS = ("Traceback", "There was an error when executing cell",
                       "Cell execution timed out")

#: JavaScript: the height of the tallest scrolling content on the page (pixels).
_CONTENT_HEIGHT_JS = """
() => Math.max(document.documentElement.scrollHeight,
               ...Array.from(document.querySelectorAll('body, body *'))
                   .filter((e) => e.scrollHeight > e.clientHeight + 10)
                   .map((e) => e.scrollHeight + e.getBoundingClientRect().top))
"""


def voila_skip_reason() -> str | None:
    """Why the Voila browser tests cannot run here, or ``None``."""
    import importlib.util

    return browser_skip_reason() or (
        None if importlib.util.find_spec("voila") else
        "voila is not installed (it is in the `dev` and `present` extras of pyproject.toml)")


@dataclass
class VoilaServer:
    """``./dev present <notebook>`` on 127.0.0.1:``port``, state under ``home``."""

    notebook: str
    home: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    token: str = "dml-kit-test-token"

    @property
    def url(self) -> str:
        """The app's address, with the token."""
        return f"http://127.0.0.1:{self.port}/?token={self.token}"

    @property
    def log_path(self) -> Path:
        """The server's combined stdout/stderr."""
        return self.home / "voila.log"

    def start(self) -> None:
        """Run the dev command and wait until its port accepts connections.

        Only a TCP connect: an HTTP GET of the app would start executing the notebook.
        """
        env = dict(os.environ, DML_KIT_FAST="1", PYTHONUNBUFFERED="1",
                   DML_KIT_VOILA_TOKEN=self.token)
        for var, sub in {"JUPYTER_CONFIG_DIR": "config", "JUPYTER_RUNTIME_DIR": "runtime",
                         "IPYTHONDIR": "ipython"}.items():
            (self.home / sub).mkdir(parents=True, exist_ok=True)
            env[var] = str(self.home / sub)
        env.pop("MPLBACKEND", None)
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [str(REPO / "dev"), "present", self.notebook, "--no-browser",
             f"--port={self.port}", "--Voila.port_retries=0"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + VOILA_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"./dev present exited with {self.proc.returncode}:\n"
                                   + self.log_tail())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=2).close()
                return
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"./dev present did not listen within {VOILA_START_TIMEOUT:.0f} "
                           "s:\n" + self.log_tail())

    def stop(self) -> None:
        """End the server's process group, then any kernel it started in a session of its
        own (found by parent pid before the server goes)."""
        import signal

        if self.proc is None or self.proc.poll() is not None:
            return
        children = _child_pids(self.proc.pid)
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the server log."""
        return file_tail(self.log_path, lines, missing="(no voila log)")


def _child_pids(parent: int) -> list[int]:
    """The pids whose parent is ``parent`` (from /proc; empty where there is no /proc)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            pids.append(int(stat.parent.name))
    return pids


def page_wait_until(page: Page, check: Callable[[], bool], timeout: float,
                    every: float = 0.5) -> bool:
    """Poll ``check``; wait through the page, so Playwright delivers its events meanwhile
    (the sync API only runs event handlers inside its own calls)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        page.wait_for_timeout(every * 1000)
    return False


def source_lines(notebook: Path) -> list[str]:
    """Distinctive code lines of the notebook: none of them may show in the app."""
    cells = json.loads(notebook.read_text())["cells"]
    lines = []
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        for line in "".join(cell["source"]).splitlines():
            line = line.strip()
            if len(line) >= 25 and not line.startswith("#") and ("=" in line or "def " in line):
                lines.append(line)
    return lines


class VoilaApp:
    """The Voila page of one notebook in Chromium, with what it logged; screenshots go to
    ``artifacts``."""

    def __init__(self, page: Page, server: VoilaServer, label: str,
                 artifacts: Path = REPO / "test-artifacts" / "voila") -> None:
        self.page, self.server, self.label = page, server, label
        self.artifacts = artifacts
        self.console: list[str] = []
        self.steps: list[str] = []
        self.cells_done: tuple[int, int] = (0, 0)  # (cells executed, cells in the notebook)
        self.cell_errors: list[str] = []  # error outputs Voila sent for executed cells
        page.on("console", lambda msg: self.console.append(f"[{msg.type}] {msg.text}"))
        page.on("pageerror", lambda exc: self.console.append(f"[pageerror] {exc}"))
        page.on("requestfailed", lambda req: self.console.append(
            f"[requestfailed] {req.url[:200]} ({req.failure})"))
        page.on("websocket", self._on_websocket)

    def _on_websocket(self, ws: Any) -> None:
        if "/voila/execution/" in ws.url:
            ws.on("framereceived", self._on_execution_frame)

    def _on_execution_frame(self, payload: str | bytes) -> None:
        try:
            message = json.loads(payload)
        except ValueError:
            return
        if message.get("action") != "execution_result":
            return
        result = message["payload"]
        self.cells_done = (result["cell_index"] + 1, result["total_cell"])
        for output in result.get("output_cell", {}).get("outputs", []):
            if output.get("output_type") == "error":
                self.cell_errors.append(f"cell {result['cell_index']}: {output.get('ename')}: "
                                        f"{output.get('evalue')}")

    def executed(self) -> bool:
        """Whether Voila has sent the result of the notebook's last cell."""
        done, total = self.cells_done
        return total > 0 and done == total

    def log(self, text: str) -> None:
        """Record a step (printed by the test, quoted on failure)."""
        self.steps.append(text)
        print(f"[voila:{self.label}] {text}", flush=True)

    def text(self) -> str:
        """The page's visible text."""
        return str(self.page.evaluate("() => document.body ? document.body.innerText : ''"))

    def plot_stats(self) -> list[dict[str, float]]:
        """Per plotly figure: size, marks and data points (see ``_PLOT_STATS_JS``)."""
        return list(self.page.evaluate(_PLOT_STATS_JS))

    def plot_signatures(self) -> list[str]:
        """A short hash per plotly figure of what it draws and holds."""
        return [hashlib.sha1(s.encode()).hexdigest()[:12]
                for s in self.page.evaluate(_PLOT_SIGNATURES_JS)]

    @staticmethod
    def has_marks(st: dict[str, float]) -> bool:
        """Whether one figure drew something with data in it."""
        drawn = st["points"] or st["paths"] or st["canvases"] or st["images"]
        return bool(st["width"] > 0 and st["height"] > 0 and drawn and st["datapoints"] > 0)

    def widget_counts(self) -> dict[str, int]:
        """How many ipywidgets views of each kind the page shows."""
        sel = {"widgets": ".jupyter-widgets", "sliders": ".widget-slider",
               "dropdowns": ".widget-dropdown", "toggles": ".widget-toggle-buttons",
               "buttons": ".widget-button, .jupyter-button"}
        return {k: self.page.locator(v).count() for k, v in sel.items()}

    def errors(self) -> list[str]:
        """Excerpts of the page around each traceback / Voila error message."""
        text = self.text()
        found = []
        for marker in VOILA_ERROR_MARKERS:
            at = text.find(marker)
            if at >= 0:
                found.append(text[max(0, at - 200):at + 1500])
        return found

    def screenshot(self, tag: str) -> Path:
        """The whole app as one PNG. Voila's page scrolls inside a container, so a
        full-page shot would stop at the viewport: the viewport grows to the content for
        the shot (up to 16,000 px) and shrinks back."""
        self.artifacts.mkdir(parents=True, exist_ok=True)
        path = self.artifacts / f"{self.label}-{tag}.png"
        size = self.page.viewport_size or {"width": 1280, "height": 1400}
        tall = int(self.page.evaluate(_CONTENT_HEIGHT_JS))
        self.page.set_viewport_size({"width": size["width"],
                                     "height": max(size["height"], min(tall, 16000))})
        try:
            self.page.wait_for_timeout(1500)  # plotly relayouts on resize
            self.page.screenshot(path=str(path), full_page=True)
        finally:
            self.page.set_viewport_size(size)
        self.log(f"screenshot {path}")
        return path

    def diagnostics(self) -> str:
        """Steps taken, browser console and server log tail, for an assertion message."""
        return ("\n--- steps ---\n" + "\n".join(self.steps)
                + "\n--- browser console (last 40) ---\n" + "\n".join(self.console[-40:])
                + f"\n--- ./dev present log (tail) ---\n{self.server.log_tail()}")


def voila_interact_slider(app: VoilaApp) -> str:
    """Press ArrowRight on the first slider handle (notebook 06: the norm slider)."""
    handle = app.page.locator(".widget-slider .noUi-handle").first
    handle.scroll_into_view_if_needed(timeout=5000)
    readout = app.page.locator(".widget-slider .widget-readout").first
    before = readout.inner_text() if readout.count() else ""
    handle.focus()
    handle.press("ArrowRight")
    after = readout.inner_text() if readout.count() else ""
    return f"first slider {before!r} -> {after!r}"


def voila_interact_toggle(app: VoilaApp) -> str:
    """Click the unselected option of the first toggle-buttons widget (notebook 05: the
    grid browser's value / error-reduction switch)."""
    option = app.page.locator(
        ".widget-toggle-buttons .widget-toggle-button:not(.mod-active)").first
    option.scroll_into_view_if_needed(timeout=5000)
    label = option.inner_text()
    option.click()
    return f"toggle -> {label!r}"
