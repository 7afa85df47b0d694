"""Images where the points are, in a real browser: JupyterLab + headless Chromium.

A small notebook written by this test (into a temporary folder) shows one projection
panel (:class:`dml_kit.widgets.PrototypeExplorer` on the digits' target classes, through
the pixels). Playwright's mouse then hovers a point of the projection: the point
inspector under it must show that point's image and class (the hover travels to the
kernel through the FigureWidget's comm and the answer comes back as an ipywidgets HTML
update); a click on the point must open its nearest neighbours, as images with their
classes and a same-class mark. Skips with the reason when Playwright or Chromium is
missing (see ``tests/browser.py``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    from playwright.sync_api import Browser, Page

SKIP_REASON = browser_skip_reason()
pytestmark = pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")

NOTEBOOK = "hover_inspector_check.ipynb"
RUN_TIMEOUT = 150.0    # seconds for Run All on 2 shared cores
RENDER_TIMEOUT = 60.0  # seconds for the panel to show after the run
REACT_TIMEOUT = 30.0   # seconds for the inspector to answer a hover or a click
K = 4                  # neighbours the panel shows on a click

#: JavaScript: the first projection on the page: its points' screen centres by trace, the
#: trace names and each point's customdata index.
_POINTS_JS = """
() => {
    const gd = document.querySelector('.js-plotly-plot');
    if (!gd || !gd._fullData) return null;
    const traces = Array.from(gd.querySelectorAll('.scatterlayer .trace'));
    return traces.map((tr, ti) => {
        const full = gd._fullData[ti] || {};
        const custom = full.customdata || [];
        return {
            name: full.name,
            points: Array.from(tr.querySelectorAll('.point')).map((p, pi) => {
                const r = p.getBoundingClientRect();
                const cd = custom[pi];
                return {x: r.x + r.width / 2, y: r.y + r.height / 2,
                        index: cd === undefined ? null : (Array.isArray(cd) ? cd[0] : cd)};
            }),
        };
    });
}
"""


def write_hover_notebook(path: Path) -> Path:
    """A notebook with one projection panel (a PrototypeExplorer through the pixels)."""
    import nbformat

    cells = [
        nbformat.v4.new_markdown_cell("# Hover check\nHover a point: its image; click it: "
                                      "its nearest neighbours."),
        nbformat.v4.new_code_cell(
            "import torch\n"
            "from dml_kit import widgets as W\n"
            "target = W.split_cached('digits').target\n"
            "view = W.PrototypeExplorer(target, torch.nn.Flatten(), n_way=3, k_shot=1,\n"
            "                           n_query=5)\n"
            f"view.inspector.k = {K}\n"
            "view.inspector.image_px = 120\n"
            "view"),
        nbformat.v4.new_code_cell("print('ready', view.error)"),
    ]
    return save_notebook(cells, path)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """JupyterLab serving a temporary folder that holds only the hover notebook."""
    tmp = tmp_path_factory.mktemp("browser_hover")
    write_hover_notebook(tmp / "notebooks" / NOTEBOOK)
    with running_lab(tmp / "notebooks", tmp / "jupyter") as server:
        yield server


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """One headless Chromium for the module."""
    with chromium_browser() as browser:
        yield browser


def _wait_for(page: Page, check: Any, timeout: float, every: float = 0.3) -> Any:
    """Poll ``check()`` until it returns something truthy (returned) or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        page.wait_for_timeout(every * 1000)
    return None


def _points(page: Page) -> list[dict[str, Any]] | None:
    traces = page.evaluate(_POINTS_JS)
    return traces if traces and traces[0]["points"] else None


def _inspector_point(page: Page) -> dict[str, Any] | None:
    """What the image pane shows: the point index, class text and image source."""
    pane = page.locator(".dml-inspector-point")
    if not pane.count():
        return None
    img = pane.first.locator("img")
    return {"index": int(pane.first.get_attribute("data-index") or -1),
            "class": pane.first.locator(".dml-inspector-class").inner_text(),
            "text": pane.first.inner_text(),
            "src": img.first.get_attribute("src") if img.count() else None}


