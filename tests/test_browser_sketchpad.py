"""The sketchpad in a real browser: JupyterLab + headless Chromium via Playwright.

The test writes a small notebook that shows :class:`dml_kit.widgets.Sketchpad` (default
model and task, fast setting) into a temporary folder, runs it, draws on the canvas with
Playwright's mouse (``page.mouse.move/down/up``: real pointer events on the anywidget
canvas), and checks that the displayed prediction (the summary line and the probability
bars) follows: a first drawing gives a prediction, *Clear* resets it, a different second
drawing gives another one. Screenshots go to ``test-artifacts/browser/``. Skips, with the
reason, without playwright or chromium.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from browser import (
    LabServer,
    NotebookSession,
    browser_skip_reason,
    chromium_browser,
    explained_failure,
    running_lab,
    save_notebook,
    shutdown_kernels,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

SKIP_REASON = browser_skip_reason()
pytestmark = pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")

NOTEBOOK = "sketchpad_check.ipynb"
RUN_TIMEOUT = 240.0     # Run All: loads glyphs, trains (or loads) the fast default protonet
RENDER_TIMEOUT = 60.0   # seconds for the canvas and the figures to show
UPDATE_TIMEOUT = 30.0   # seconds for the kernel to answer a stroke

#: two drawings in canvas fractions (0..1): a vertical bar with a foot, and a circle
BAR = [[(0.5, 0.12), (0.5, 0.88)], [(0.3, 0.88), (0.7, 0.88)]]
CIRCLE = [[(0.5 + 0.38 * math.cos(t), 0.5 + 0.38 * math.sin(t))
           for t in [i * 2 * math.pi / 24 for i in range(25)]]]


def write_sketchpad_notebook(path: Path) -> Path:
    """A notebook of two cells: the default sketchpad (5-way 5-shot glyphs task, the
    default protonet) and a line printed when it is ready."""
    import nbformat

    cells = [
        nbformat.v4.new_markdown_cell("# Sketchpad check\nDraw a character on the canvas."),
        nbformat.v4.new_code_cell("import dml_kit as dk\n"
                                  "pad = dk.widgets.Sketchpad()\n"
                                  "pad"),
        nbformat.v4.new_code_cell("print('ready', pad.error, pad.updates)"),
    ]
    return save_notebook(cells, path)


def draw(page: Page, canvas: Locator, strokes: list[list[tuple[float, float]]]) -> None:
    """Draw ``strokes`` (points as fractions of the canvas) with the mouse: press, move
    through the points in small steps (pointermove events), release."""
    canvas.scroll_into_view_if_needed(timeout=5000)
    box = canvas.bounding_box()
    assert box is not None, "the sketchpad canvas has no box on the page"

    def at(p: tuple[float, float]) -> tuple[float, float]:
        return box["x"] + p[0] * box["width"], box["y"] + p[1] * box["height"]

    for stroke in strokes:
        page.mouse.move(*at(stroke[0]))
        page.mouse.down()
        for point in stroke[1:]:
            page.mouse.move(*at(point), steps=4)
        page.mouse.up()
        time.sleep(0.3)


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``check`` every half second; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """JupyterLab serving a temporary folder that holds only the sketchpad notebook."""
    tmp = tmp_path_factory.mktemp("browser_sketchpad")
    write_sketchpad_notebook(tmp / "notebooks" / NOTEBOOK)
    with running_lab(tmp / "notebooks", tmp / "jupyter") as server:
        yield server


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with chromium_browser() as browser:
        yield browser


@pytest.mark.timeout(600)
def test_drawing_with_the_mouse_changes_the_prediction(lab: LabServer,
                                                       chromium: Browser) -> None:
    context = chromium.new_context(viewport={"width": 1280, "height": 1400})
    page = context.new_page()
    session = NotebookSession(page, lab, NOTEBOOK, label="sketchpad")
    summary = page.locator(".dml-sketch-prediction").first
    canvas = page.locator("canvas.dml-sketch-canvas").first

    def prediction() -> str:
        return summary.inner_text().strip() if summary.count() else ""

    try:
        with explained_failure(session, NOTEBOOK):
            session.open()
            session.run_all(RUN_TIMEOUT)
            widgets, plots = session.wait_for_render(RENDER_TIMEOUT)
            session.log(f"widgets {widgets}; plots {plots}")
            canvas.wait_for(state="visible", timeout=RENDER_TIMEOUT * 1000)
            assert not session.blank_figures(), f"blank figures: {session.plot_stats()}"
            assert "Nothing drawn" in prediction(), prediction()
            session.screenshot("1-empty", focus=canvas)

            bars_before = session.plot_signatures()
            draw(page, canvas, BAR)
            wait_for(lambda: "prediction:" in prediction(), UPDATE_TIMEOUT,
                     "a prediction after the first drawing")
            session.wait_kernel_idle(60)
            first = prediction()
            first_plots = session.plot_signatures()
            session.log(f"first drawing: {first!r}")
            assert first_plots != bars_before, "no figure changed after the first drawing"
            session.screenshot("2-bar", focus=canvas)

            page.locator(".widget-button", has_text="Clear").first.click()
            wait_for(lambda: "Nothing drawn" in prediction(), UPDATE_TIMEOUT,
                     "Clear to reset the prediction")

            draw(page, canvas, CIRCLE)
            wait_for(lambda: "prediction:" in prediction(), UPDATE_TIMEOUT,
                     "a prediction after the second drawing")
            session.wait_kernel_idle(60)
            second = prediction()
            session.log(f"second drawing: {second!r}")
            session.screenshot("3-circle", focus=canvas)
            assert second != first, f"the prediction did not change: {first!r}"
            assert session.plot_signatures() != first_plots
            assert not session.error_outputs(), session.error_outputs()
            assert "Error" not in page.locator(".jp-OutputArea").first.inner_text()
    finally:
        context.close()
        shutdown_kernels(lab)
