"""The browser harness itself: JupyterLab + headless Chromium via Playwright.

``browser_harness_check`` is a small notebook written by this test (IntSlider + plotly
FigureWidget in a VBox), opened from a temporary copy of ``notebooks/`` (nothing is
written into the repository): *Run > Run All Cells*, check that the controls and a plotly
figure with points rendered, move a slider with the keyboard and check that the figure
re-rendered. It proves the harness in well under a minute whenever Chromium is present;
the course notebooks themselves (all of 00-08, and 05/06 as Voila apps) are run by
``tests/test_browser_course.py``. Screenshots go to ``test-artifacts/browser/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from browser import (
    REPO,
    LabServer,
    NotebookSession,
    browser_skip_reason,
    chromium_browser,
    copy_notebooks,
    explained_failure,
    running_lab,
    shutdown_kernels,
    write_demo_notebook,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser

SKIP_REASON = browser_skip_reason()
pytestmark = pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")

DEMO = "browser_harness_check.ipynb"
#: (test id, glob in the served folder): the harness's own notebook. The course notebooks
#: ran here too until tests/test_browser_course.py ran all nine with more checks.
TARGETS = [("demo", DEMO)]

RUN_TIMEOUT = 150.0  # seconds for Run All under DML_KIT_FAST=1 on 2 shared cores
RENDER_TIMEOUT = 60.0  # seconds for widgets and figures to show after the run
REPLOT_WAIT = 25.0  # seconds per slider for a figure to change


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """JupyterLab on a temporary copy of notebooks/ plus the harness's own notebook."""
    tmp = tmp_path_factory.mktemp("browser")
    root = copy_notebooks(REPO / "notebooks", tmp / "notebooks")
    write_demo_notebook(root / DEMO)
    with running_lab(root, tmp / "jupyter") as server:
        yield server


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """One headless Chromium for the module, with a fresh profile."""
    with chromium_browser() as chromium:
        yield chromium


def resolve(lab: LabServer, pattern: str) -> str:
    """The notebook name matching ``pattern`` in the served copy, or skip when none."""
    matches = sorted(p.name for p in lab.root.glob(pattern))
    if not matches:
        pytest.skip(f"notebooks/{pattern} does not exist yet")
    return matches[0]


@pytest.mark.timeout(420)
@pytest.mark.parametrize("label,pattern", TARGETS, ids=[t[0] for t in TARGETS])
def test_notebook_renders_and_reacts(lab: LabServer, chromium: Browser, label: str,
                                     pattern: str) -> None:
    """Run all cells; widgets and plots render; moving a slider re-renders a figure."""
    name = resolve(lab, pattern)
    context = chromium.new_context(viewport={"width": 1280, "height": 1400})
    page = context.new_page()
    session = NotebookSession(page, lab, name, label=Path(name).stem)
    try:
        with explained_failure(session, name):
            session.open()
            session.run_all(RUN_TIMEOUT)
            widgets, plots = session.wait_for_render(RENDER_TIMEOUT)
            session.log(f"widgets {widgets}; plots {plots}")
            drawn = [p for p in plots if session.plot_has_marks(p)]
            assert widgets["sliders"] or widgets["dropdowns"], f"no slider/dropdown: {widgets}"
            assert drawn, f"no plotly figure with marks: {plots}"
            blank = session.blank_figures()
            if blank:
                plot = page.locator(".js-plotly-plot").nth(blank[0])
                session.screenshot("blank-figure", focus=plot)
            assert not blank, (f"visible plotly figures {blank} rendered empty (no trace): "
                               "a FigureWidget view created before its data arrived; see "
                               "tests/browser.py NotebookSession.blank_figures")
            first_plot = page.locator(".js-plotly-plot").first
            session.screenshot("1-rendered", focus=first_plot)
            index, before, after = session.move_slider_until_replot(REPLOT_WAIT)
            assert before != after
            assert not session.error_outputs(), session.error_outputs()
            session.screenshot("2-after-slider", focus=page.locator(".widget-slider").nth(index))
    finally:
        context.close()
        shutdown_kernels(lab)
