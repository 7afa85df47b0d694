"""``./dev present NN``: notebooks 05 and 06 served as Voila apps, seen in a real browser.

For each notebook the test starts the command itself (``./dev present NN --no-browser``
on a free port of 127.0.0.1, ``DML_KIT_FAST=1`` so that training is short), opens the app
in headless Debian Chromium through Playwright (see ``tests/browser.py``) and waits until
Voila has executed every cell: with progressive rendering, which ``./dev present`` turns
on, the page gets one ``execution_result`` per cell on its ``/voila/execution/`` websocket,
the last with ``cell_index + 1 == total_cell``. Then it checks that no code is shown, that
ipywidgets controls and a plotly figure with marks rendered, that a control re-renders a
figure through the kernel, and that no traceback or Voila error shows. Screenshots go to
``test-artifacts/voila/``. The server (and the kernel it started) is ended afterwards.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.util
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from browser import (
    _PLOT_SIGNATURES_JS,
    _PLOT_STATS_JS,
    REPO,
    browser_skip_reason,
    chromium_browser,
    explained_failure,
    file_tail,
    free_port,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

ARTIFACTS = REPO / "test-artifacts" / "voila"

SKIP_REASON = browser_skip_reason() or (
    None if importlib.util.find_spec("voila") else
    "voila is not installed (it is in the `dev` and `present` extras of pyproject.toml)")
pytestmark = pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")

START_TIMEOUT = 300.0  # seconds for ./dev present to listen (it may reinstall the venv first)
EXECUTE_TIMEOUT = 480.0  # seconds for Voila to execute a notebook (fast mode, 2 busy cores)
RENDER_TIMEOUT = 90.0  # seconds for widgets and figures to show once the cells are in
REPLOT_WAIT = 60.0  # seconds for a figure to follow a control

#: What Voila writes into the page when a cell fails or times out.
ERROR_MARKERS = ("Traceback", "There was an error when executing cell",
                 "Cell execution timed out")


#: JavaScript: the height of the tallest scrolling content on the page (pixels).
_CONTENT_HEIGHT_JS = """
() => Math.max(document.documentElement.scrollHeight,
               ...Array.from(document.querySelectorAll('body, body *'))
                   .filter((e) => e.scrollHeight > e.clientHeight + 10)
                   .map((e) => e.scrollHeight + e.getBoundingClientRect().top))
"""


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
        return f"http://127.0.0.1:{self.port}/?token={self.token}"

    @property
    def log_path(self) -> Path:
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
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"./dev present exited with {self.proc.returncode}:\n"
                                   + self.log_tail())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=2).close()
                return
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"./dev present did not listen within {START_TIMEOUT:.0f} s:\n"
                           + self.log_tail())

    def stop(self) -> None:
        """End the server's process group, then any kernel it started in a session of its
        own (found by parent pid before the server goes)."""
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


def _wait_until(page: Page, check: Callable[[], bool], timeout: float, every: float = 0.5
                ) -> bool:
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


class App:
    """The Voila page of one notebook in Chromium, with what it logged."""

    def __init__(self, page: Page, server: VoilaServer, label: str) -> None:
        self.page, self.server, self.label = page, server, label
        self.console: list[str] = []
        self.steps: list[str] = []
        self.cells_done: tuple[int, int] = (0, 0)  # (cells executed, cells in the notebook)
        self.cell_errors: list[str] = []  # error outputs Voila sent for executed cells
        page.on("console", lambda msg: self.console.append(f"[{msg.type}] {msg.text}"))
        page.on("pageerror", lambda exc: self.console.append(f"[pageerror] {exc}"))
        page.on("websocket", self._on_websocket)

    def _on_websocket(self, ws) -> None:  # noqa: ANN001 - playwright's WebSocket
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
        self.steps.append(text)
        print(f"[voila:{self.label}] {text}", flush=True)

    def text(self) -> str:
        return str(self.page.evaluate("() => document.body ? document.body.innerText : ''"))

    def plot_stats(self) -> list[dict[str, float]]:
        return list(self.page.evaluate(_PLOT_STATS_JS))

    def plot_signatures(self) -> list[str]:
        return [hashlib.sha1(s.encode()).hexdigest()[:12]
                for s in self.page.evaluate(_PLOT_SIGNATURES_JS)]

    @staticmethod
    def has_marks(st: dict[str, float]) -> bool:
        drawn = st["points"] or st["paths"] or st["canvases"] or st["images"]
        return bool(st["width"] > 0 and st["height"] > 0 and drawn and st["datapoints"] > 0)

    def widget_counts(self) -> dict[str, int]:
        sel = {"widgets": ".jupyter-widgets", "sliders": ".widget-slider",
               "dropdowns": ".widget-dropdown", "toggles": ".widget-toggle-buttons",
               "buttons": ".widget-button, .jupyter-button"}
        return {k: self.page.locator(v).count() for k, v in sel.items()}

    def errors(self) -> list[str]:
        """Excerpts of the page around each traceback / Voila error message."""
        text = self.text()
        found = []
        for marker in ERROR_MARKERS:
            at = text.find(marker)
            if at >= 0:
                found.append(text[max(0, at - 200):at + 1500])
        return found

    def screenshot(self, tag: str) -> Path:
        """The whole app as one PNG. Voila's page scrolls inside a container, so a
        full-page shot would stop at the viewport: the viewport grows to the content for
        the shot (up to 16,000 px) and shrinks back."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self.label}-{tag}.png"
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
        return ("\n--- steps ---\n" + "\n".join(self.steps)
                + "\n--- browser console (last 40) ---\n" + "\n".join(self.console[-40:])
                + f"\n--- ./dev present log (tail) ---\n{self.server.log_tail()}")