@pytest.mark.timeout(420)
def test_hover_shows_the_image_and_class_and_click_opens_neighbours(
        lab: LabServer, chromium: Browser) -> None:
    context = chromium.new_context(viewport={"width": 1280, "height": 1400})
    page = context.new_page()
    session = NotebookSession(page, lab, NOTEBOOK, label="hover-inspector")
    try:
        with explained_failure(session, NOTEBOOK):
            session.open()
            session.run_all(RUN_TIMEOUT)
            session.wait_for_render(RENDER_TIMEOUT)
            plot = page.locator(".js-plotly-plot").first
            plot.scroll_into_view_if_needed(timeout=10000)
            page.wait_for_timeout(1000)
            traces = _wait_for(page, lambda: _points(page), RENDER_TIMEOUT)
            assert traces, "the projection drew no points"
            assert "hover a point" in page.locator(".dml-inspector-hint").first.inner_text()
            session.screenshot("1-rendered", focus=plot)

            # hover: the image pane shows that point's image and its trace's class
            for trace_no, point_no in ((0, 0), (1, 2)):
                traces = _points(page)
                assert traces is not None
                target = traces[trace_no]["points"][point_no]
                page.mouse.move(target["x"] - 30, target["y"] - 30)
                page.mouse.move(target["x"], target["y"], steps=5)
                shown = _wait_for(
                    page, lambda t=target: (lambda s: s if s and s["index"] == t["index"]
                                            else None)(_inspector_point(page)),
                    REACT_TIMEOUT)
                assert shown, (f"hovering point {point_no} of trace {trace_no} (index "
                               f"{target['index']}) showed {_inspector_point(page)}")
                assert shown["class"] == traces[trace_no]["name"], shown
                assert shown["src"] and shown["src"].startswith("data:image/png;base64,")
                assert "hovered point" in shown["text"]
                session.log(f"hover on index {target['index']}: class {shown['class']}")
            session.screenshot("2-hovered", focus=plot)

            # click: the neighbours strip opens with K images, classes and marks
            traces = _points(page)
            assert traces is not None
            target = traces[2]["points"][1]
            page.mouse.move(target["x"], target["y"], steps=3)
            # plotly clicks the point it last hovered (its hover is throttled): click once
            # the hover of this point has come back, as a reader's click does
            assert _wait_for(page, lambda: (_inspector_point(page) or {}).get("index")
                             == target["index"], REACT_TIMEOUT), _inspector_point(page)
            page.mouse.click(target["x"], target["y"])
            strip = page.locator(f".dml-inspector-strip[data-index='{target['index']}']")
            assert _wait_for(page, lambda: strip.count() > 0, REACT_TIMEOUT), \
                f"clicking index {target['index']} opened no neighbours strip"
            cells = strip.first.locator(".dml-inspector-neighbour")
            assert cells.count() == K
            for i in range(K):
                cell = cells.nth(i)
                src = cell.locator("img").first.get_attribute("src") or ""
                assert src.startswith("data:image/png;base64,")
                mark = cell.inner_text()
                correct = cell.get_attribute("data-correct") == "1"
                assert ("same class" in mark) == correct and ("other class" in mark) != correct
            clicked = _inspector_point(page)
            assert clicked and clicked["index"] == target["index"]
            assert clicked["class"] == traces[2]["name"]
            assert f"nearest neighbours of #{target['index']}" in strip.first.inner_text()
            session.log(f"click on index {target['index']}: strip "
                        f"{strip.first.inner_text()[:120]!r}")
            session.screenshot("3-clicked", focus=strip.first)
            assert not session.error_outputs(), session.error_outputs()
    finally:
        context.close()
        shutdown_kernels(lab)
