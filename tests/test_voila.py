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

import http.client
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from browser import (
    REPO,
    VoilaServer,
    chromium_browser,
    explained_failure,
    source_lines,
    voila_interact_slider,
    voila_interact_toggle,
    voila_skip_reason,
)
from browser import VoilaApp as App
from browser import page_wait_until as _wait_until

if TYPE_CHECKING:
    from playwright.sync_api import Browser

SKIP_REASON = voila_skip_reason()
pytestmark = pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")

EXECUTE_TIMEOUT = 480.0  # seconds for Voila to execute a notebook (fast mode, 2 busy cores)
RENDER_TIMEOUT = 90.0  # seconds for widgets and figures to show once the cells are in
REPLOT_WAIT = 60.0  # seconds for a figure to follow a control

interact_slider, interact_toggle = voila_interact_slider, voila_interact_toggle

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