def interact_slider(app: App) -> str:
    """Press ArrowRight on the first slider handle (notebook 06: the norm slider)."""
    handle = app.page.locator(".widget-slider .noUi-handle").first
    handle.scroll_into_view_if_needed(timeout=5000)
    readout = app.page.locator(".widget-slider .widget-readout").first
    before = readout.inner_text() if readout.count() else ""
    handle.focus()
    handle.press("ArrowRight")
    after = readout.inner_text() if readout.count() else ""
    return f"first slider {before!r} -> {after!r}"


def interact_toggle(app: App) -> str:
    """Click the unselected option of the first toggle-buttons widget (notebook 05: the
    grid browser's value / error-reduction switch)."""
    option = app.page.locator(
        ".widget-toggle-buttons .widget-toggle-button:not(.mod-active)").first
    option.scroll_into_view_if_needed(timeout=5000)
    label = option.inner_text()
    option.click()
    return f"toggle -> {label!r}"


#: (label, notebook glob, how to drive a control that makes the kernel redraw a figure)
TARGETS = [("05", "05_*.ipynb", interact_toggle), ("06", "06_*.ipynb", interact_slider)]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with chromium_browser() as chromium:
        yield chromium


@pytest.mark.timeout(780)
@pytest.mark.parametrize("label,pattern,interact", TARGETS, ids=[t[0] for t in TARGETS])
def test_present_serves_the_notebook_as_an_app(
        chromium: Browser, tmp_path: Path, label: str, pattern: str,
        interact: Callable[[App], str]) -> None:
    """No code, widgets and a plot with marks, a control re-renders, no traceback."""
    matches = sorted((REPO / "notebooks").glob(pattern))
    if not matches:
        pytest.skip(f"notebooks/{pattern} does not exist")
    server = VoilaServer(notebook=label, home=tmp_path)
    context = chromium.new_context(viewport={"width": 1280, "height": 1400})
    app = App(context.new_page(), server, label=matches[0].stem)
    try:
        with explained_failure(app, f"./dev present {label}"):
            server.start()
            app.log(f"./dev present {label} listening on {server.url}")
            no_token = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            no_token.request("GET", "/")          # without the token: sent to a login page
            answer = no_token.getresponse()
            assert answer.status == 302 and "/login" in (answer.getheader("Location") or "")
            no_token.close()
            start = time.monotonic()
            app.page.goto(server.url, wait_until="domcontentloaded", timeout=120_000)
            assert _wait_until(app.page, app.executed, EXECUTE_TIMEOUT, every=1.0), (
                f"Voila executed {app.cells_done[0]} of {app.cells_done[1]} cells in "
                f"{EXECUTE_TIMEOUT:.0f} s")
            executed = time.monotonic() - start

            def rendered() -> bool:
                counts = app.widget_counts()
                return bool(counts["widgets"]) and any(map(app.has_marks, app.plot_stats()))

            assert _wait_until(app.page, rendered, RENDER_TIMEOUT, every=1.0), (
                f"no widget + plot with marks: {app.widget_counts()}, {app.plot_stats()}")
            app.log(f"executed in {executed:.1f} s, rendered in {time.monotonic() - start:.1f} s;"
                    f" widgets {app.widget_counts()}; {len(app.plot_stats())} plotly figures")
            app.screenshot("1-rendered")

            # (e) no traceback, no Voila error message
            assert not app.cell_errors, app.cell_errors
            assert not app.errors(), "\n---\n".join(app.errors())
            # (a) no code: no input areas or editors, and no code line in the page text
            inputs = app.page.locator(
                ".jp-CodeCell .jp-InputArea, .jp-InputArea-editor, .cm-editor, .CodeMirror")
            assert inputs.count() == 0, f"{inputs.count()} code input elements are shown"
            text = app.text()
            shown = [line for line in source_lines(matches[0]) if line in text]
            assert not shown, f"code is shown in the app: {shown[:3]}"
            # (b) controls
            counts = app.widget_counts()
            assert counts["sliders"] + counts["dropdowns"] + counts["toggles"], counts
            # (c) a figure with marks
            assert any(map(app.has_marks, app.plot_stats())), app.plot_stats()
            # fast mode: a results store, if the notebook shows one, lies outside data/
            if "ResultsStore(" in text:
                assert str(REPO / "data" / "results.sqlite") not in text, \
                    "the app used the repository's results store under DML_KIT_FAST=1"

            # (d) a control goes to the kernel and a figure follows
            before = app.plot_signatures()
            app.log(interact(app))
            assert _wait_until(app.page, lambda: app.plot_signatures() != before, REPLOT_WAIT), \
                "no plotly figure changed after the control moved"
            changed = sum(a != b for a, b in zip(app.plot_signatures(), before, strict=False))
            app.log(f"{changed} figure(s) re-rendered")
            app.page.wait_for_timeout(1000)
            assert not app.errors(), "\n---\n".join(app.errors())
            app.screenshot("2-after-control")
    finally:
        context.close()
        server.stop()
